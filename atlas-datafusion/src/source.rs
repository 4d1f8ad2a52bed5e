//! The scan: a DataFusion `DataSource` that streams a variable's rows, reading only what the
//! pushed-down predicates leave.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use atlas_store::{ReadCounter, ReadCounts, count_reads};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, UInt32Array, UInt64Array, new_null_array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::{and_kleene, cast, take};
use datafusion::arrow::datatypes::{SchemaRef, UInt32Type};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, Statistics};
use datafusion::config::ConfigOptions;
use datafusion::datasource::source::DataSource;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::DisplayFormatType;
use datafusion::physical_plan::filter_pushdown::{FilterPushdownPropagation, PushedDown};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricType, MetricValue, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use crate::convert::{ReadError, element_bytes, read_region};
use crate::error::Error;
use crate::gather;
use crate::layout::{ColumnKind, Entry, Layout};
use crate::store::AtlasStore;

/// A piece of one dataset's array: the work one partition does in one step.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// Index into `Layout::entries`.
    pub entry: usize,
    /// Region per array axis.
    pub region: Vec<Range<usize>>,
    /// Whether this is the dataset's first unit (dataset counters count it once).
    pub first: bool,
}

impl Unit {
    pub(crate) fn elements(&self) -> u64 {
        self.region.iter().map(|r| r.len() as u64).product()
    }
}

/// Chunks of a chunk grid that `region` overlaps.
pub(crate) fn chunks_in(region: &[Range<usize>], chunk_shape: &[usize]) -> u64 {
    region
        .iter()
        .zip(chunk_shape)
        .map(|(r, &c)| {
            let c = c.max(1);
            if r.end <= r.start {
                0
            } else {
                ((r.end - 1) / c - r.start / c + 1) as u64
            }
        })
        .product()
}

/// Chunks the arrays of an entry's variables hold in `region` (every variable the dataset has,
/// whether or not the query reads it).
pub(crate) fn value_chunks(e: &Entry, region: &[Range<usize>]) -> u64 {
    e.values
        .iter()
        .flatten()
        .map(|s| chunks_in(region, &s.schema.chunk_shape))
        .sum()
}

/// A predicate on one index or coordinate column, evaluated on that dimension's positions or
/// coordinates to narrow the range of a dimension that is read.
#[derive(Debug, Clone)]
pub(crate) struct DimFilter {
    /// Which column it reads (an index or a coordinate column).
    pub kind: ColumnKind,
    /// The predicate, over a one-column schema.
    pub expr: Arc<dyn PhysicalExpr>,
    /// That schema.
    pub schema: SchemaRef,
}

/// The value columns (`ColumnKind::Value` numbers, in projection order) and coordinate
/// columns (`ColumnKind::Coord` numbers) among `projection`'s columns of `layout`.
pub(crate) fn projected_columns(layout: &Layout, projection: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut values = Vec::new();
    let mut coords = Vec::new();
    for &col in projection {
        match layout.column_kind(col) {
            ColumnKind::Value(v) => values.push(v),
            ColumnKind::Coord(c) => coords.push(c),
            _ => {}
        }
    }
    (values, coords)
}

/// What a scan needs to know, shared by every partition.
#[derive(Debug)]
pub(crate) struct ScanSpec {
    pub store: Arc<AtlasStore>,
    pub layout: Arc<Layout>,
    /// Full-schema indexes of the output columns.
    pub projection: Vec<usize>,
    /// The value columns among them (`ColumnKind::Value` numbers), in projection order.
    pub values: Vec<usize>,
    /// The coordinate columns among them (`ColumnKind::Coord` numbers).
    pub coords: Vec<usize>,
    /// Output schema.
    pub schema: SchemaRef,
    /// Per table dimension, the predicates that narrow it.
    pub dim_filters: Vec<Vec<DimFilter>>,
    pub batch_size: usize,
    pub statistics: Arc<Statistics>,
    /// Pushed filters as text, for EXPLAIN.
    pub filter_text: Vec<String>,
    /// Datasets left after planning.
    pub datasets: usize,
}

/// The scan of one variable's table.
#[derive(Debug, Clone)]
pub struct AtlasSource {
    pub(crate) spec: Arc<ScanSpec>,
    pub(crate) partitions: Arc<Vec<Vec<Unit>>>,
    pub(crate) fetch: Option<usize>,
    /// Filters DataFusion pushed at run time (join dynamic filters) that read only `dataset`.
    pub(crate) runtime_filters: Vec<Arc<dyn PhysicalExpr>>,
    pub(crate) metrics: ExecutionPlanMetricsSet,
    /// The scan's counters, registered once in `metrics` and shared by every partition.
    pub(crate) counters: ScanMetrics,
}

