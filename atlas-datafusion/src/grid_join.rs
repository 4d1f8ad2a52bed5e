//! The optimizer rule that plans an equi-join of variable tables on their whole grid as one
//! grid scan.
//!
//! `temp JOIN sal ON dataset, time_index, depth_index` pairs each grid position of a dataset's
//! `temp` with the same position of its `sal`: exactly the rows of the grid table of `temp` and
//! `sal` over the datasets that hold both. [`GridJoins`] recognises such an inner join (of two
//! or more tables of one store, through aliases, projections and filters, and joins it already
//! rewrote) and replaces it by that scan, so the variables are read in lockstep and no hash
//! table is built. It leaves the join alone whenever the scan could answer differently: other
//! keys, a non-inner join, a LIMIT below the join, tables of different stores, generations or
//! policies, a variable named twice, a column whose type the grid table widens, an array off
//! its dataset's grid, conflicts under `exclude` or `error`, or a volatile filter.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality, Result, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, JoinType, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use crate::layout::{ConflictKind, TypeConflicts};
use crate::options::AtlasOptions;
use crate::table::AtlasTable;

/// The optimizer rule; see the module docs. Off with `SET atlas.grid_joins = false`.
#[derive(Debug, Default)]
pub struct GridJoins;

impl GridJoins {
    /// The rule's name in the optimizer.
    pub const NAME: &'static str = "atlas_grid_joins";

    /// Adds the rule to a session unless it has it already.
    pub fn register(ctx: &SessionContext) {
        let present = ctx
            .state()
            .optimizers()
            .iter()
            .any(|r| r.name() == Self::NAME);
        if !present {
            ctx.add_optimizer_rule(Arc::new(GridJoins));
        }
    }
}

/// One side of a join the rule can merge: a scan of an ATLAS table seen through the nodes
/// above it.
struct Leaf {
    table: Arc<AtlasTable>,
    /// Predicates pushed into the scan, over the table's column names.
    pushed: Vec<Expr>,
    /// Predicates of `Filter` nodes above it, over the table's column names.
    filters: Vec<Expr>,
    /// The side's output columns in order: (qualifier, name, the table column it is).
    columns: Vec<(Option<TableReference>, String, String)>,
}

impl Leaf {
    fn table_column(&self, c: &Column) -> Option<&str> {
        self.columns
            .iter()
            .find(|(q, n, _)| {
                *n == c.name && (c.relation.is_none() || c.relation.as_ref() == q.as_ref())
            })
            .map(|(_, _, g)| g.as_str())
    }

    /// `e` over the table's column names, if every column it reads is one of the side's.
    fn to_table(&self, e: &Expr) -> Option<Expr> {
        map_columns(e, |c| self.table_column(c).map(Column::new_unqualified))
    }
}

/// `e` with every column `c` replaced by `f(c)`; `None` when `f` refuses one.
fn map_columns(e: &Expr, mut f: impl FnMut(&Column) -> Option<Column>) -> Option<Expr> {
    let mut ok = true;
    let out = e
        .clone()
        .transform(|x| {
            Ok(match x {
                Expr::Column(c) => match f(&c) {
                    Some(n) => Transformed::yes(Expr::Column(n)),
                    None => {
                        ok = false;
                        Transformed::no(Expr::Column(c))
                    }
                },
                other => Transformed::no(other),
            })
        })
        .ok()?
        .data;
    ok.then_some(out)
}

