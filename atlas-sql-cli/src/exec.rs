//! Running SQL text and printing results: table, CSV, JSON, NDJSON. CSV and JSON stream batch by
//! batch, so a result of any size prints in bounded memory.

use std::io::Write;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;

/// What went wrong, as the user should read it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From DataFusion (planning or execution).
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    /// From the SQL layer.
    #[error("{0}")]
    Sql(#[from] atlas_datafusion::Error),
    /// From the store.
    #[error("{0}")]
    Store(#[from] atlas_store::Error),
    /// Writing output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// Formatting output failed.
    #[error("formatting output: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Bad arguments or input.
    #[error("{0}")]
    Usage(String),
    /// Failures already printed (by the shell); only the exit code is left to set.
    #[error("{0} statement(s) failed")]
    Reported(usize),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Format as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| format!("unknown format {s:?}; use table, csv, json or ndjson"))
    }
}

/// How results are printed.
#[derive(Debug)]
pub struct Printer {
    pub format: Format,
    pub timing: bool,
    pub quiet: bool,
}

impl Printer {
    pub fn new(format: Format, timing: bool, quiet: bool) -> Self {
        Printer {
            format,
            timing,
            quiet,
        }
    }

    /// Runs a planned statement and prints what it returns.
    pub async fn print(&self, df: DataFrame) -> Result<(), CliError> {
        let start = Instant::now();
        let rows = if df.schema().fields().is_empty() {
            df.collect().await?;
            None
        } else {
            Some(self.write(df).await?)
        };
        if self.timing {
            eprintln!("Time: {:.3} ms", start.elapsed().as_secs_f64() * 1e3);
        }
        if let (Some(n), false, Format::Table) = (rows, self.quiet, self.format) {
            println!("({n} row{})", if n == 1 { "" } else { "s" });
        }
        Ok(())
    }

    async fn write(&self, df: DataFrame) -> Result<usize, CliError> {
        let stdout = std::io::stdout();
        match self.format {
            Format::Table => {
                let batches = df.collect().await?;
                let rows = batches.iter().map(|b| b.num_rows()).sum();
                let mut out = stdout.lock();
                writeln!(out, "{}", pretty_format_batches(&batches)?)?;
                Ok(rows)
            }
            Format::Csv => {
                let writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(stdout.lock());
                stream_into(df, writer, |w, b| w.write(&csv_cells(b)?), |_| Ok(())).await
            }
            Format::Json => {
                let writer = arrow::json::ArrayWriter::new(stdout.lock());
                stream_into(
                    df,
                    writer,
                    |w, b| w.write(b),
                    |mut w| {
                        w.finish()?;
                        let mut out = w.into_inner();
                        writeln!(out)?;
                        Ok(())
                    },
                )
                .await
            }
            Format::Ndjson => {
                let writer = arrow::json::LineDelimitedWriter::new(stdout.lock());
                stream_into(df, writer, |w, b| w.write(b), |mut w| Ok(w.finish()?)).await
            }
        }
    }
}

/// `batch` with every nested column (lists, structs, maps: list attributes in `_datasets`, for
/// one) as the text the table format shows, which CSV has no other way to hold.
fn csv_cells(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use std::sync::Arc;
    let nested = |t: &DataType| t.is_nested();
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default().with_null("");
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !nested(field.data_type()) {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(column));
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text: StringArray = (0..column.len())
            .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
            .collect();
        fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
        columns.push(Arc::new(text));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Writes a query's batches to `writer` as they arrive; returns the row count.
async fn stream_into<W>(
    df: DataFrame,
    mut writer: W,
    write: impl Fn(&mut W, &RecordBatch) -> Result<(), arrow::error::ArrowError>,
    finish: impl FnOnce(W) -> Result<(), CliError>,
) -> Result<usize, CliError> {
    let mut stream = df.execute_stream().await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        write(&mut writer, &batch)?;
    }
    finish(writer)?;
    Ok(rows)
}

/// Splits SQL text into statements (quotes and comments respected).
pub fn statements(sql: &str) -> Result<Vec<datafusion::sql::parser::Statement>, CliError> {
    Ok(DFParser::parse_sql_with_dialect(sql, &GenericDialect {})?
        .into_iter()
        .collect())
}

/// Runs every statement of `sql`, printing each result.
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
    printer: &mut Printer,
) -> Result<(), CliError> {
    for statement in statements(sql)? {
        let plan = ctx.state().statement_to_plan(statement).await?;
        let df = ctx.execute_logical_plan(plan).await?;
        printer.print(df).await?;
    }
    Ok(())
}
