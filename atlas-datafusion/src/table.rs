//! The table of one variable: filter pushdown, pruning, statistics and the scan plan.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef, UInt32Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{Column, ColumnStatistics, DFSchema, Result, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::execution_props::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;

use crate::convert::stat_scalar;
use crate::layout::{ColumnKind, Conflict, Layout, TypeConflicts, dataset_type};
use crate::options::AtlasOptions;
use crate::source::{
    AtlasSource, DimFilter, ScanMetrics, ScanSpec, Unit, projected_columns, value_chunks,
};
use crate::store::AtlasStore;

/// Most elements one unit of work reads at once (a slab of whole chunks along the first axis;
/// a single chunk slab may be larger).
const UNIT_ELEMENTS: usize = 1 << 20;

/// The SQL table of one variable of a store, or of several variables on one grid.
#[derive(Debug, Clone)]
pub struct AtlasTable {
    store: Arc<AtlasStore>,
    layout: Arc<Layout>,
    /// The table's own `type_conflicts` policy (`CREATE EXTERNAL TABLE … OPTIONS`), over the
    /// session's.
    policy: Option<TypeConflicts>,
}

/// How a pushed filter is used.
#[derive(Debug, Clone, PartialEq)]
enum FilterUse {
    /// Reads only `dataset`: evaluated on the dataset names when planning (exact).
    Dataset,
    /// A comparison of `<dim>_index` with a literal: an exact range of positions.
    IndexRange(usize, u64, Option<u64>),
    /// Any other predicate on one index or coordinate column: narrows that dimension at run
    /// time; DataFusion re-checks the rows.
    Dim(usize, ColumnKind),
    /// Anything else: prunes datasets by statistics; DataFusion re-checks the rows.
    Stats,
    /// Not pushed (volatile).
    None,
}

fn literal_f64(e: &Expr) -> Option<f64> {
    let Expr::Literal(v, _) = e else { return None };
    let v = match v {
        ScalarValue::Int8(Some(x)) => *x as f64,
        ScalarValue::Int16(Some(x)) => *x as f64,
        ScalarValue::Int32(Some(x)) => *x as f64,
        ScalarValue::Int64(Some(x)) => *x as f64,
        ScalarValue::UInt8(Some(x)) => *x as f64,
        ScalarValue::UInt16(Some(x)) => *x as f64,
        ScalarValue::UInt32(Some(x)) => *x as f64,
        ScalarValue::UInt64(Some(x)) => *x as f64,
        ScalarValue::Float32(Some(x)) => *x as f64,
        ScalarValue::Float64(Some(x)) => *x,
        _ => return None,
    };
    (!v.is_nan()).then_some(v)
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(&c.name),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

/// The range of non-negative integers `i` with `i op v`.
fn op_range(op: Operator, v: f64) -> Option<(u64, Option<u64>)> {
    let clamp = |x: f64| if x <= 0.0 { 0 } else { x as u64 };
    Some(match op {
        Operator::Eq => {
            if v.fract() == 0.0 && v >= 0.0 {
                // `as` saturates: a literal past u64::MAX is an empty range, not an overflow.
                (v as u64, Some((v as u64).saturating_add(1)))
            } else {
                (0, Some(0))
            }
        }
        Operator::Gt => (clamp(v.floor() + 1.0), None),
        Operator::GtEq => (clamp(v.ceil()), None),
        Operator::Lt => (0, Some(clamp(v.ceil()))),
        Operator::LtEq => (0, Some(clamp(v.floor() + 1.0))),
        _ => return None,
    })
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        other => other,
    }
}

/// The exact position range of a simple comparison of `<dim>_index` with a literal.
fn index_range(e: &Expr) -> Option<(u64, Option<u64>)> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if column_name(left).is_some() {
                op_range(*op, literal_f64(right)?)
            } else if column_name(right).is_some() {
                op_range(flip(*op), literal_f64(left)?)
            } else {
                None
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if column_name(expr).is_some() => {
            let (lo, _) = op_range(Operator::GtEq, literal_f64(low)?)?;
            let (_, hi) = op_range(Operator::LtEq, literal_f64(high)?)?;
            Some((lo, hi))
        }
        _ => None,
    }
}

impl AtlasTable {
    pub(crate) fn new(store: Arc<AtlasStore>, layout: Layout) -> Self {
        AtlasTable {
            store,
            layout: Arc::new(layout),
            policy: None,
        }
    }