fn summary_counter(metrics: &ExecutionPlanMetricsSet, name: &'static str) -> Count {
    MetricBuilder::new(metrics)
        .with_type(MetricType::Summary)
        .global_counter(name)
}

fn summary_time(metrics: &ExecutionPlanMetricsSet, name: &'static str) -> Time {
    let time = Time::new();
    MetricBuilder::new(metrics)
        .with_type(MetricType::Summary)
        .build(MetricValue::Time {
            name: name.into(),
            time: time.clone(),
        });
    time
}

/// Counters the scan reports in `EXPLAIN ANALYZE`.
#[derive(Debug, Clone)]
pub(crate) struct ScanMetrics {
    pub bytes_read: Count,
    /// Object-store requests the scan made (reads and `head`s, its read-ahead included), as
    /// the store counted them.
    pub requests: Count,
    /// Blocks the store fetched and decoded for the scan (block-cache misses), counted where
    /// the decoding happens.
    pub blocks_fetched: Count,
    /// Chunks the store took out of decoded blocks for the scan, counted where it does so.
    pub chunks_decoded: Count,
    /// Time the store waited for storage to return the scan's blocks (summed over concurrent
    /// loads).
    pub fetch_time: Time,
    /// Time the store spent decompressing the scan's blocks (summed over threads).
    pub decode_time: Time,
    /// Chunks of the value arrays' declared chunking the scan planned to read (the plan's
    /// arithmetic; `chunks_decoded` is what the store did).
    pub chunks_read: Count,
    pub chunks_pruned: Count,
    pub datasets_scanned: Count,
    pub datasets_pruned: Count,
    pub datasets_pruned_by_stats: Count,
    pub datasets_pruned_by_range: Count,
    pub datasets_pruned_by_dynamic_filter: Count,
    pub datasets_excluded_by_type: Count,
}

impl ScanMetrics {
    pub(crate) fn new(metrics: &ExecutionPlanMetricsSet) -> Self {
        ScanMetrics {
            bytes_read: summary_counter(metrics, "bytes_read"),
            requests: summary_counter(metrics, "requests"),
            blocks_fetched: summary_counter(metrics, "blocks_fetched"),
            chunks_decoded: summary_counter(metrics, "chunks_decoded"),
            fetch_time: summary_time(metrics, "fetch_time"),
            decode_time: summary_time(metrics, "decode_time"),
            chunks_read: summary_counter(metrics, "chunks_read"),
            chunks_pruned: summary_counter(metrics, "chunks_pruned"),
            datasets_scanned: summary_counter(metrics, "datasets_scanned"),
            datasets_pruned: summary_counter(metrics, "datasets_pruned"),
            datasets_pruned_by_stats: summary_counter(metrics, "datasets_pruned_by_stats"),
            datasets_pruned_by_range: summary_counter(metrics, "datasets_pruned_by_range"),
            datasets_pruned_by_dynamic_filter: summary_counter(
                metrics,
                "datasets_pruned_by_dynamic_filter",
            ),
            datasets_excluded_by_type: summary_counter(metrics, "datasets_excluded_by_type"),
        }
    }
}

impl AtlasSource {
    fn only_reads_dataset(&self, expr: &Arc<dyn PhysicalExpr>) -> bool {
        let cols = collect_columns(expr);
        !cols.is_empty()
            && cols
                .iter()
                .all(|c| self.spec.projection.get(c.index()).is_some_and(|&i| i == 0))
    }
}

