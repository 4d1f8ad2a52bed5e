//! `COPY (query) TO '<store>' STORED AS ATLAS` and `INSERT INTO` an ATLAS table: a DataFusion
//! sink that writes rows through the store's bounded-memory write path (pending data spills to
//! uncommitted segments past a budget) and commits once, at the end.
//!
//! The sink asks for its input sorted by `dataset`, so a dataset's rows arrive together: it
//! holds one dataset at a time, and DataFusion's sort spills to disk when the rows of all
//! datasets do not fit the memory pool. Everything the sink holds is reserved in the pool.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use atlas_store::object_store::ObjectStore;
use atlas_store::object_store::path::Path;
use atlas_store::{Atlas, Codec, StoreConfig};
use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{GetExt, Statistics};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::{FileFormat, FileFormatFactory};
use datafusion::datasource::physical_plan::{
    FileOpener, FileScanConfig, FileSinkConfig, FileSource,
};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, OrderingRequirements};
use datafusion::physical_expr::{LexOrdering, LexRequirement, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::expressions::col;
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, Gauge, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, SendableRecordBatchStream,
};
use datafusion::physical_plan::{
    Distribution, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use futures::StreamExt;
use object_store::ObjectStoreExt as _;

use crate::error::{Error, Result};
use crate::write::{RowLayout, WriteOptions, dataset_runs, plan_dataset};

/// Pending bytes the sink lets the store hold before it spills them to uncommitted segments,
/// at most; less when the memory pool has less to give, never under [`MIN_PENDING`].
const PENDING_BUDGET: usize = 64 << 20;
const MIN_PENDING: usize = 1 << 20;

/// The ATLAS file type, so `COPY … STORED AS ATLAS` (or to a path ending `.atlas`) writes a
/// store. Registered by [`crate::register_atlas`]; reading goes through `CREATE EXTERNAL TABLE
/// … STORED AS ATLAS` and `atlas_scan`, since a store is not a set of files to list.
#[derive(Debug, Default)]
pub struct AtlasFormatFactory;

impl GetExt for AtlasFormatFactory {
    fn get_ext(&self) -> String {
        "atlas".to_string()
    }
}

impl FileFormatFactory for AtlasFormatFactory {
    fn create(
        &self,
        _state: &dyn Session,
        format_options: &HashMap<String, String>,
    ) -> DfResult<Arc<dyn FileFormat>> {
        Ok(Arc::new(AtlasFormat {
            options: WriteOptions::parse(format_options)?,
        }))
    }

    fn default(&self) -> Arc<dyn FileFormat> {
        Arc::new(AtlasFormat::default())
    }
}

/// The write side of the ATLAS file type, with the options of one `COPY`.
#[derive(Debug, Default)]
struct AtlasFormat {
    options: WriteOptions,
}

fn not_read_as_files() -> DataFusionError {
    DataFusionError::NotImplemented(
        "an ATLAS store is not read as a set of files: use CREATE EXTERNAL TABLE … STORED AS \
         ATLAS LOCATION '<store>', atlas_scan('<store>', '<variable>') or register the store"
            .into(),
    )
}

#[async_trait]
impl FileFormat for AtlasFormat {
    fn get_ext(&self) -> String {
        "atlas".to_string()
    }

    fn get_ext_with_compression(&self, _: &FileCompressionType) -> DfResult<String> {
        Ok(self.get_ext())
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        None
    }

    async fn infer_schema(
        &self,
        _: &dyn Session,
        _: &Arc<dyn ObjectStore>,
        _: &[object_store::ObjectMeta],
    ) -> DfResult<SchemaRef> {
        Err(not_read_as_files())
    }

    async fn infer_stats(
        &self,
        _: &dyn Session,
        _: &Arc<dyn ObjectStore>,
        _: SchemaRef,
        _: &object_store::ObjectMeta,
    ) -> DfResult<Statistics> {
        Err(not_read_as_files())
    }

    async fn create_physical_plan(
        &self,
        _: &dyn Session,
        _: FileScanConfig,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(not_read_as_files())
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        _state: &dyn Session,
        conf: FileSinkConfig,
        _order_requirements: Option<LexRequirement>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !conf.table_partition_cols.is_empty() {
            return Err(Error::Usage(
                "COPY … STORED AS ATLAS writes one store; PARTITIONED BY does not apply".into(),
            )
            .into());
        }
        let target = Target::Create {
            location: conf.original_url.clone(),
            codec: self.options.codec,
        };
        sink_plan(input, target, self.options.clone())
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        Arc::new(NoFileSource {
            table_schema,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

/// The file source of the ATLAS file type: refuses to open files (see [`not_read_as_files`]).
struct NoFileSource {
    table_schema: TableSchema,
    metrics: ExecutionPlanMetricsSet,
}

impl FileSource for NoFileSource {
    fn create_file_opener(
        &self,
        _: Arc<dyn ObjectStore>,
        _: &FileScanConfig,
        _: usize,
    ) -> DfResult<Arc<dyn FileOpener>> {
        Err(not_read_as_files())
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, _: usize) -> Arc<dyn FileSource> {
        Arc::new(NoFileSource {
            table_schema: self.table_schema.clone(),
            metrics: self.metrics.clone(),
        })
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "atlas"
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}

/// Where the rows go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A new store (`COPY`): the location must be free; on failure it is removed again.
    Create {
        location: String,
        codec: Option<Codec>,
    },
    /// An existing store (`INSERT INTO`): new datasets, or new arrays of existing ones.
    Append { location: String },
}

impl Target {
    fn location(&self) -> &str {
        match self {
            Target::Create { location, .. } | Target::Append { location } => location,
        }
    }
}

/// The plan writing `input` to `target`: [`AtlasSinkExec`] over `input`.
pub(crate) fn sink_plan(
    input: Arc<dyn ExecutionPlan>,
    target: Target,
    options: WriteOptions,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    sink_plan_as(input, target, options, &schema)
}

/// [`sink_plan`] with the columns mapped by `schema` (the input's columns, in order, with the
/// field metadata the input may have lost on its way, e.g. through the FFI).
fn sink_plan_as(
    input: Arc<dyn ExecutionPlan>,
    target: Target,
    options: WriteOptions,
    schema: &Schema,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let given = input.schema();
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    if names(schema) != names(&given) {
        return Err(Error::Usage(format!(
            "the rows to write have columns {:?}, not {:?}",
            names(&given),
            names(schema)
        ))
        .into());
    }
    let layout = RowLayout::new(schema, &options)?;
    let sink = Arc::new(AtlasSink {
        target,
        layout: Arc::new(layout),
        options,
        metrics: ExecutionPlanMetricsSet::new(),
    });
    Ok(Arc::new(AtlasSinkExec::new(input, sink)?))
}

/// Writes its input to a store and returns one row, the `count` of rows written.
///
/// It asks the optimizer for one partition sorted by `dataset` and, when executed, checks that
/// it got them, merging and sorting its input itself when not: a plan returned through the FFI
/// (`INSERT INTO` from Python) is optimised by a planner that does not see those requirements
/// and may repartition between the sink and its input.
#[derive(Debug)]
pub struct AtlasSinkExec {
    input: Arc<dyn ExecutionPlan>,
    sink: Arc<AtlasSink>,
    ordering: LexOrdering,
    properties: Arc<PlanProperties>,
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl AtlasSinkExec {
    fn new(input: Arc<dyn ExecutionPlan>, sink: Arc<AtlasSink>) -> DfResult<Self> {
        let by_dataset = col("dataset", &input.schema())?;
        let ordering =
            LexOrdering::new([PhysicalSortExpr::new(by_dataset, SortOptions::default())])
                .ok_or_else(|| DataFusionError::Internal("an empty sort order".into()))?;
        let properties = PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Ok(AtlasSinkExec {
            input,
            sink,
            ordering,
            properties: Arc::new(properties),
        })
    }

    /// `input` as one partition sorted by `dataset`: as is when it already is.
    fn arranged(&self) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = Arc::clone(&self.input);
        let sorted = input
            .properties()
            .equivalence_properties()
            .ordering_satisfy(self.ordering.clone())?;
        let partitions = input.properties().output_partitioning().partition_count();
        Ok(match (partitions, sorted) {
            (1, true) => input,
            (_, true) => Arc::new(SortPreservingMergeExec::new(self.ordering.clone(), input)),
            (1, false) => Arc::new(SortExec::new(self.ordering.clone(), input)),
            (_, false) => Arc::new(SortExec::new(
                self.ordering.clone(),
                Arc::new(CoalescePartitionsExec::new(input)),
            )),
        })
    }
}

impl DisplayAs for AtlasSinkExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AtlasSinkExec: ")?;
        self.sink.fmt_as(t, f)
    }
}

impl ExecutionPlan for AtlasSinkExec {
    fn name(&self) -> &'static str {
        "AtlasSinkExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children).map_err(|c| {
            DataFusionError::Internal(format!("AtlasSinkExec takes one child, not {}", c.len()))
        })?;
        Ok(Arc::new(AtlasSinkExec::new(input, Arc::clone(&self.sink))?))
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![Some(OrderingRequirements::new(LexRequirement::from(
            self.ordering.clone(),
        )))]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "AtlasSinkExec has one partition, not {partition}"
            )));
        }
        let data = self.arranged()?.execute(0, Arc::clone(&context))?;
        let sink = Arc::clone(&self.sink);
        let schema = count_schema();
        let out = Arc::clone(&schema);
        let written = futures::stream::once(async move {
            let rows = sink.write_all(data, &context).await?;
            Ok(RecordBatch::try_new(
                out,
                vec![Arc::new(UInt64Array::from(vec![rows]))],
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, written)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.sink.metrics.clone_inner())
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        for e in self.ordering.iter() {
            if f(&e.expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }
}

/// Writes rows sorted by `dataset` to a store.
#[derive(Debug)]
struct AtlasSink {
    target: Target,
    layout: Arc<RowLayout>,
    options: WriteOptions,
    metrics: ExecutionPlanMetricsSet,
}

impl DisplayAs for AtlasSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrays: Vec<&str> = self.layout.arrays.iter().map(|a| a.name.as_str()).collect();
        match &self.target {
            Target::Create { location, .. } => write!(f, "new store {location}")?,
            Target::Append { location } => write!(f, "insert into {location}")?,
        }
        write!(f, ", arrays=[{}]", arrays.join(", "))
    }
}