/// The side `plan` as a [`Leaf`], if it is one.
fn leaf(plan: &LogicalPlan) -> Option<Leaf> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if scan.fetch.is_some() {
                return None;
            }
            let provider = source_as_provider(&scan.source).ok()?;
            let table = provider.downcast_ref::<AtlasTable>()?;
            let table = Arc::new(table.clone());
            let columns = scan
                .projected_schema
                .iter()
                .map(|(q, f)| (q.cloned(), f.name().clone(), f.name().clone()))
                .collect();
            // Pushed filters may read columns the projection dropped: map by name.
            Some(Leaf {
                table,
                pushed: scan.filters.iter().cloned().map(unnormalize_col).collect(),
                filters: Vec::new(),
                columns,
            })
        }
        LogicalPlan::Filter(f) => {
            let mut l = leaf(&f.input)?;
            let p = l.to_table(&f.predicate)?;
            l.filters.push(p);
            Some(l)
        }
        LogicalPlan::SubqueryAlias(a) => {
            let mut l = leaf(&a.input)?;
            for c in &mut l.columns {
                c.0 = Some(a.alias.clone());
            }
            Some(l)
        }
        LogicalPlan::Projection(p) => {
            let inner = leaf(&p.input)?;
            let mut columns = Vec::new();
            for (e, (q, f)) in p.expr.iter().zip(p.schema.iter()) {
                let c = match e {
                    Expr::Column(c) => c,
                    Expr::Alias(a) => match a.expr.as_ref() {
                        Expr::Column(c) => c,
                        _ => return None,
                    },
                    _ => return None,
                };
                let g = inner.table_column(c)?.to_string();
                columns.push((q.cloned(), f.name().clone(), g));
            }
            Some(Leaf { columns, ..inner })
        }
        _ => None,
    }
}