impl DataSource for AtlasSource {
    fn open(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let units: VecDeque<Unit> = self
            .partitions
            .get(partition)
            .cloned()
            .unwrap_or_default()
            .into();
        let reservation =
            MemoryConsumer::new(format!("AtlasScan[{partition}]")).register(context.memory_pool());
        let state = PartitionState {
            spec: Arc::clone(&self.spec),
            units,
            runtime_filters: self.runtime_filters.clone(),
            remaining: self.fetch,
            pending: VecDeque::new(),
            counter: ReadCounter::new(),
            metrics: self.counters.clone(),
            baseline: BaselineMetrics::new(&self.metrics, partition),
            reservation,
            coord_cache: (usize::MAX, HashMap::new()),
            ahead: 0,
            prefetches: Vec::new(),
            warm: Arc::default(),
            counted: ReadCounts::default(),
        };
        let stream = futures::stream::try_unfold(state, |mut st| async move {
            loop {
                if st.remaining == Some(0) {
                    return Ok(None);
                }
                if let Some(mut batch) = st.pending.pop_front() {
                    if let Some(rem) = st.remaining.as_mut() {
                        if batch.num_rows() > *rem {
                            batch = batch.slice(0, *rem);
                        }
                        *rem -= batch.num_rows();
                    }
                    st.baseline.record_output(batch.num_rows());
                    return Ok(Some((batch, st)));
                }
                let Some(unit) = st.units.pop_front() else {
                    // Loads still running ahead count for this scan too.
                    for p in std::mem::take(&mut st.prefetches) {
                        let _ = p.await;
                    }
                    st.attribute_reads();
                    st.reservation.free();
                    return Ok(None);
                };
                let timer = st.baseline.elapsed_compute().clone();
                let _t = timer.timer();
                let parts = st.gather(unit).await?;
                if !parts.is_empty() {
                    st.read_parts(parts).await?;
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.spec.schema),
            stream,
        )))
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let layout = &self.spec.layout;
        let units: usize = self.partitions.iter().map(Vec::len).sum();
        let cols: Vec<&str> = self
            .spec
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        match layout.variables.as_slice() {
            many if layout.complete => write!(
                f,
                "AtlasScan: variables=[{}] (a join on their grid)",
                many.join(", ")
            )?,
            [one] => write!(f, "AtlasScan: variable={one}")?,
            many => write!(
                f,
                "AtlasScan: table={}, variables=[{}]",
                layout.name,
                many.join(", ")
            )?,
        }
        write!(
            f,
            ", datasets={}/{}, units={units}, projection=[{}]",
            self.spec.datasets,
            layout.entries.len(),
            cols.join(", ")
        )?;
        if !self.spec.filter_text.is_empty() {
            write!(f, ", filters=[{}]", self.spec.filter_text.join(", "))?;
        }
        if let Some(n) = self.fetch {
            write!(f, ", fetch={n}")?;
        }
        if !self.runtime_filters.is_empty() && !matches!(t, DisplayFormatType::TreeRender) {
            let text: Vec<String> = self.runtime_filters.iter().map(|e| e.to_string()).collect();
            write!(f, ", runtime_filters=[{}]", text.join(", "))?;
        }
        Ok(())
    }

    fn output_partitioning(&self) -> Partitioning {
        Partitioning::UnknownPartitioning(self.partitions.len().max(1))
    }

    fn eq_properties(&self) -> EquivalenceProperties {
        EquivalenceProperties::new(Arc::clone(&self.spec.schema))
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        match partition {
            None if self.fetch.is_none() => Ok(Arc::clone(&self.spec.statistics)),
            None => Ok(Arc::new(
                self.spec
                    .statistics
                    .as_ref()
                    .clone()
                    .with_fetch(self.fetch, 0, 1)?,
            )),
            Some(_) => Ok(Arc::new(Statistics::new_unknown(&self.spec.schema))),
        }
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        let mut s = self.clone();
        s.fetch = limit;
        Some(Arc::new(s))
    }

    fn fetch(&self) -> Option<usize> {
        self.fetch
    }

    fn metrics(&self) -> ExecutionPlanMetricsSet {
        self.metrics.clone()
    }

    fn try_swapping_with_projection(
        &self,
        _projection: &ProjectionExprs,
    ) -> Result<Option<Arc<dyn DataSource>>> {
        Ok(None)
    }

    fn try_pushdown_filters(
        &self,
        filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn DataSource>>> {
        let mut kept = self.runtime_filters.clone();
        for f in &filters {
            if self.only_reads_dataset(f) {
                kept.push(Arc::clone(f));
            }
        }
        let result = vec![PushedDown::No; filters.len()];
        if kept.len() == self.runtime_filters.len() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(
                result,
            ));
        }
        let mut s = self.clone();
        s.runtime_filters = kept;
        Ok(
            FilterPushdownPropagation::with_parent_pushdown_result(result)
                .with_updated_node(Arc::new(s) as Arc<dyn DataSource>),
        )
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for e in &self.runtime_filters {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }
}

struct PartitionState {
    spec: Arc<ScanSpec>,
    units: VecDeque<Unit>,
    runtime_filters: Vec<Arc<dyn PhysicalExpr>>,
    remaining: Option<usize>,
    pending: VecDeque<RecordBatch>,
    counter: ReadCounter,
    metrics: ScanMetrics,
    baseline: BaselineMetrics,
    reservation: MemoryReservation,
    /// Coordinates (whole 1-D arrays) of the dataset being read: (entry, columns by index).
    coord_cache: (usize, HashMap<usize, ArrayRef>),
    /// Units at the front of the queue whose blocks a prefetch already asked for.
    ahead: usize,
    /// Block loads running ahead of this partition's reads.
    prefetches: Vec<tokio::task::JoinHandle<()>>,
    /// Set once a prefetch found every block it asked for cached: the scan is warm, and
    /// prefetching on would only cost lookups.
    warm: Arc<std::sync::atomic::AtomicBool>,
    /// What of `counter` was already added to the metrics.
    counted: ReadCounts,
}