/// The sink's counters, registered once per execution.
struct SinkMetrics {
    datasets: Count,
    arrays: Count,
    cells: Count,
    peak: Gauge,
}

impl AtlasSink {
    fn sink_metrics(&self) -> SinkMetrics {
        let m = |name: &'static str| MetricBuilder::new(&self.metrics).global_counter(name);
        SinkMetrics {
            datasets: m("datasets_written"),
            arrays: m("arrays_written"),
            cells: m("cells_written"),
            peak: MetricBuilder::new(&self.metrics).global_gauge("peak_reserved_bytes"),
        }
    }

    /// Opens or creates the target store; `true` when this call created it.
    async fn open(&self, context: &TaskContext, budget: usize) -> Result<(Atlas, Created)> {
        let runtime = context.runtime_env();
        match &self.target {
            Target::Append { location } => {
                let (store, prefix) = crate::store::object_store_of(location, &runtime)?;
                let atlas = Atlas::open(store, prefix)
                    .await
                    .map_err(|e| Error::store(location, e))?;
                atlas.set_pending_budget(budget);
                Ok((atlas, Created::No))
            }
            Target::Create { location, codec } => {
                let config = StoreConfig {
                    codec: codec.unwrap_or_default(),
                    pending_budget: budget,
                    ..StoreConfig::default()
                };
                let taken = || {
                    Error::Usage(format!(
                        "COPY … STORED AS ATLAS writes a new store, and {location} is not \
                         empty; pick another location (INSERT INTO a table of an existing \
                         store adds datasets to it)"
                    ))
                };
                if atlas_store::location::is_url(location) {
                    let (store, prefix) = crate::store::object_store_of(location, &runtime)?;
                    let vacant = atlas_store::location::is_vacant(store.as_ref(), &prefix)
                        .await
                        .map_err(|e| Error::store(location, e))?;
                    if !vacant {
                        return Err(taken());
                    }
                    let atlas = Atlas::create(Arc::clone(&store), prefix.clone(), config)
                        .await
                        .map_err(|e| Error::store(location, e))?;
                    Ok((atlas, Created::Objects(store, prefix)))
                } else {
                    let path = std::path::PathBuf::from(location);
                    let existed = path.exists();
                    if !atlas_store::location::is_vacant_dir(&path) {
                        return Err(taken());
                    }
                    let created = Created::Directory {
                        path: path.clone(),
                        existed,
                    };
                    // A failed create removes nothing: another writer may have made the store.
                    let atlas = Atlas::create_path(&path, config)
                        .await
                        .map_err(|e| Error::store(location, e))?;
                    Ok((atlas, created))
                }
            }
        }
    }