    /// The same table (name, variables and policy) over another handle of its store, such as
    /// a newer generation.
    pub fn at(&self, store: &Arc<AtlasStore>) -> crate::Result<AtlasTable> {
        let mut layout = Layout::build_grid(
            &store.location,
            &self.layout.name,
            &self.layout.variables,
            &store.catalog,
        )?;
        if self.layout.complete {
            layout.retain_complete();
        }
        Ok(AtlasTable {
            store: Arc::clone(store),
            layout: Arc::new(layout),
            policy: self.policy,
        })
    }

    /// The table `name` of `variables` over this table's store and policy, holding only the
    /// datasets that have every variable on every dimension: the rows of an inner join of the
    /// variables' tables on their whole grid.
    pub(crate) fn joined(&self, name: &str, variables: &[String]) -> crate::Result<AtlasTable> {
        let layout = self.store.joined_layout(variables, || {
            let mut layout =
                Layout::build_grid(&self.store.location, name, variables, &self.store.catalog)?;
            layout.retain_complete();
            Ok(layout)
        })?;
        Ok(AtlasTable {
            store: Arc::clone(&self.store),
            layout,
            policy: self.policy,
        })
    }

    /// Whether this is a join on the grid (only datasets holding every variable).
    pub(crate) fn is_complete(&self) -> bool {
        self.layout.complete
    }

    /// The table's dimensions, in column order.
    pub fn dims(&self) -> &[String] {
        &self.layout.dims
    }

    /// The table's own `type_conflicts` policy, if it has one.
    pub(crate) fn policy_override(&self) -> Option<TypeConflicts> {
        self.policy
    }

    /// The same table with its own `type_conflicts` policy, which wins over the session's.
    pub fn with_type_conflicts(mut self, policy: TypeConflicts) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The policy a scan in `state` applies: the table's own, else the session's
    /// `atlas.type_conflicts`, else the default.
    fn policy(&self, state: &dyn Session) -> TypeConflicts {
        self.policy
            .unwrap_or_else(|| AtlasOptions::type_conflicts_of(state.config_options()))
    }

    /// Datasets whose value or coordinate has a type the table's column cannot hold.
    pub fn conflicts(&self) -> impl Iterator<Item = &Conflict> {
        self.layout.conflicts.iter().map(|c| &c.conflict)
    }

    /// The table's name: its variable, or the grid table's name.
    pub fn name(&self) -> &str {
        &self.layout.name
    }

    /// The variables this table shows, one value column each.
    pub fn variables(&self) -> &[String] {
        &self.layout.variables
    }

    /// The store (at one generation) this table reads.
    pub fn store(&self) -> &Arc<AtlasStore> {
        &self.store
    }

    fn classify(&self, e: &Expr) -> FilterUse {
        if e.is_volatile() {
            return FilterUse::None;
        }
        let cols: HashSet<usize> = e
            .column_refs()
            .iter()
            .filter_map(|c| self.layout.schema.index_of(&c.name).ok())
            .collect();
        if cols.len() != e.column_refs().len() || cols.is_empty() {
            return FilterUse::Stats;
        }
        if cols.len() == 1 {
            let col = *cols.iter().next().unwrap_or(&0);
            match self.layout.column_kind(col) {
                ColumnKind::Dataset => return FilterUse::Dataset,
                ColumnKind::Index(d) => {
                    return match index_range(e) {
                        Some((lo, hi)) => FilterUse::IndexRange(d, lo, hi),
                        None => FilterUse::Dim(d, ColumnKind::Index(d)),
                    };
                }
                ColumnKind::Coord(c) => {
                    return FilterUse::Dim(self.layout.coord_dims[c], ColumnKind::Coord(c));
                }
                ColumnKind::Value(_) => {}
            }
        }
        FilterUse::Stats
    }

