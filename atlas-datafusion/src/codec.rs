//! Shipping a scan to another process: a [`PhysicalExtensionCodec`] for the ATLAS scan, and the
//! split of one scan into tasks that share no unit of work.
//!
//! The message names the store (location and catalog generation), the table (name, variables,
//! whether it is a join on the grid), the projection, the pushed dimension filters (as
//! DataFusion's protobuf), the limit and every unit of work by dataset and region. It holds no
//! array bytes and no catalog: the receiving process opens the store itself (once per location
//! and generation, then from its cache), rebuilds the table's layout from its own catalog view
//! and checks each unit against it, so a plan and a store that disagree fail with an error
//! naming the dataset instead of reading the wrong rows.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use datafusion::common::{DataFusionError, Result, Statistics};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf::PhysicalExprNode;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::layout::ColumnKind;
use crate::source::{AtlasSource, DimFilter, ScanMetrics, ScanSpec, Unit, projected_columns};
use crate::store::AtlasStore;

/// Version of the scan message; a process refuses messages of another version.
const MESSAGE_VERSION: u32 = 1;

/// Store handles a process keeps per location: the generations queries were planned at most
/// recently (a worker serving coordinators on both sides of a commit keeps both).
const GENERATIONS_KEPT: usize = 4;

/// A [`PhysicalExtensionCodec`] for ATLAS scans. Register the same codec where plans are
/// encoded (the coordinator) and where they are decoded (each worker); decoding opens the
/// scan's store through the task's runtime (its registered object stores, or one configured
/// from the environment) and keeps the handle for later plans.
#[derive(Debug, Default, Clone)]
pub struct AtlasCodec {
    stores: StoreHandles,
}

impl AtlasCodec {
    /// A codec with no store open yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that decodes plans of `store` (at its generation) without opening it again:
    /// a worker started with the store it serves, or a process that already holds a handle.
    pub fn with_store(self, store: Arc<AtlasStore>) -> Self {
        self.stores.insert(store);
        self
    }

    /// The handles this codec has opened or been given, as (location, generation) pairs.
    pub fn open_stores(&self) -> Vec<(String, u64)> {
        let map = lock(&self.stores.0);
        let mut out: Vec<(String, u64)> = map
            .iter()
            .flat_map(|(loc, handles)| handles.iter().map(move |s| (loc.clone(), generation(s))))
            .collect();
        out.sort();
        out
    }
}

/// A location as every process names it: URLs as they are, local paths made absolute (a
/// worker started elsewhere resolves a relative path against its own directory).
fn canonical(location: &str) -> String {
    if atlas_store::location::is_url(location) {
        return location.to_string();
    }
    std::path::absolute(location)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| location.to_string())
}