    async fn write_rows(
        &self,
        atlas: &mut Atlas,
        mut data: SendableRecordBatchStream,
        reservation: &mut MemoryReservation,
        metrics: &SinkMetrics,
    ) -> Result<u64> {
        let mut rows = 0u64;
        let mut current: Option<Held> = None;
        // Datasets this statement wrote: one seen again means its rows were not together.
        let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
        while let Some(batch) = data.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            rows += batch.num_rows() as u64;
            // The `dataset` column's dictionary is every dataset name of the source store:
            // counted as its keys only, or each batch would be charged all of them.
            let size: usize = batch
                .columns()
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != self.layout.dataset)
                .map(|(_, c)| c.get_array_memory_size())
                .sum::<usize>()
                + 8 * batch.num_rows();
            for (name, run) in dataset_runs(&batch, &self.layout)? {
                let name = name.as_str();
                if current.as_ref().is_some_and(|h| h.name != name)
                    && let Some(held) = current.take()
                {
                    done.insert(held.name.clone());
                    self.finish(atlas, held, reservation, metrics).await?;
                }
                if done.contains(name) {
                    return Err(Error::Write {
                        dataset: name.to_string(),
                        reason: "its rows came apart (the input was not sorted by dataset)".into(),
                    });
                }
                let share = size * run.len() / batch.num_rows();
                grow(reservation, share, metrics, || {
                    format!("holding the rows of dataset {name:?}")
                })?;
                let held = current.get_or_insert_with(|| Held {
                    name: name.to_string(),
                    runs: Vec::new(),
                    bytes: 0,
                });
                held.runs.push(batch.slice(run.start, run.len()));
                held.bytes += share;
            }
        }
        if let Some(done) = current.take() {
            self.finish(atlas, done, reservation, metrics).await?;
        }
        Ok(rows)
    }

    /// Writes one dataset's rows and lets go of them.
    async fn finish(
        &self,
        atlas: &mut Atlas,
        held: Held,
        reservation: &mut MemoryReservation,
        metrics: &SinkMetrics,
    ) -> Result<()> {
        let location = self.target.location();
        let existing = if atlas.dataset_exists(&held.name) {
            Some(
                atlas
                    .open_dataset(&held.name)
                    .await
                    .map_err(|e| Error::store(location, e))?,
            )
        } else {
            None
        };
        // An existing dataset's dimensions keep their lengths.
        let mut lengths: HashMap<String, usize> = HashMap::new();
        if let Some(ds) = &existing {
            for array in ds.list_arrays() {
                if let Some(schema) = ds.array_meta(&array) {
                    for (d, n) in schema.dims.iter().zip(&schema.shape) {
                        lengths.entry(d.clone()).or_insert(*n);
                    }
                }
            }
        }
        let plan = plan_dataset(&self.layout, &held.name, &held.runs, &lengths)?;
        grow(reservation, plan.bytes, metrics, || {
            format!("assembling the arrays of dataset {:?}", held.name)
        })?;
        let ds = match existing {
            Some(ds) => ds,
            None => atlas
                .create_dataset(&held.name)
                .await
                .map_err(|e| Error::store(location, e))?,
        };
        let written = crate::write::write_dataset(
            location,
            &ds,
            &self.layout,
            &held.runs,
            &plan,
            &self.options.chunks,
        )
        .await?;
        reservation.shrink(plan.bytes + held.bytes);
        metrics.datasets.add(1);
        metrics.arrays.add(written.arrays);
        metrics.cells.add(written.cells);
        Ok(())
    }
}