/// Units whose blocks one prefetch asks for, and the values they may hold together.
const PREFETCH_UNITS: usize = 64;
const PREFETCH_ELEMENTS: u64 = 4 << 20;

fn read_error(spec: &ScanSpec, dataset: &str, array: &str, e: ReadError) -> DataFusionError {
    match e {
        ReadError::Store(source) => Error::Store {
            location: format!(
                "{} (dataset {dataset:?}, array {array:?})",
                spec.store.location
            ),
            source: Box::new(source),
        }
        .into(),
        ReadError::Sql(e) => e.into(),
    }
}

impl PartitionState {
    /// Adds what the store read and decoded for this partition since the last call (its
    /// prefetches included) to the `bytes_read`, `requests`, `blocks_fetched` and
    /// `chunks_decoded` metrics.
    fn attribute_reads(&mut self) {
        let now = self.counter.counts();
        let new = now.since(&self.counted);
        self.counted = now;
        let m = &self.metrics;
        m.bytes_read.add(new.bytes as usize);
        m.requests.add(new.requests as usize);
        m.blocks_fetched.add(new.blocks_fetched as usize);
        m.chunks_decoded.add(new.chunks_decoded as usize);
        // `add_duration` adds at least a nanosecond: nothing new adds nothing.
        for (metric, time) in [
            (&m.fetch_time, new.fetch_time),
            (&m.decode_time, new.decode_time),
        ] {
            if !time.is_zero() {
                metric.add_duration(time);
            }
        }
    }