impl OptimizerRule for GridJoins {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::ApplyOrder> {
        Some(datafusion::optimizer::ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !AtlasOptions::grid_joins_of(config.options().as_ref()) {
            return Ok(Transformed::no(plan));
        }
        let LogicalPlan::Join(join) = &plan else {
            return Ok(Transformed::no(plan));
        };
        if join.join_type != JoinType::Inner
            || join.null_equality != NullEquality::NullEqualsNothing
            || join.null_aware
        {
            return Ok(Transformed::no(plan));
        }
        let (Some(left), Some(right)) = (leaf(&join.left), leaf(&join.right)) else {
            return Ok(Transformed::no(plan));
        };
        match merge(&left, &right, join, config.options().as_ref())? {
            Some(p) => Ok(Transformed::yes(p)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// The grid scan answering `join` of `left` and `right`, or `None` when it could differ.
fn merge(
    left: &Leaf,
    right: &Leaf,
    join: &datafusion::logical_expr::logical_plan::Join,
    config: &datafusion::common::config::ConfigOptions,
) -> Result<Option<LogicalPlan>> {
    let (lt, rt) = (&left.table, &right.table);
    // One snapshot of one store (the same handle), one policy, one grid. A side that is a
    // grid table of several variables keeps datasets lacking some of them, which a join
    // would drop: only variable tables and joins this rule made merge.
    if !Arc::ptr_eq(lt.store(), rt.store())
        || lt.policy_override() != rt.policy_override()
        || lt.dims() != rt.dims()
        || [lt, rt]
            .iter()
            .any(|t| t.variables().len() > 1 && !t.is_complete())
    {
        return Ok(None);
    }
    // Under `exclude` or `error` a side's conflicts on datasets the join drops anyway still
    // decide its rows (or its error): leave such joins alone.
    let policy = lt
        .policy_override()
        .unwrap_or_else(|| AtlasOptions::type_conflicts_of(config));
    if policy != TypeConflicts::Null
        && (lt.conflicts().next().is_some() || rt.conflicts().next().is_some())
    {
        return Ok(None);
    }
    let mut variables: Vec<String> = lt.variables().to_vec();
    for v in rt.variables() {
        if variables.contains(v) {
            return Ok(None);
        }
        variables.push(v.clone());
    }
    // The keys: dataset and every index column, each with itself.
    let mut keys = BTreeSet::new();
    for (l, r) in &join.on {
        let (Expr::Column(l), Expr::Column(r)) = (l, r) else {
            return Ok(None);
        };
        let (Some(gl), Some(gr)) = (left.table_column(l), right.table_column(r)) else {
            return Ok(None);
        };
        if gl != gr {
            return Ok(None);
        }
        keys.insert(gl.to_string());
    }
    let mut want: BTreeSet<String> = lt.dims().iter().map(|d| format!("{d}_index")).collect();
    want.insert("dataset".to_string());
    if keys != want {
        return Ok(None);
    }
    let name = variables.join(" ⋈ ");
    let Ok(grid) = lt.joined(&name, &variables) else {
        return Ok(None);
    };
    if grid.conflicts().any(|c| c.kind == ConflictKind::Shape) {
        return Ok(None);
    }
    // Every column of either side keeps its type in the grid table, whether the query reads
    // it or not (a coordinate the grid widens would make other datasets conflicts), and every
    // column the sides output exists there.
    let grid_schema = datafusion::catalog::TableProvider::schema(&grid);
    for side in [left, right] {
        let side_schema = datafusion::catalog::TableProvider::schema(side.table.as_ref());
        for f in side_schema.fields() {
            match grid_schema.field_with_name(f.name()) {
                Ok(g) if g.data_type() == f.data_type() => {}
                _ => return Ok(None),
            }
        }
        if side
            .columns
            .iter()
            .any(|(_, _, g)| side_schema.field_with_name(g).is_err())
        {
            return Ok(None);
        }
    }

    let qualifier = TableReference::bare(name.clone());
    let grid: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(grid);
    // The optimizer copies a predicate on a key to both sides: keep one of each. A volatile
    // predicate (`random() < 0.5`) on each side is two draws: leave such joins alone.
    let mut predicates: Vec<Expr> = Vec::new();
    for p in left
        .pushed
        .iter()
        .chain(&right.pushed)
        .chain(&left.filters)
        .chain(&right.filters)
    {
        if p.is_volatile() {
            return Ok(None);
        }
        if !predicates.contains(p) {
            predicates.push(p.clone());
        }
    }
    let refs: Vec<&Expr> = predicates.iter().collect();
    let support = grid.supports_filters_pushdown(&refs)?;
    let mut pushed = Vec::new();
    let mut above = Vec::new();
    for (p, s) in predicates.iter().zip(support) {
        match s {
            TableProviderFilterPushDown::Exact => pushed.push(p.clone()),
            TableProviderFilterPushDown::Inexact => {
                pushed.push(p.clone());
                above.push(p.clone());
            }
            TableProviderFilterPushDown::Unsupported => above.push(p.clone()),
        }
    }
    // Read the columns the sides output and the filters above read.
    let mut needed: BTreeSet<usize> = BTreeSet::new();
    let index: HashMap<&str, usize> = grid_schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().as_str(), i))
        .collect();
    for (_, _, g) in left.columns.iter().chain(&right.columns) {
        needed.insert(index[g.as_str()]);
    }
    for p in &above {
        for c in p.column_refs() {
            match index.get(c.name.as_str()) {
                Some(&i) => {
                    needed.insert(i);
                }
                None => return Ok(None),
            }
        }
    }
    let mut builder = LogicalPlanBuilder::scan_with_filters(
        qualifier.clone(),
        provider_as_source(grid),
        Some(needed.into_iter().collect()),
        pushed,
    )?;
    if let Some(p) = conjunction(above)
        && let Some(p) = map_columns(&p, |c| Some(Column::new(Some(qualifier.clone()), &c.name)))
    {
        builder = builder.filter(p)?;
    }
    let exprs: Vec<Expr> = left
        .columns
        .iter()
        .chain(&right.columns)
        .map(|(q, n, g)| {
            Expr::Column(Column::new(Some(qualifier.clone()), g)).alias_qualified(q.clone(), n)
        })
        .collect();
    builder = builder.project(exprs)?;
    if let Some(f) = &join.filter {
        builder = builder.filter(f.clone())?;
    }
    let plan = builder.build()?;
    // The rewrite must not change the join's output.
    let same = plan.schema().fields().len() == join.schema.fields().len()
        && plan
            .schema()
            .iter()
            .zip(join.schema.iter())
            .all(|((qa, fa), (qb, fb))| {
                qa == qb && fa.name() == fb.name() && fa.data_type() == fb.data_type()
            });
    Ok(same.then_some(plan))
}
