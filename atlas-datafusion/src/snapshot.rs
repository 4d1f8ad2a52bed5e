//! One generation per store per statement.
//!
//! A schema over a store moves to newer commits at table lookups, and the table functions open
//! stores as they are called, so the tables one statement names can come from different
//! generations when a commit lands while the statement is planned: a join of `temperature`
//! and `salinity` could pair one commit's temperatures with the next one's salinities. The
//! analyzer rule [`OneGenerationPerStore`] runs once per statement, after every table is looked
//! up: when the plan's tables of one store come from different generations, it moves them all
//! to the newest of those generations (whose segments are certainly kept), and refuses the
//! statement (retriable) if that changed a table's columns under it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, Statistics};
use datafusion::datasource::{MemTable, provider_as_source, source_as_provider};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, TableType};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_plan::ExecutionPlan;

use crate::provider::store_table;
use crate::store::AtlasStore;
use crate::table::AtlasTable;

/// A metadata table (`_datasets`, `_arrays`, `_attributes`) of one store generation.
#[derive(Debug)]
pub(crate) struct MetaTable {
    store: Arc<AtlasStore>,
    name: &'static str,
    inner: MemTable,
}

impl MetaTable {
    pub(crate) fn new(store: &Arc<AtlasStore>, name: &'static str, inner: MemTable) -> Self {
        MetaTable {
            store: Arc::clone(store),
            name,
            inner,
        }
    }
}

#[async_trait]
impl TableProvider for MetaTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }
}

/// The store and table name behind a provider, when it is one of ours.
fn store_table_of(provider: &dyn TableProvider) -> Option<(&Arc<AtlasStore>, &str)> {
    if let Some(t) = provider.downcast_ref::<AtlasTable>() {
        return Some((t.store(), t.name()));
    }
    provider
        .downcast_ref::<MetaTable>()
        .map(|t| (&t.store, t.name))
}

/// The analyzer rule that makes every statement read one generation of each store it names.
#[derive(Debug, Default)]
pub struct OneGenerationPerStore;

impl OneGenerationPerStore {
    /// The rule's name in the analyzer.
    pub const NAME: &'static str = "atlas_one_generation_per_store";

    /// Adds the rule to a session unless it has it already.
    pub fn register(ctx: &SessionContext) {
        let present = ctx
            .state()
            .analyzer()
            .rules
            .iter()
            .any(|r| r.name() == Self::NAME);
        if !present {
            ctx.add_analyzer_rule(Arc::new(OneGenerationPerStore));
        }
    }
}

impl AnalyzerRule for OneGenerationPerStore {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // The newest generation of each store the plan reads, and whether any differ.
        let mut newest: HashMap<String, Arc<AtlasStore>> = HashMap::new();
        let mut mixed = false;
        plan.apply_with_subqueries(|p| {
            if let LogicalPlan::TableScan(scan) = p
                && let Ok(provider) = source_as_provider(&scan.source)
                && let Some((store, _)) = store_table_of(provider.as_ref())
            {
                let e = newest
                    .entry(store.location.clone())
                    .or_insert_with(|| Arc::clone(store));
                if e.atlas.generation() != store.atlas.generation() {
                    mixed = true;
                    if store.atlas.generation() > e.atlas.generation() {
                        *e = Arc::clone(store);
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if !mixed {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|p| {
            let LogicalPlan::TableScan(mut scan) = p else {
                return Ok(Transformed::no(p));
            };
            let Ok(provider) = source_as_provider(&scan.source) else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            let Some((store, name)) = store_table_of(provider.as_ref()) else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            let Some(target) = newest.get(&store.location) else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            let (from, to) = (store.atlas.generation(), target.atlas.generation());
            if from == to {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            let moved: Arc<dyn TableProvider> = match provider.downcast_ref::<AtlasTable>() {
                Some(t) => Arc::new(t.at(target)?),
                None => store_table(target, name)?,
            };
            if moved.schema() != provider.schema() {
                return Err(DataFusionError::Plan(format!(
                    "ATLAS store {} committed generation {to} while this statement was planned \
                     on generation {from}, and table {name:?} changed its columns; run the \
                     statement again",
                    store.location
                )));
            }
            scan.source = provider_as_source(moved);
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}