    /// Which datasets (entries) the exact `dataset` predicates keep.
    fn dataset_mask(&self, filters: &[&Expr]) -> Result<Vec<bool>> {
        let n = self.layout.entries.len();
        let Some(pred) = conjunction(filters.iter().map(|e| (*e).clone())) else {
            return Ok(vec![true; n]);
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            "dataset",
            dataset_type(),
            false,
        )]));
        let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
        let phys = create_physical_expr(
            &pred,
            &df_schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )?;
        let keys = UInt32Array::from(self.layout.ordinals.clone());
        let names: ArrayRef = Arc::new(DictionaryArray::<UInt32Type>::try_new(
            keys,
            Arc::clone(&self.store.dictionary),
        )?);
        let batch = RecordBatch::try_new(schema, vec![names])?;
        let v = phys.evaluate(&batch)?.into_array(n)?;
        let b = v.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| {
            datafusion::error::DataFusionError::Plan("dataset predicate is not boolean".into())
        })?;
        Ok((0..n).map(|i| b.is_valid(i) && b.value(i)).collect())
    }

    fn physical(&self, e: &Expr, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
        let df_schema = DFSchema::try_from(Arc::clone(schema))?;
        create_physical_expr(
            e,
            &df_schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
    }

    fn statistics_for(
        &self,
        keep: &[bool],
        regions: &[Vec<Range<usize>>],
        rows_exact: bool,
        subset: bool,
    ) -> Statistics {
        let layout = &self.layout;
        let schema = &layout.schema;
        let mut stats = Statistics::new_unknown(schema);
        let region_rows = |i: usize| regions[i].iter().map(|r| r.len() as u64).product::<u64>();
        let kept = || (0..layout.entries.len()).filter(|&i| keep[i]);
        let rows: u64 = kept().map(region_rows).sum();
        let any = kept().next().is_some();
        for (v, ty) in layout.value_types.iter().enumerate() {
            let mut min: Option<ScalarValue> = None;
            let mut max: Option<ScalarValue> = None;
            let mut nulls = 0u64;
            let mut exact = !subset;
            for i in kept() {
                let e = &layout.entries[i];
                let Some(src) = e.value(v) else {
                    // The column is NULL for this dataset.
                    nulls += region_rows(i);
                    continue;
                };
                let Some(s) = &src.stats else {
                    exact = false;
                    continue;
                };
                nulls += s.null_count;
                for (slot, value, want_less) in
                    [(&mut min, &s.min, true), (&mut max, &s.max, false)]
                {
                    let Some(value) = value else { continue };
                    let Some(value) = stat_scalar(value, &src.schema.dtype, ty) else {
                        exact = false;
                        continue;
                    };
                    let replace = match slot.as_ref() {
                        None => true,
                        Some(cur) => match value.partial_cmp(cur) {
                            Some(o) => {
                                (o == std::cmp::Ordering::Less) == want_less
                                    && o != std::cmp::Ordering::Equal
                            }
                            None => {
                                exact = false;
                                false
                            }
                        },
                    };
                    if replace {
                        *slot = Some(value);
                    }
                }
            }
            let column = &mut stats.column_statistics[layout.value_col(v)];
            let wrap = |x: Option<ScalarValue>| match x {
                Some(x) if exact && rows_exact => Precision::Exact(x),
                Some(x) => Precision::Inexact(x),
                None => Precision::Absent,
            };
            if any {
                column.min_value = wrap(min);
                column.max_value = wrap(max);
                column.null_count = if exact && rows_exact {
                    Precision::Exact(nulls as usize)
                } else {
                    Precision::Inexact(nulls as usize)
                };
            } else if rows_exact {
                *column = ColumnStatistics::new_unknown();
                column.null_count = Precision::Exact(0);
            }
        }
        let precision = |v: u64| {
            if rows_exact {
                Precision::Exact(v as usize)
            } else {
                Precision::Inexact(v as usize)
            }
        };
        stats.num_rows = precision(rows);
        let total_bytes: u64 = rows * (8 * (schema.fields().len() as u64));
        stats.total_byte_size = Precision::Inexact(total_bytes as usize);
        stats.column_statistics[0].null_count = precision(0);
        stats.column_statistics[0].distinct_count =
            Precision::Inexact(keep.iter().filter(|k| **k).count());
        stats
    }
}

/// Per-dataset statistics for DataFusion's pruning predicate: value, coordinate and index
/// columns.
struct EntryStats<'a> {
    layout: &'a Layout,
    regions: &'a [Vec<Range<usize>>],
}