/// The generation of the catalog snapshot a handle's tables describe.
fn generation(store: &AtlasStore) -> u64 {
    store.catalog.generation()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open store handles by location, newest last.
#[derive(Debug, Default, Clone)]
struct StoreHandles(Arc<Mutex<HashMap<String, Vec<Arc<AtlasStore>>>>>);

impl StoreHandles {
    fn insert(&self, store: Arc<AtlasStore>) {
        let mut map = lock(&self.0);
        let handles = map.entry(canonical(&store.location)).or_default();
        let g = generation(&store);
        handles.retain(|s| generation(s) != g);
        handles.push(store);
        handles.sort_by_key(|s| generation(s));
        if handles.len() > GENERATIONS_KEPT {
            let extra = handles.len() - GENERATIONS_KEPT;
            handles.drain(..extra);
        }
    }

    /// The handle of `location` at `planned`: from the cache, or opened (or moved to the
    /// newest commit) when the cache holds only older generations.
    fn at(
        &self,
        location: &str,
        planned: u64,
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<Arc<AtlasStore>> {
        let newest = {
            let map = lock(&self.0);
            let handles = map.get(location);
            if let Some(s) = handles.and_then(|h| h.iter().find(|s| generation(s) == planned)) {
                return Ok(Arc::clone(s));
            }
            handles.and_then(|h| h.last().cloned())
        };
        if let Some(s) = &newest
            && generation(s) > planned
        {
            return Err(stale(location, planned, generation(s)));
        }
        let opened = crate::provider::block_on(location, async {
            match &newest {
                Some(s) => match s.atlas.reopen_if_newer().await {
                    Ok(Some(atlas)) => Ok(AtlasStore::from_atlas(atlas, location)),
                    Ok(None) => Ok(Arc::clone(s)),
                    Err(e) => Err(Error::store(location, e).into()),
                },
                None => AtlasStore::open(location, runtime)
                    .await
                    .map_err(DataFusionError::from),
            }
        })?;
        let found = generation(&opened);
        self.insert(Arc::clone(&opened));
        if found != planned {
            return Err(stale(location, planned, found));
        }
        Ok(opened)
    }
}

fn stale(location: &str, planned: u64, found: u64) -> DataFusionError {
    Error::Usage(format!(
        "ATLAS store {location}: the query was planned at generation {planned} but this process \
         opens generation {found}; the store changed while the query ran (or this process \
         reads another copy of it): run the query again"
    ))
    .into()
}

#[derive(Debug, Serialize, Deserialize)]
struct ScanMessage {
    version: u32,
    location: String,
    generation: u64,
    table: String,
    variables: Vec<String>,
    complete: bool,
    projection: Vec<u32>,
    /// Per table dimension, its pushed filters.
    dim_filters: Vec<Vec<FilterMessage>>,
    batch_size: u64,
    filter_text: Vec<String>,
    datasets: u64,
    fetch: Option<u64>,
    partitions: Vec<Vec<UnitMessage>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FilterMessage {
    /// `true`: a coordinate column, `false`: an index column.
    coord: bool,
    /// The dimension or coordinate number.
    column: u32,
    /// The predicate as DataFusion's protobuf `PhysicalExprNode`.
    expr: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct UnitMessage {
    entry: u32,
    dataset: String,
    region: Vec<(u64, u64)>,
    first: bool,
}

fn bad_message(reason: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("cannot decode an ATLAS scan: {reason}"))
}

fn atlas_source(node: &Arc<dyn ExecutionPlan>) -> Option<&AtlasSource> {
    node.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<AtlasSource>()
}

impl AtlasCodec {
    fn encode_source(&self, source: &AtlasSource) -> Result<Vec<u8>> {
        let spec = &source.spec;
        let layout = &spec.layout;
        let mut dim_filters = Vec::with_capacity(spec.dim_filters.len());
        for filters in &spec.dim_filters {
            let mut out = Vec::with_capacity(filters.len());
            for f in filters {
                let (coord, column) = match f.kind {
                    ColumnKind::Index(d) => (false, d),
                    ColumnKind::Coord(c) => (true, c),
                    other => return Err(bad_message(format!("a filter on {other:?}"))),
                };
                let node = serialize_physical_expr(&f.expr, self)?;
                out.push(FilterMessage {
                    coord,
                    column: column as u32,
                    expr: node.encode_to_vec(),
                });
            }
            dim_filters.push(out);
        }
        let partitions = source
            .partitions
            .iter()
            .map(|units| {
                units
                    .iter()
                    .map(|u| UnitMessage {
                        entry: u.entry as u32,
                        dataset: layout.entries[u.entry].dataset.clone(),
                        region: u
                            .region
                            .iter()
                            .map(|r| (r.start as u64, r.end as u64))
                            .collect(),
                        first: u.first,
                    })
                    .collect()
            })
            .collect();
        let message = ScanMessage {
            version: MESSAGE_VERSION,
            location: canonical(&spec.store.location),
            generation: generation(&spec.store),
            table: layout.name.clone(),
            variables: layout.variables.clone(),
            complete: layout.complete,
            projection: spec.projection.iter().map(|&p| p as u32).collect(),
            dim_filters,
            batch_size: spec.batch_size as u64,
            filter_text: spec.filter_text.clone(),
            datasets: spec.datasets as u64,
            fetch: source.fetch.map(|n| n as u64),
            partitions,
        };
        rmp_serde::to_vec_named(&message)
            .map_err(|e| DataFusionError::Internal(format!("cannot encode an ATLAS scan: {e}")))
    }

    fn decode_source(&self, buf: &[u8], ctx: &TaskContext) -> Result<AtlasSource> {
        let m: ScanMessage = rmp_serde::from_slice(buf).map_err(bad_message)?;
        if m.version != MESSAGE_VERSION {
            return Err(bad_message(format!(
                "message version {} (this build reads version {MESSAGE_VERSION}): run the same \
                 atlas-sql version on the coordinator and the workers",
                m.version
            )));
        }
        let store = self
            .stores
            .at(&m.location, m.generation, &ctx.runtime_env())?;
        let layout = store.layout_of(&m.table, &m.variables, m.complete)?;
        let width = layout.schema.fields().len();
        let projection: Vec<usize> = m.projection.iter().map(|&p| p as usize).collect();
        if let Some(p) = projection.iter().find(|&&p| p >= width) {
            return Err(bad_message(format!(
                "column {p} of table {:?}, which has {width}",
                m.table
            )));
        }
        if m.dim_filters.len() != layout.dims.len() {
            return Err(bad_message(format!(
                "filters for {} dimensions of table {:?}, which has {}",
                m.dim_filters.len(),
                m.table,
                layout.dims.len()
            )));
        }
        let mut dim_filters = Vec::with_capacity(m.dim_filters.len());
        for filters in &m.dim_filters {
            let mut out = Vec::with_capacity(filters.len());
            for f in filters {
                let c = f.column as usize;
                let (kind, col) = if f.coord {
                    if c >= layout.coord_dims.len() {
                        return Err(bad_message(format!("coordinate column {c}")));
                    }
                    (ColumnKind::Coord(c), layout.coord_col(c))
                } else {
                    if c >= layout.dims.len() {
                        return Err(bad_message(format!("dimension {c}")));
                    }
                    (ColumnKind::Index(c), layout.index_col(c))
                };
                let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                    layout.schema.field(col).clone(),
                ]));
                let node = PhysicalExprNode::decode(f.expr.as_slice()).map_err(bad_message)?;
                let expr = parse_physical_expr(&node, ctx, &schema, self)?;
                out.push(DimFilter { kind, expr, schema });
            }
            dim_filters.push(out);
        }
        let mut partitions = Vec::with_capacity(m.partitions.len());
        for units in m.partitions {
            let mut out = Vec::with_capacity(units.len());
            for u in units {
                let entry = u.entry as usize;
                let e = layout.entries.get(entry).filter(|e| e.dataset == u.dataset);
                let Some(e) = e else {
                    return Err(Error::Usage(format!(
                        "ATLAS store {}: table {:?} at generation {} has no dataset {:?} at \
                         position {entry}; the plan and the store disagree",
                        m.location, m.table, m.generation, u.dataset
                    ))
                    .into());
                };
                let region: Vec<Range<usize>> = u
                    .region
                    .iter()
                    .map(|&(a, b)| a as usize..b as usize)
                    .collect();
                let fits = region.len() == e.shape.len()
                    && region
                        .iter()
                        .zip(&e.shape)
                        .all(|(r, &n)| r.start <= r.end && r.end <= n);
                if !fits {
                    return Err(Error::Usage(format!(
                        "ATLAS store {}: region {:?} is outside dataset {:?} of table {:?} \
                         (shape {:?}); the plan and the store disagree",
                        m.location, region, u.dataset, m.table, e.shape
                    ))
                    .into());
                }
                out.push(Unit {
                    entry,
                    region,
                    first: u.first,
                });
            }
            partitions.push(out);
        }
        let (values, coords) = projected_columns(&layout, &projection);
        let schema = Arc::new(layout.schema.project(&projection)?);
        let spec = ScanSpec {
            store,
            statistics: Arc::new(Statistics::new_unknown(&schema)),
            layout,
            projection,
            values,
            coords,
            schema,
            dim_filters,
            batch_size: (m.batch_size as usize).max(1),
            filter_text: m.filter_text,
            datasets: m.datasets as usize,
        };
        let metrics = ExecutionPlanMetricsSet::new();
        let counters = ScanMetrics::new(&metrics);
        Ok(AtlasSource {
            spec: Arc::new(spec),
            partitions: Arc::new(partitions),
            fetch: m.fetch.map(|n| n as usize),
            runtime_filters: Vec::new(),
            metrics,
            counters,
        })
    }
}