    /// Starts loading, in the background and several requests at a time, the blocks of this
    /// unit's region and, when no filter or limit can drop the units queued behind it, of the
    /// next ones too (values and coordinates), so fetching and decoding run ahead of the rows
    /// this partition emits. The reads that follow find the blocks cached or join their load.
    fn prefetch(&mut self, entry: usize, region: &[Range<usize>]) {
        let spec = Arc::clone(&self.spec);
        let layout = &spec.layout;
        let (coords, values) = (&spec.coords, &spec.values);
        let mut wanted: Vec<(String, String, Vec<Range<usize>>)> = Vec::new();
        let add = |wanted: &mut Vec<_>, entry: usize, region: Vec<Range<usize>>| {
            let e = &layout.entries[entry];
            for &v in values {
                if e.value(v).is_some() {
                    wanted.push((
                        layout.variables[v].clone(),
                        e.dataset.clone(),
                        region.clone(),
                    ));
                }
            }
            for &c in coords {
                if e.coords[c].is_some() {
                    let dim = layout.dims[layout.coord_dims[c]].clone();
                    wanted.push((dim, e.dataset.clone(), Vec::new()));
                }
            }
        };
        add(&mut wanted, entry, region.to_vec());
        let free = self.remaining.is_none()
            && self.runtime_filters.is_empty()
            && spec.dim_filters.iter().all(|f| f.is_empty());
        if free {
            let mut elements: u64 = region.iter().map(|r| r.len() as u64).product();
            for u in self.units.iter().take(PREFETCH_UNITS) {
                if elements >= PREFETCH_ELEMENTS {
                    break;
                }
                add(&mut wanted, u.entry, u.region.clone());
                elements += u.elements();
                self.ahead += 1;
            }
        }
        let (store, counter) = (Arc::clone(&spec.store), self.counter.clone());
        let warm = Arc::clone(&self.warm);
        self.prefetches.retain(|p| !p.is_finished());
        self.prefetches.push(tokio::spawn(async move {
            // A failure here shows again, with its context, in the read that needs the block.
            if let Ok(0) = count_reads(&counter, store.atlas.prefetch(&wanted)).await {
                warm.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }

    /// Whether the run-time filters let dataset `entry` through.
    fn passes_runtime_filters(&self, entry: usize) -> Result<bool> {
        if self.runtime_filters.is_empty() {
            return Ok(true);
        }
        let layout = &self.spec.layout;
        let columns: Vec<ArrayRef> = self
            .spec
            .schema
            .fields()
            .iter()
            .zip(&self.spec.projection)
            .map(|(f, &col)| {
                if col == 0 {
                    dataset_column(layout, &self.spec.store, entry, 1)
                } else {
                    Ok(new_null_array(f.data_type(), 1))
                }
            })
            .collect::<Result<_>>()?;
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        for f in &self.runtime_filters {
            let v = f.evaluate(&batch)?.into_array(1)?;
            let keep = v
                .as_any()
                .downcast_ref::<BooleanArray>()
                .is_some_and(|b| b.is_valid(0) && b.value(0));
            if !keep {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The whole coordinate array `c` of dataset `entry`, cast to the column type (NULLs where
    /// the dataset has none).
    async fn coordinate(&mut self, entry: usize, c: usize, len: usize) -> Result<ArrayRef> {
        if self.coord_cache.0 != entry {
            self.coord_cache = (entry, HashMap::new());
        }
        if let Some(a) = self.coord_cache.1.get(&c) {
            return Ok(Arc::clone(a));
        }
        let layout = Arc::clone(&self.spec.layout);
        let e = &layout.entries[entry];
        let ty = &layout.coord_types[c];
        let array = match &e.coords[c] {
            None => new_null_array(ty, len),
            Some(src) => {
                let dim = &layout.dims[layout.coord_dims[c]];
                let view = self.view(&e.dataset).await?;
                let fut = read_region(
                    &view,
                    dim,
                    &src.schema.dtype,
                    vec![0],
                    vec![len],
                    src.schema.fill_value.as_ref(),
                    ty,
                );
                let r = count_reads(&self.counter, fut).await;
                self.attribute_reads();
                r.map_err(|err| read_error(&self.spec, &e.dataset, dim, err))?
            }
        };
        self.coord_cache.1.insert(c, Arc::clone(&array));
        Ok(array)
    }

    async fn view(&self, dataset: &str) -> Result<atlas_store::DatasetView> {
        self.spec
            .store
            .atlas
            .open_dataset(dataset)
            .await
            .map_err(|e| Error::store(&self.spec.store.location, e).into())
    }

    /// Narrows `region` by the dimension predicates. `None`: no row can match.
    async fn narrow(
        &mut self,
        entry: usize,
        mut region: Vec<Range<usize>>,
    ) -> Result<Option<Vec<Range<usize>>>> {
        let layout = Arc::clone(&self.spec.layout);
        let spec = Arc::clone(&self.spec);
        for (d, filters) in spec.dim_filters.iter().enumerate() {
            if filters.is_empty() {
                continue;
            }
            let e = &layout.entries[entry];
            let axis = e.axis_of_dim[d];
            let len = axis.map_or(1, |a| e.shape[a]);
            let mut mask: Option<BooleanArray> = None;
            for f in filters {
                let column: ArrayRef = match (f.kind, axis) {
                    (ColumnKind::Index(_), Some(_)) => {
                        Arc::new(UInt64Array::from_iter_values(0..len as u64))
                    }
                    (ColumnKind::Coord(c), Some(_)) => self.coordinate(entry, c, len).await?,
                    (_, _) => new_null_array(f.schema.field(0).data_type(), len),
                };
                let column = if column.data_type() == f.schema.field(0).data_type() {
                    column
                } else {
                    cast(&column, f.schema.field(0).data_type())?
                };
                let batch = RecordBatch::try_new(Arc::clone(&f.schema), vec![column])?;
                let v = f.expr.evaluate(&batch)?.into_array(len)?;
                let b = v
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| {
                        DataFusionError::Internal("dimension predicate is not boolean".into())
                    })?
                    .clone();
                mask = Some(match mask {
                    None => b,
                    Some(m) => and_kleene(&m, &b)?,
                });
            }
            let Some(mask) = mask else { continue };
            let hits = |i: &usize| mask.is_valid(*i) && mask.value(*i);
            let first = (0..mask.len()).find(hits);
            let last = (0..mask.len()).rev().find(hits);
            let (Some(first), Some(last)) = (first, last) else {
                return Ok(None);
            };
            if let Some(a) = axis {
                let r = &mut region[a];
                r.start = r.start.max(first);
                r.end = r.end.min(last + 1);
                if r.start >= r.end {
                    return Ok(None);
                }
            }
        }
        Ok(Some(region))
    }

    /// `unit` and, while they fit in a batch of rows and no LIMIT is pending, the small units
    /// queued behind it (a sensor's readings, a short profile), planned: read together, they
    /// cost one store call and one buffer per column.
    async fn gather(&mut self, unit: Unit) -> Result<Vec<Part>> {
        let batch = self.spec.batch_size.max(1) as u64;
        let mut parts: Vec<Part> = Vec::new();
        let mut next = Some(unit);
        while let Some(unit) = next.take() {
            if let Some(p) = self.plan_unit(unit).await? {
                parts.push(p);
            }
            let rows: u64 = parts.iter().map(|p| p.rows as u64).sum();
            if self.remaining.is_none()
                && self
                    .units
                    .front()
                    .is_some_and(|u| rows + u.elements() <= batch)
            {
                next = self.units.pop_front();
            }
        }
        Ok(parts)
    }

    /// Decides what of `unit` is read: run-time filters, dimension predicates and a LIMIT
    /// applied, counters updated and read-ahead started. `None`: nothing.
    async fn plan_unit(&mut self, unit: Unit) -> Result<Option<Part>> {
        let prefetched = if self.ahead > 0 {
            self.ahead -= 1;
            true
        } else {
            false
        };
        let spec = Arc::clone(&self.spec);
        let layout = Arc::clone(&spec.layout);
        let e = &layout.entries[unit.entry];
        let mut unit_chunks = value_chunks(e, &unit.region);
        if !self.passes_runtime_filters(unit.entry)? {
            if unit.first {
                self.metrics.datasets_pruned_by_dynamic_filter.add(1);
            }
            self.metrics.chunks_pruned.add(unit_chunks as usize);
            return Ok(None);
        }
        let Some(region) = self.narrow(unit.entry, unit.region.clone()).await? else {
            if unit.first {
                self.metrics.datasets_pruned_by_range.add(1);
            }
            self.metrics.chunks_pruned.add(unit_chunks as usize);
            return Ok(None);
        };
        let mut region = region;
        // Under a LIMIT, read only the leading chunks the remaining rows need; the rest of the
        // unit goes back to the queue and is dropped if the limit is met first.
        if let Some(rem) = self.remaining
            && !region.is_empty()
        {
            let per_row = region[1..]
                .iter()
                .map(|r| r.len())
                .product::<usize>()
                .max(1);
            let c0 = e.unit_align();
            let end = (region[0].start + rem.div_ceil(per_row)).div_ceil(c0) * c0;
            if end < region[0].end {
                let mut tail = region.clone();
                tail[0] = end..region[0].end;
                region[0].end = end;
                unit_chunks -= value_chunks(e, &tail);
                self.units.push_front(Unit {
                    entry: unit.entry,
                    region: tail,
                    first: false,
                });
            }
        }
        if unit.first {
            self.metrics.datasets_scanned.add(1);
        }
        let rows = region.iter().map(|r| r.len()).product::<usize>();
        // The value columns read: projected, and held by this dataset in a type and shape the
        // column holds (otherwise NULL, under `atlas.type_conflicts = 'null'`).
        let reads_values = spec.values.iter().any(|&v| e.value(v).is_some());
        let read_chunks: u64 = spec
            .values
            .iter()
            .filter_map(|&v| e.value(v))
            .map(|s| chunks_in(&region, &s.schema.chunk_shape))
            .sum();
        self.metrics.chunks_read.add(read_chunks as usize);
        self.metrics
            .chunks_pruned
            .add(unit_chunks.saturating_sub(read_chunks) as usize);
        if rows == 0 {
            return Ok(None);
        }
        if reads_values && !prefetched && !self.warm.load(std::sync::atomic::Ordering::Relaxed) {
            self.prefetch(unit.entry, &region);
        }
        Ok(Some(Part {
            entry: unit.entry,
            region,
            rows,
        }))
    }

    /// Reads `parts` (of one or many datasets) and queues their rows as batches: the values of
    /// every part served from encoded blocks go into one buffer per column.
    async fn read_parts(&mut self, parts: Vec<Part>) -> Result<()> {
        let spec = Arc::clone(&self.spec);
        let layout = Arc::clone(&spec.layout);
        let rows: usize = parts.iter().map(|p| p.rows).sum();
        let mut bytes = rows * 8 * spec.projection.len();
        for p in &parts {
            let e = &layout.entries[p.entry];
            for &v in &spec.values {
                if let Some(s) = e.value(v) {
                    bytes += p.rows * element_bytes(&s.schema.dtype);
                }
            }
        }
        self.reservation.try_resize(bytes)?;

        let mut values: HashMap<usize, ArrayRef> = HashMap::new();
        for &v in &spec.values {
            let column = self.read_values(&parts, v).await?;
            values.insert(v, column);
        }
        let mut coords: HashMap<usize, ArrayRef> = HashMap::new();
        for &c in &spec.coords {
            let ty = &layout.coord_types[c];
            let d = layout.coord_dims[c];
            let mut col = gather::Column::new(ty, 0, 1);
            for p in &parts {
                let e = &layout.entries[p.entry];
                let piece = match (e.axis_of_dim[d], e.dim_len(d)) {
                    (Some(a), Some(len)) => {
                        let coord = self.coordinate(p.entry, c, len).await?;
                        let pos = axis_positions(&p.region, &strides_of(&p.region), a, 0, p.rows);
                        let idx =
                            UInt32Array::from_iter_values(pos.values().iter().map(|&x| x as u32));
                        take(coord.as_ref(), &idx, None)?
                    }
                    _ => new_null_array(ty, p.rows),
                };
                col.push_array(piece)?;
            }
            coords.insert(c, col.finish()?);
        }
        let mut index: HashMap<usize, ArrayRef> = HashMap::new();
        let mut dataset: Option<ArrayRef> = None;
        for &col in &spec.projection {
            match layout.column_kind(col) {
                ColumnKind::Index(d) => {
                    let mut out: Vec<u64> = Vec::with_capacity(rows);
                    let mut valid: Option<Vec<bool>> = None;
                    for p in &parts {
                        let e = &layout.entries[p.entry];
                        match e.axis_of_dim[d] {
                            Some(a) => {
                                let pos =
                                    axis_positions(&p.region, &strides_of(&p.region), a, 0, p.rows);
                                out.extend_from_slice(pos.values());
                                if let Some(v) = &mut valid {
                                    v.extend(std::iter::repeat_n(true, p.rows));
                                }
                            }
                            None => {
                                let before = out.len();
                                valid
                                    .get_or_insert_with(|| vec![true; before])
                                    .extend(std::iter::repeat_n(false, p.rows));
                                out.extend(std::iter::repeat_n(0, p.rows));
                            }
                        }
                    }
                    let nulls = valid.map(|v| NullBuffer::new(BooleanBuffer::from(v)));
                    index.insert(col, Arc::new(UInt64Array::new(out.into(), nulls)));
                }
                ColumnKind::Dataset if dataset.is_none() => {
                    let mut keys: Vec<u32> = Vec::with_capacity(rows);
                    for p in &parts {
                        keys.extend(std::iter::repeat_n(layout.ordinals[p.entry], p.rows));
                    }
                    dataset = Some(dictionary(&spec.store, keys)?);
                }
                _ => {}
            }
        }

        let batch_size = spec.batch_size.max(1);
        let mut r0 = 0;
        while r0 < rows {
            let n = batch_size.min(rows - r0);
            let mut columns = Vec::with_capacity(spec.projection.len());
            for (field, &col) in spec.schema.fields().iter().zip(&spec.projection) {
                let whole: Option<&ArrayRef> = match layout.column_kind(col) {
                    ColumnKind::Dataset => dataset.as_ref(),
                    ColumnKind::Index(_) => index.get(&col),
                    ColumnKind::Coord(c) => coords.get(&c),
                    ColumnKind::Value(v) => values.get(&v),
                };
                columns.push(match whole {
                    Some(a) => a.slice(r0, n),
                    None => new_null_array(field.data_type(), n),
                });
            }
            let batch = RecordBatch::try_new_with_options(
                Arc::clone(&spec.schema),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?;
            self.pending.push_back(batch);
            r0 += n;
        }
        Ok(())
    }

    /// The values of variable `v` over `parts`, as one column: encoded blocks where the store
    /// serves them, typed region reads where it does not, NULL where a dataset lacks it.
    async fn read_values(&mut self, parts: &[Part], v: usize) -> Result<ArrayRef> {
        let spec = Arc::clone(&self.spec);
        let layout = Arc::clone(&spec.layout);
        let variable = &layout.variables[v];
        let ty = &layout.value_types[v];
        let fast: Vec<usize> = (0..parts.len())
            .filter(|&i| {
                layout.entries[parts[i].entry]
                    .value(v)
                    .is_some_and(|s| gather::encoded_width(&s.schema.dtype, ty).is_some())
            })
            .collect();
        // Per part, its values as the store's blocks hold them, where it serves them.
        let mut encoded: Vec<Option<bytes::Bytes>> = vec![None; parts.len()];
        if !fast.is_empty() {
            let names: Vec<&str> = fast
                .iter()
                .map(|&i| layout.entries[parts[i].entry].dataset.as_str())
                .collect();
            let read = count_reads(
                &self.counter,
                spec.store.atlas.read_encoded(variable, &names),
            )
            .await;
            self.attribute_reads();
            let read = read.map_err(|err| {
                let e = &layout.entries[parts[fast[0]].entry];
                read_error(&spec, &e.dataset, variable, ReadError::Store(err))
            })?;
            for (&i, b) in fast.iter().zip(read) {
                encoded[i] = b;
            }
        }
        let rows: usize = parts.iter().map(|p| p.rows).sum();
        let mut col = gather::Column::new(ty, rows, ty.primitive_width().unwrap_or(0));
        for (p, bytes) in parts.iter().zip(encoded) {
            let e = &layout.entries[p.entry];
            let Some(s) = e.value(v) else {
                col.push_nulls(p.rows)?;
                continue;
            };
            match (bytes, gather::encoded_width(&s.schema.dtype, ty)) {
                (Some(b), Some(w)) => col.push_encoded(
                    &b,
                    &s.schema.dtype,
                    w,
                    &s.schema.shape,
                    &p.region,
                    s.schema.fill_value.as_ref(),
                ),
                _ => {
                    let view = self.view(&e.dataset).await?;
                    let fut = read_region(
                        &view,
                        variable,
                        &s.schema.dtype,
                        p.region.iter().map(|r| r.start).collect(),
                        p.region.iter().map(|r| r.len()).collect(),
                        s.schema.fill_value.as_ref(),
                        ty,
                    );
                    let r = count_reads(&self.counter, fut).await;
                    self.attribute_reads();
                    col.push_array(r.map_err(|err| read_error(&spec, &e.dataset, variable, err))?)?;
                }
            }
        }
        col.finish()
    }
}

/// What a partition reads of one unit: the region left once filters and a LIMIT applied.
struct Part {
    entry: usize,
    region: Vec<Range<usize>>,
    rows: usize,
}

/// Row-major strides of a region.
fn strides_of(region: &[Range<usize>]) -> Vec<usize> {
    let mut strides = vec![1usize; region.len()];
    for a in (0..region.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * region[a + 1].len();
    }
    strides
}

/// Positions along array axis `a` of rows `r0..r0+n` of `region`.
fn axis_positions(
    region: &[Range<usize>],
    strides: &[usize],
    a: usize,
    r0: usize,
    n: usize,
) -> UInt64Array {
    let len = region[a].len().max(1);
    let start = region[a].start as u64;
    let stride = strides[a].max(1);
    // Row-major: each position repeats `stride` times and the run cycles every `len` values,
    // so the column is filled run by run (one division per run, not per row).
    let mut out: Vec<u64> = Vec::with_capacity(n);
    let mut r = r0;
    let end = r0 + n;
    while r < end {
        let run = (stride - r % stride).min(end - r);
        let v = start + ((r / stride) % len) as u64;
        out.extend(std::iter::repeat_n(v, run));
        r += run;
    }
    UInt64Array::from(out)
}

/// `n` copies of dataset `entry`'s name, dictionary-encoded against every dataset name.
fn dataset_column(layout: &Layout, store: &AtlasStore, entry: usize, n: usize) -> Result<ArrayRef> {
    dictionary(store, vec![layout.ordinals[entry]; n])
}

/// The dataset column of rows whose datasets have the ordinals `keys`.
fn dictionary(store: &AtlasStore, keys: Vec<u32>) -> Result<ArrayRef> {
    Ok(Arc::new(DictionaryArray::<UInt32Type>::try_new(
        UInt32Array::from(keys),
        Arc::clone(&store.dictionary),
    )?))
}

/// Every ATLAS scan (`DataSourceExec` over an [`AtlasSource`]) in a physical plan.
pub fn atlas_scans(
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    let mut out = Vec::new();
    let mut stack = vec![Arc::clone(plan)];
    while let Some(p) = stack.pop() {
        if let Some(exec) = p.downcast_ref::<datafusion::datasource::source::DataSourceExec>()
            && exec.data_source().downcast_ref::<AtlasSource>().is_some()
        {
            out.push(Arc::clone(&p));
        }
        stack.extend(p.children().into_iter().cloned());
    }
    out
}

/// The metrics of every ATLAS scan in a plan that ran, summed by name (`bytes_read`,
/// `chunks_read`, `datasets_pruned`, …); empty when no scan ran (statistics answered).
pub fn scan_metrics(
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for scan in atlas_scans(plan) {
        if let Some(m) = scan.metrics() {
            for metric in m.aggregate_by_name().iter() {
                *out.entry(metric.value().name().to_string()).or_insert(0) +=
                    metric.value().as_usize();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_positions_filled_by_runs_equal_the_per_row_formula() {
        let region = vec![3..7, 0..5, 10..12];
        let mut strides = vec![1usize; 3];
        for a in (0..2).rev() {
            strides[a] = strides[a + 1] * region[a + 1].len();
        }
        let rows = 4 * 5 * 2;
        for a in 0..3 {
            for (r0, n) in [(0, rows), (7, 13), (rows - 1, 1), (5, 0)] {
                let got = axis_positions(&region, &strides, a, r0, n);
                let want: Vec<u64> = (r0..r0 + n)
                    .map(|r| region[a].start as u64 + ((r / strides[a]) % region[a].len()) as u64)
                    .collect();
                assert_eq!(got.values().to_vec(), want, "axis {a}, rows {r0}..+{n}");
            }
        }
    }
}
