//! The tables of a store: one per variable, and one grid table per group of variables that
//! share their dimensions.

use std::collections::{BTreeMap, BTreeSet};

use atlas_store::CatalogView;

use crate::layout::arrow_type;
use crate::meta::METADATA_TABLES;

/// What a table of a store shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// One variable.
    Variable,
    /// Several variables on the grid they share.
    Grid,
}

impl TableKind {
    /// `variable` or `grid`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Variable => "variable",
            TableKind::Grid => "grid",
        }
    }
}

/// One table of a store (metadata tables aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Its name in the store's schema.
    pub name: String,
    /// A variable's table or a grid table.
    pub kind: TableKind,
    /// The variables it shows, one value column each.
    pub variables: Vec<String>,
    /// Its dimensions, in column order.
    pub dims: Vec<String>,
}

/// The name of the grid table of `dims`: `grid_` and the dims joined by `_` (`grid_scalars`
/// for 0-d variables).
pub fn grid_name(dims: &[String]) -> String {
    if dims.is_empty() {
        "grid_scalars".to_string()
    } else {
        format!("grid_{}", dims.join("_"))
    }
}

/// The tables of a catalog: one per variable (by name), then one grid table per group of two
/// or more variables with the same dimensions (in the same order; a variable's dimensions are
/// those of its arrays, in first-seen order). Coordinates (a variable whose only dimension is
/// itself) and variables SQL cannot show join no grid. A grid name taken by a variable or a
/// metadata table gets a suffix (`_2`, `_3`, …).
pub fn store_tables(catalog: &CatalogView) -> Vec<TableInfo> {
    // Per variable: its dims in first-seen order and whether SQL can show it.
    let mut vars: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
    for ds in catalog.datasets() {
        for a in ds.arrays() {
            let s = a.schema();
            let entry = match vars.get_mut(a.name()) {
                Some(e) => e,
                None => vars.entry(a.name().to_string()).or_default(),
            };
            for d in &s.dims {
                if !entry.0.contains(d) {
                    entry.0.push(d.clone());
                }
            }
            entry.1 |= arrow_type(&s.dtype).is_some();
        }
    }
    let mut out: Vec<TableInfo> = vars
        .iter()
        .map(|(name, (dims, _))| TableInfo {
            name: name.clone(),
            kind: TableKind::Variable,
            variables: vec![name.clone()],
            dims: dims.clone(),
        })
        .collect();
    let mut groups: BTreeMap<&[String], Vec<String>> = BTreeMap::new();
    for (name, (dims, shown)) in &vars {
        let coordinate = dims.len() == 1 && &dims[0] == name;
        if *shown && !coordinate {
            groups
                .entry(dims.as_slice())
                .or_default()
                .push(name.clone());
        }
    }
    let mut taken: BTreeSet<String> = vars.keys().cloned().collect();
    taken.extend(METADATA_TABLES.iter().map(|s| s.to_string()));
    for (dims, variables) in groups {
        if variables.len() < 2 {
            continue;
        }
        let base = grid_name(dims);
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        taken.insert(name.clone());
        out.push(TableInfo {
            name,
            kind: TableKind::Grid,
            variables,
            dims: dims.to_vec(),
        });
    }
    out
}
