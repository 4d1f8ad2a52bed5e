//! What the datasets of a store disagree on: variables whose types no SQL column holds
//! together, their units, and time variables kept as numbers because their times could not be
//! decoded. Reported once after an ingest and by `info`; checked file by file by
//! `ingest --strict`.

use std::collections::{BTreeMap, BTreeSet};

use atlas_datafusion::atlas_store::{Attr, CatalogView, DType};
use atlas_datafusion::{
    Conflict, ConflictKind, arrow_type, fits, majority_type, type_conflicts, widen,
};
use datafusion::arrow::datatypes::DataType;

/// The attribute ingest sets on a numeric time variable it could not decode (its value says
/// why), so the variable is known for what it is after the ingest.
pub const UNDECODED_TIME: &str = "atlas_undecoded_time";

/// Dataset names given as examples.
const EXAMPLES: usize = 3;

/// How many datasets have something, and the first few of them.
#[derive(Debug, Default, Clone)]
struct Tally {
    datasets: usize,
    examples: Vec<String>,
}

impl Tally {
    fn add(&mut self, dataset: &str) {
        self.datasets += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(dataset.to_string());
        }
    }

    /// `N dataset(s) ("a", "b", …)`.
    fn text(&self) -> String {
        let mut names: Vec<String> = self.examples.iter().map(|d| format!("{d:?}")).collect();
        if self.datasets > self.examples.len() {
            names.push("…".into());
        }
        format!(
            "{} dataset{} ({})",
            self.datasets,
            if self.datasets == 1 { "" } else { "s" },
            names.join(", ")
        )
    }
}

/// One variable across the datasets of a store.
#[derive(Debug, Default)]
struct Variable {
    /// Each SQL type (`None`: the dtype has none) with the datasets holding it, first seen first.
    types: Vec<(Option<DataType>, String, Tally)>,
    /// Each `units` attribute (of non-time arrays) with the datasets holding it.
    units: BTreeMap<String, Tally>,
    /// Datasets whose times were kept as numbers, and the first reason.
    undecoded: Option<(Tally, String)>,
}

impl Variable {
    /// The column type the variable's datasets resolve to (the majority type, widened).
    fn column_type(&self) -> Option<DataType> {
        let counts: Vec<(DataType, usize)> = self
            .types
            .iter()
            .filter_map(|(t, _, tally)| Some((t.clone()?, tally.datasets)))
            .collect();
        majority_type(&counts)
    }
}

/// What every variable of a store holds, across its datasets.
#[derive(Debug, Default)]
pub struct Survey {
    variables: BTreeMap<String, Variable>,
}

fn text_attr<'a>(attributes: &[(&'a str, &'a Attr)], key: &str) -> Option<&'a str> {
    attributes.iter().find_map(|(k, v)| match v {
        Attr::String(s) if *k == key => Some(s.as_str()),
        _ => None,
    })
}

impl Survey {
    /// The survey of every array of `catalog`.
    pub fn of(catalog: &CatalogView) -> Survey {
        let mut s = Survey::default();
        for ds in catalog.datasets() {
            for a in ds.arrays() {
                let attributes: Vec<(&str, &Attr)> = a.attributes().collect();
                s.add(ds.name(), a.name(), &a.schema().dtype, &attributes);
            }
        }
        s
    }

    /// Counts array `array` of dataset `dataset`.
    pub fn add(&mut self, dataset: &str, array: &str, dtype: &DType, attributes: &[(&str, &Attr)]) {
        let v = self.variables.entry(array.to_string()).or_default();
        let ty = arrow_type(dtype);
        match v.types.iter_mut().find(|(t, _, _)| *t == ty) {
            Some((_, _, tally)) => tally.add(dataset),
            None => {
                let mut tally = Tally::default();
                tally.add(dataset);
                v.types
                    .push((ty, atlas_datafusion::dtype_name(dtype), tally));
            }
        }
        if let Some(reason) = text_attr(attributes, UNDECODED_TIME) {
            let (tally, _) = v
                .undecoded
                .get_or_insert_with(|| (Tally::default(), reason.to_string()));
            tally.add(dataset);
        } else if *dtype != DType::TimestampNs
            && let Some(units) = text_attr(attributes, "units")
        {
            v.units
                .entry(units.trim().to_string())
                .or_default()
                .add(dataset);
        }
    }

    /// Why array `array` (of `dtype`, with `attributes`) would disagree with the datasets
    /// surveyed so far: a type no SQL column holds together with theirs, or other units.
    pub fn disagreement(
        &self,
        array: &str,
        dtype: &DType,
        attributes: &[(&str, &Attr)],
    ) -> Option<String> {
        let v = self.variables.get(array)?;
        if let (Some(store_type), Some(ty)) = (v.column_type(), arrow_type(dtype))
            && widen(&store_type, &ty).is_none()
        {
            let holders = v
                .types
                .iter()
                .find(|(t, _, _)| t.as_ref().is_some_and(|t| fits(t, &store_type)))
                .map(|(_, _, tally)| tally.text())
                .unwrap_or_default();
            return Some(format!(
                "variable {array:?} is {ty} here, but {store_type} in {holders}; no SQL type \
                 holds both"
            ));
        }
        let units = text_attr(attributes, "units").map(str::trim);
        if *dtype != DType::TimestampNs
            && text_attr(attributes, UNDECODED_TIME).is_none()
            && let Some(units) = units
            && !v.units.is_empty()
            && !v.units.contains_key(units)
        {
            let (theirs, tally) = v
                .units
                .iter()
                .max_by_key(|(_, t)| t.datasets)
                .map(|(u, t)| (u.clone(), t.text()))
                .unwrap_or_default();
            return Some(format!(
                "variable {array:?} has units {units:?} here, but {theirs:?} in {tally}"
            ));
        }
        None
    }