/// The rows of the dataset being gathered.
struct Held {
    name: String,
    runs: Vec<RecordBatch>,
    bytes: usize,
}

/// What a failed `COPY` removes again.
enum Created {
    No,
    Directory {
        path: std::path::PathBuf,
        existed: bool,
    },
    Objects(Arc<dyn ObjectStore>, Path),
}

/// Removes what a `COPY` created unless disarmed: when the write fails, and when the statement
/// is cancelled (its future dropped, as Ctrl-C does) or panics.
struct Undo {
    created: Created,
    armed: bool,
}

impl Undo {
    async fn run(mut self) {
        self.armed = false;
        std::mem::replace(&mut self.created, Created::No)
            .remove()
            .await;
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match std::mem::replace(&mut self.created, Created::No) {
            Created::No => {}
            Created::Directory { path, existed } => remove_directory(&path, existed),
            objects @ Created::Objects(..) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { objects.remove().await });
                }
            }
        }
    }
}

/// Removes a store directory a `COPY` made, leaving an empty directory that was there before.
fn remove_directory(path: &std::path::Path, existed: bool) {
    let _ = std::fs::remove_dir_all(path);
    if existed {
        let _ = std::fs::create_dir(path);
    }
}

impl Created {
    /// Removes what the write created; best effort, the write's own error is what the user
    /// needs to see.
    async fn remove(self) {
        match self {
            Created::No => {}
            Created::Directory { path, existed } => remove_directory(&path, existed),
            Created::Objects(store, prefix) => {
                let paths: Vec<Path> = store
                    .list(Some(&prefix))
                    .filter_map(|m| async move { m.ok().map(|m| m.location) })
                    .collect()
                    .await;
                for p in paths {
                    let _ = store.delete(&p).await;
                }
            }
        }
    }
}