impl PhysicalExtensionCodec for AtlasCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !inputs.is_empty() {
            return Err(bad_message(format!("a scan with {} inputs", inputs.len())));
        }
        let source = self.decode_source(buf, ctx)?;
        Ok(DataSourceExec::from_data_source(source))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(source) = atlas_source(&node) else {
            return Err(DataFusionError::NotImplemented(format!(
                "the ATLAS codec encodes ATLAS scans only, not {}",
                node.name()
            )));
        };
        buf.extend(self.encode_source(source)?);
        Ok(())
    }
}

impl AtlasSource {
    /// This scan's units of work dealt into `tasks` scans that share none, balanced by element
    /// count (largest units first, each to the task with the fewest elements so far). Every
    /// task's scan has the same number of partitions as this one (a task may have empty
    /// ones), so they can stand in for each other in a distributed plan; runtime filters
    /// (join dynamic filters) stay with this scan, as they are only an optimisation.
    pub fn split_into_tasks(&self, tasks: usize) -> Vec<AtlasSource> {
        let tasks = tasks.max(1);
        let per_task = self.partitions.len().max(1);
        let mut units: Vec<&Unit> = self.partitions.iter().flatten().collect();
        units.sort_by_key(|u| std::cmp::Reverse(u.elements()));
        let mut loads = vec![0u64; tasks * per_task];
        let mut parts: Vec<Vec<Unit>> = vec![Vec::new(); tasks * per_task];
        let mut task_loads = vec![0u64; tasks];
        for u in units {
            let t = (0..tasks).min_by_key(|&t| task_loads[t]).unwrap_or(0);
            let p = (t * per_task..(t + 1) * per_task)
                .min_by_key(|&p| loads[p])
                .unwrap_or(t * per_task);
            let w = u.elements().max(1);
            task_loads[t] += w;
            loads[p] += w;
            parts[p].push(u.clone());
        }
        let mut parts = parts.into_iter();
        (0..tasks)
            .map(|_| {
                let mut partitions: Vec<Vec<Unit>> = parts.by_ref().take(per_task).collect();
                for p in &mut partitions {
                    p.sort_by_key(|u| (u.entry, u.region.first().map(|r| r.start)));
                }
                let metrics = ExecutionPlanMetricsSet::new();
                let counters = ScanMetrics::new(&metrics);
                AtlasSource {
                    spec: Arc::clone(&self.spec),
                    partitions: Arc::new(partitions),
                    fetch: self.fetch,
                    runtime_filters: Vec::new(),
                    metrics,
                    counters,
                }
            })
            .collect()
    }

    /// Elements this scan's units of work cover (what [`AtlasSource::split_into_tasks`]
    /// balances).
    pub fn elements(&self) -> u64 {
        self.partitions.iter().flatten().map(Unit::elements).sum()
    }

    /// Units of work per partition.
    pub fn units_per_partition(&self) -> Vec<usize> {
        self.partitions.iter().map(Vec::len).collect()
    }

    /// Datasets this scan's units read (each counted once).
    pub fn dataset_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .partitions
            .iter()
            .flatten()
            .filter(|u| u.first)
            .map(|u| self.spec.layout.entries[u.entry].dataset.clone())
            .collect();
        names.sort();
        names
    }
}