    /// The report: one line per disagreement, empty when the datasets agree. `catalog` (the
    /// one surveyed) names the tables whose coordinate columns a type conflict also reaches.
    pub fn report(&self, catalog: &CatalogView) -> Vec<String> {
        let mut coordinate_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let any_type_conflict = self
            .variables
            .values()
            .any(|v| v.types.len() > 1 || v.types.iter().any(|(t, _, _)| t.is_none()));
        if any_type_conflict {
            for c in type_conflicts(catalog) {
                if c.kind == ConflictKind::Coordinate {
                    coordinate_of.entry(c.column).or_default().insert(c.table);
                }
            }
        }
        let mut lines = Vec::new();
        for (name, v) in &self.variables {
            if let Some(table_type) = v.column_type() {
                let (fit, misfit): (Vec<_>, Vec<_>) = v
                    .types
                    .iter()
                    .partition(|(t, _, _)| t.as_ref().is_some_and(|t| fits(t, &table_type)));
                if !misfit.is_empty() {
                    let fitting: usize = fit.iter().map(|(_, _, t)| t.datasets).sum();
                    let others: Vec<String> = misfit
                        .iter()
                        .map(|(t, dtype, tally)| {
                            let ty = t.as_ref().map_or(dtype.clone(), |t| t.to_string());
                            format!("{ty} in {}", tally.text())
                        })
                        .collect();
                    let mut line = format!(
                        "{name:?}: type {table_type} in {fitting} dataset{}, but {}: no SQL type \
                         holds both; queries show NULL there (SET atlas.type_conflicts = \
                         'exclude' leaves them out)",
                        if fitting == 1 { "" } else { "s" },
                        others.join(", ")
                    );
                    if let Some(tables) = coordinate_of.get(name) {
                        line.push_str(&format!(
                            "; also the coordinate of {} table{}",
                            tables.len(),
                            if tables.len() == 1 { "" } else { "s" }
                        ));
                    }
                    lines.push(line);
                }
            }
            if v.units.len() > 1 {
                let mut units: Vec<(&String, &Tally)> = v.units.iter().collect();
                units.sort_by_key(|(_, t)| std::cmp::Reverse(t.datasets));
                let list: Vec<String> = units
                    .iter()
                    .map(|(u, t)| format!("{u:?} in {}", t.text()))
                    .collect();
                lines.push(format!("{name:?}: units {}", list.join(", ")));
            }
            if let Some((tally, reason)) = &v.undecoded {
                lines.push(format!(
                    "{name:?}: times kept as numbers in {}: {reason}",
                    tally.text()
                ));
            }
        }
        lines
    }
}

/// What `\d NAME` adds under the columns of a table with conflicts: per column, the types that
/// do not fit and what the session's policy does with them.
pub fn table_summary(
    table: &str,
    conflicts: &[&Conflict],
    policy: atlas_datafusion::TypeConflicts,
) -> Vec<String> {
    if conflicts.is_empty() {
        return Vec::new();
    }
    let mut by_column: BTreeMap<(&str, &str), BTreeMap<&str, Tally>> = BTreeMap::new();
    let mut datasets = BTreeSet::new();
    for c in conflicts {
        datasets.insert(c.ordinal);
        by_column
            .entry((c.column.as_str(), c.table_type.as_str()))
            .or_default()
            .entry(c.dataset_type.as_str())
            .or_default()
            .add(&c.dataset);
    }
    let effect = match policy {
        atlas_datafusion::TypeConflicts::Null => "their rows show NULL in that column",
        atlas_datafusion::TypeConflicts::Exclude => "they are left out of the table",
        atlas_datafusion::TypeConflicts::Error => "scanning the table is an error",
    };
    let n = datasets.len();
    let mut lines = vec![format!(
        "{n} dataset{} do{} not fit a column's type; atlas.type_conflicts = '{policy}': {effect}",
        if n == 1 { "" } else { "s" },
        if n == 1 { "es" } else { "" },
    )];
    for ((column, table_type), types) in by_column {
        let others: Vec<String> = types
            .iter()
            .map(|(t, tally)| format!("{t} in {}", tally.text()))
            .collect();
        lines.push(format!("  {column} ({table_type}): {}", others.join(", ")));
    }
    lines.push(format!(
        "  SELECT * FROM _conflicts WHERE \"table\" = '{}'",
        table.replace('\'', "''")
    ));
    lines
}