impl EntryStats<'_> {
    fn column(&self, column: &Column) -> Option<ColumnKind> {
        self.layout
            .schema
            .index_of(&column.name)
            .ok()
            .map(|i| self.layout.column_kind(i))
    }

    fn bound(&self, column: &Column, want_min: bool) -> Option<ArrayRef> {
        let layout = self.layout;
        let kind = self.column(column)?;
        let field = layout
            .schema
            .field(layout.schema.index_of(&column.name).ok()?);
        let scalars: Vec<ScalarValue> = layout
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let stat = match kind {
                    ColumnKind::Value(v) => e.value(v).and_then(|src| {
                        let s = src.stats.as_ref()?;
                        let v = if want_min {
                            s.min.as_ref()
                        } else {
                            s.max.as_ref()
                        }?;
                        stat_scalar(v, &src.schema.dtype, field.data_type())
                    }),
                    ColumnKind::Coord(c) => e.coords[c].as_ref().and_then(|src| {
                        let s = src.stats.as_ref()?;
                        let v = if want_min {
                            s.min.as_ref()
                        } else {
                            s.max.as_ref()
                        }?;
                        stat_scalar(v, &src.schema.dtype, field.data_type())
                    }),
                    ColumnKind::Index(d) => e.axis_of_dim[d].and_then(|a| {
                        let r = &self.regions[i][a];
                        (!r.is_empty()).then(|| {
                            ScalarValue::UInt64(Some(if want_min {
                                r.start as u64
                            } else {
                                r.end as u64 - 1
                            }))
                        })
                    }),
                    ColumnKind::Dataset => None,
                };
                stat.unwrap_or(
                    ScalarValue::try_from(field.data_type()).unwrap_or(ScalarValue::Null),
                )
            })
            .collect();
        ScalarValue::iter_to_array(scalars).ok()
    }
}

impl PruningStatistics for EntryStats<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound(column, true)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound(column, false)
    }

    fn num_containers(&self) -> usize {
        self.layout.entries.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let kind = self.column(column)?;
        let counts: Vec<Option<u64>> = self
            .layout
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let rows = self.regions[i]
                    .iter()
                    .map(|r| r.len() as u64)
                    .product::<u64>();
                match kind {
                    ColumnKind::Value(v) => match e.value(v) {
                        None => Some(rows),
                        Some(src) => {
                            let full = self.regions[i]
                                .iter()
                                .zip(&e.shape)
                                .all(|(r, &n)| r.start == 0 && r.end == n);
                            if full {
                                src.stats.as_ref().map(|s| s.null_count)
                            } else {
                                None
                            }
                        }
                    },
                    ColumnKind::Index(d) => Some(if e.axis_of_dim[d].is_some() { 0 } else { rows }),
                    ColumnKind::Coord(c) => {
                        if e.coords[c].is_none() {
                            Some(rows)
                        } else {
                            None
                        }
                    }
                    ColumnKind::Dataset => Some(0),
                }
            })
            .collect();
        Some(Arc::new(UInt64Array::from(counts)))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(UInt64Array::from_iter_values(
            self.regions
                .iter()
                .map(|r| r.iter().map(|r| r.len() as u64).product::<u64>()),
        )))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