fn grow(
    reservation: &mut MemoryReservation,
    bytes: usize,
    metrics: &SinkMetrics,
    what: impl FnOnce() -> String,
) -> Result<()> {
    reservation.try_grow(bytes).map_err(|e| {
        Error::Usage(format!(
            "{} needs {bytes} more bytes than the memory pool can give ({e}); a dataset's \
             rows are held whole while its arrays are assembled",
            what()
        ))
    })?;
    metrics.peak.set_max(reservation.size());
    Ok(())
}

/// Reserves the store's pending budget in the pool: an eighth of a bounded pool (the sort
/// before the sink and the dataset being assembled need the rest), at most [`PENDING_BUDGET`]
/// and at least [`MIN_PENDING`].
fn reserve_budget(reservation: &mut MemoryReservation, pool: &dyn MemoryPool) -> Result<usize> {
    let budget = match pool.memory_limit() {
        MemoryLimit::Finite(limit) => (limit / 8).clamp(MIN_PENDING, PENDING_BUDGET),
        MemoryLimit::Infinite | MemoryLimit::Unknown => PENDING_BUDGET,
    };
    reservation.try_grow(budget).map_err(|e| {
        Error::Usage(format!(
            "writing a store needs {budget} bytes of the memory pool for pending data: {e}"
        ))
    })?;
    Ok(budget)
}

impl AtlasSink {
    /// Writes `data` (sorted by `dataset`) and commits; on error, removes a store it created.
    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let metrics = self.sink_metrics();
        let mut reservation = MemoryConsumer::new("AtlasSink").register(context.memory_pool());
        let budget = reserve_budget(&mut reservation, context.memory_pool().as_ref())?;
        metrics.peak.set_max(reservation.size());
        let (mut atlas, created) = self.open(context, budget).await?;
        let undo = Undo {
            created,
            armed: true,
        };
        let written = match self
            .write_rows(&mut atlas, data, &mut reservation, &metrics)
            .await
        {
            Ok(rows) => atlas
                .flush()
                .await
                .map(|()| rows)
                .map_err(|e| Error::store(self.target.location(), e)),
            Err(e) => Err(e),
        };
        match written {
            Ok(rows) => {
                undo.disarm();
                Ok(rows)
            }
            Err(e) => {
                drop(atlas);
                undo.run().await;
                Err(e.into())
            }
        }
    }
}

/// `INSERT INTO` a table of the store at `location`: the plan writing `input` to it.
pub(crate) fn insert_plan(
    location: &str,
    input: Arc<dyn ExecutionPlan>,
    insert_op: InsertOp,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if insert_op != InsertOp::Append {
        return Err(Error::Usage(format!(
            "INSERT {insert_op} into an ATLAS table is not supported: INSERT INTO adds datasets \
             (or arrays they lack); delete datasets with `atlas-sql delete` first"
        ))
        .into());
    }
    sink_plan(
        input,
        Target::Append {
            location: location.to_string(),
        },
        WriteOptions::default(),
    )
}

/// A table whose `INSERT INTO` writes a new store at `location`, with the columns of `schema`
/// mapped as `COPY … STORED AS ATLAS` maps them and `options` its `OPTIONS` (`shape.<column>`,
/// `dims.<column>`, `chunk`, `codec`, `attributes`). For callers that can run an `INSERT` but
/// not a `COPY` of our file type, such as DataFusion's Python bindings. It has no rows to read.
pub fn new_store_table(
    location: &str,
    schema: SchemaRef,
    options: &HashMap<String, String>,
) -> Result<Arc<dyn TableProvider>> {
    let options = WriteOptions::parse(options)?;
    RowLayout::new(&schema, &options)?;
    Ok(Arc::new(NewStoreTable {
        location: location.to_string(),
        schema,
        options,
    }))
}

/// See [`new_store_table`].
#[derive(Debug)]
struct NewStoreTable {
    location: String,
    schema: SchemaRef,
    options: WriteOptions,
}

#[async_trait]
impl TableProvider for NewStoreTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(Error::Usage(format!(
            "the store {} is written by INSERT INTO this table, not read through it; open it \
             once written",
            self.location
        ))
        .into())
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(Error::Usage(format!(
                "INSERT {insert_op} does not apply to a new store; INSERT INTO writes it"
            ))
            .into());
        }
        let target = Target::Create {
            location: self.location.clone(),
            codec: self.options.codec,
        };
        // The table's own schema keeps the marks of `_datasets` attribute columns.
        sink_plan_as(input, target, self.options.clone(), &self.schema)
    }
}