#[async_trait]
impl TableProvider for AtlasTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.layout.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.classify(f) {
                FilterUse::Dataset | FilterUse::IndexRange(..) => {
                    TableProviderFilterPushDown::Exact
                }
                FilterUse::Dim(..) | FilterUse::Stats => TableProviderFilterPushDown::Inexact,
                FilterUse::None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        let n = self.layout.entries.len();
        let regions: Vec<Vec<Range<usize>>> = self
            .layout
            .entries
            .iter()
            .map(|e| e.shape.iter().map(|&s| 0..s).collect())
            .collect();
        // Without a session the policy is unknown: under `exclude` conflicting datasets drop
        // out, so the row count is exact only when there are none or the table fixes `null`.
        let exact = self.layout.conflicts.is_empty() || self.policy == Some(TypeConflicts::Null);
        Some(self.statistics_for(&vec![true; n], &regions, exact, false))
    }

    /// `INSERT INTO`: the rows become new datasets of the store, or arrays the datasets they
    /// name lack (an array a dataset has is refused). Committed once, at the end.
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        crate::sink::insert_plan(self.store.location(), input, insert_op)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let layout = &self.layout;
        let schema = &layout.schema;
        let metrics = ExecutionPlanMetricsSet::new();
        let counters = ScanMetrics::new(&metrics);

        let uses: Vec<FilterUse> = filters.iter().map(|f| self.classify(f)).collect();
        let dataset_filters: Vec<&Expr> = filters
            .iter()
            .zip(&uses)
            .filter(|(_, u)| **u == FilterUse::Dataset)
            .map(|(f, _)| f)
            .collect();
        let mut keep = self.dataset_mask(&dataset_filters)?;
        let by_name = keep.iter().filter(|k| !**k).count();
        if let Some(first) = layout.conflicts.first() {
            match self.policy(state) {
                TypeConflicts::Null => {}
                TypeConflicts::Exclude => {
                    let mut excluded = 0;
                    for c in &layout.conflicts {
                        if keep[c.entry] {
                            keep[c.entry] = false;
                            excluded += 1;
                        }
                    }
                    counters.datasets_excluded_by_type.add(excluded);
                }
                TypeConflicts::Error => {
                    let mut entries: Vec<usize> =
                        layout.conflicts.iter().map(|c| c.entry).collect();
                    entries.dedup();
                    return Err(crate::Error::TypeConflict {
                        count: entries.len(),
                        first: Box::new(first.conflict.clone()),
                    }
                    .into());
                }
            }
        }

        // Exact index ranges, per table dimension.
        let mut dim_range: Vec<(u64, Option<u64>)> = vec![(0, None); layout.dims.len()];
        for u in &uses {
            if let FilterUse::IndexRange(d, lo, hi) = u {
                let r = &mut dim_range[*d];
                r.0 = r.0.max(*lo);
                r.1 = match (r.1, hi) {
                    (Some(a), Some(b)) => Some(a.min(*b)),
                    (a, b) => a.or(*b),
                };
            }
        }
        let constrained: Vec<bool> =
            uses.iter()
                .fold(vec![false; layout.dims.len()], |mut acc, u| {
                    if let FilterUse::IndexRange(d, ..) = u {
                        acc[*d] = true;
                    }
                    acc
                });
        let regions: Vec<Vec<Range<usize>>> = layout
            .entries
            .iter()
            .map(|e| {
                e.shape
                    .iter()
                    .enumerate()
                    .map(
                        |(axis, &n)| match e.axis_of_dim.iter().position(|a| *a == Some(axis)) {
                            Some(d) => {
                                let (lo, hi) = dim_range[d];
                                let lo = (lo as usize).min(n);
                                let hi = hi.map_or(n, |h| (h as usize).min(n)).max(lo);
                                lo..hi
                            }
                            None => 0..n,
                        },
                    )
                    .collect()
            })
            .collect();
        // A dataset lacking a constrained dimension has NULL positions there: no row matches.
        let mut by_range = 0;
        for (i, e) in layout.entries.iter().enumerate() {
            if keep[i]
                && (constrained
                    .iter()
                    .enumerate()
                    .any(|(d, c)| *c && e.axis_of_dim[d].is_none())
                    || regions[i].iter().any(|r| r.is_empty()))
                && e.rows() > 0
            {
                keep[i] = false;
                by_range += 1;
            }
        }

        // Statistics pruning over everything but the dataset predicates.
        let prunable: Vec<Expr> = filters
            .iter()
            .zip(&uses)
            .filter(|(_, u)| !matches!(u, FilterUse::Dataset | FilterUse::None))
            .map(|(f, _)| f.clone())
            .collect();
        let mut by_stats = 0;
        if let Some(pred) = conjunction(prunable) {
            let phys = self.physical(&pred, schema)?;
            if let Some(pp) = PruningPredicateBuilder::new()
                .with_file_schema(Arc::clone(schema))
                .build(phys)
            {
                let stats = EntryStats {
                    layout,
                    regions: &regions,
                };
                let verdict = pp.prune(&stats)?;
                for (i, ok) in verdict.into_iter().enumerate() {
                    if keep[i] && !ok {
                        keep[i] = false;
                        by_stats += 1;
                    }
                }
            }
        }

        // Run-time narrowing of dimensions by index and coordinate predicates.
        let mut dim_filters: Vec<Vec<DimFilter>> = vec![Vec::new(); layout.dims.len()];
        for (f, u) in filters.iter().zip(&uses) {
            let (d, kind) = match u {
                FilterUse::Dim(d, k) => (*d, *k),
                _ => continue,
            };
            let col = match kind {
                ColumnKind::Index(d) => layout.index_col(d),
                ColumnKind::Coord(c) => layout.coord_col(c),
                _ => continue,
            };
            let one = Arc::new(Schema::new(vec![schema.field(col).clone()]));
            dim_filters[d].push(DimFilter {
                kind,
                expr: self.physical(f, &one)?,
                schema: one,
            });
        }
        let runtime_narrowing = dim_filters.iter().any(|f| !f.is_empty());

        counters.datasets_pruned.add(by_name);
        counters.datasets_pruned_by_stats.add(by_stats);
        counters.datasets_pruned_by_range.add(by_range);
        let mut pruned_chunks = 0u64;
        for (i, e) in layout.entries.iter().enumerate() {
            let all: Vec<Range<usize>> = e.shape.iter().map(|&n| 0..n).collect();
            let total = value_chunks(e, &all);
            let kept = if keep[i] {
                value_chunks(e, &regions[i])
            } else {
                0
            };
            pruned_chunks += total - kept;
        }
        counters.chunks_pruned.add(pruned_chunks as usize);

        // Units of work, balanced across partitions by element count.
        let target = state.config().target_partitions().max(1);
        let batch_size = state.config().batch_size();
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        // The projected value and coordinate columns, worked out once for every unit.
        let (values, coords) = projected_columns(layout, &projection);
        // A unit of a grid table reads each projected variable: fewer elements per unit.
        let unit_elements = UNIT_ELEMENTS / values.len().max(1);
        let mut units = Vec::new();
        for (i, e) in layout.entries.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let region = &regions[i];
            if region.is_empty() || region.iter().any(|r| r.is_empty()) {
                units.push(Unit {
                    entry: i,
                    region: region.clone(),
                    first: true,
                });
                continue;
            }
            let per_row: usize = region[1..]
                .iter()
                .map(|r| r.len())
                .product::<usize>()
                .max(1);
            let c0 = e.unit_align();
            let rows_per_unit = ((unit_elements / per_row) / c0).max(1) * c0;
            let mut start = region[0].start;
            let mut first = true;
            while start < region[0].end {
                // Align the end to a chunk boundary so no chunk is read twice.
                let end = ((start / c0) * c0 + rows_per_unit).min(region[0].end);
                let mut r = region.clone();
                r[0] = start..end;
                units.push(Unit {
                    entry: i,
                    region: r,
                    first,
                });
                first = false;
                start = end;
            }
        }
        let n_parts = target.min(units.len()).max(1);
        let mut order: Vec<usize> = (0..units.len()).collect();
        order.sort_by_key(|&u| std::cmp::Reverse(units[u].elements()));
        let mut loads = vec![0u64; n_parts];
        let mut assigned: Vec<Vec<usize>> = vec![Vec::new(); n_parts];
        for u in order {
            let p = (0..n_parts).min_by_key(|&p| loads[p]).unwrap_or(0);
            loads[p] += units[u].elements().max(1);
            assigned[p].push(u);
        }
        let partitions: Vec<Vec<Unit>> = assigned
            .into_iter()
            .map(|mut idx| {
                idx.sort_unstable();
                idx.into_iter().map(|u| units[u].clone()).collect()
            })
            .collect();

        let out_schema = Arc::new(schema.project(&projection)?);
        let subset = constrained.iter().any(|c| *c);
        let stats = self
            .statistics_for(&keep, &regions, !runtime_narrowing, subset)
            .project(Some(&projection));
        let spec = ScanSpec {
            store: Arc::clone(&self.store),
            layout: Arc::clone(layout),
            projection,
            values,
            coords,
            schema: out_schema,
            dim_filters,
            batch_size,
            statistics: Arc::new(stats),
            filter_text: filters.iter().map(|f| f.to_string()).collect(),
            datasets: keep.iter().filter(|k| **k).count(),
        };
        let all_exact = uses
            .iter()
            .all(|u| matches!(u, FilterUse::Dataset | FilterUse::IndexRange(..)));
        let source = AtlasSource {
            spec: Arc::new(spec),
            partitions: Arc::new(partitions),
            fetch: if all_exact { limit } else { None },
            runtime_filters: Vec::new(),
            metrics,
            counters,
        };
        Ok(DataSourceExec::from_data_source(source))
    }
}
