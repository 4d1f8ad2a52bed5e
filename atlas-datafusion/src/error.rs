//! The one error type of the SQL layer.

use datafusion::error::DataFusionError;

/// Everything that can go wrong while exposing a store to SQL.
///
/// Messages name the store location, variable, dataset or column involved. Inside DataFusion the
/// error travels as [`DataFusionError::External`], so the source chain is kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be opened or read.
    #[error("ATLAS store {location}: {source}")]
    Store {
        /// Where the store was looked for.
        location: String,
        /// What the store reported.
        #[source]
        source: Box<atlas_store::Error>,
    },
    /// A store location that is neither a path nor a URL the session knows.
    #[error("invalid ATLAS store location {location:?}: {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// Why it was refused.
        reason: String,
    },
    /// No dataset of the store has the variable.
    #[error("no variable {variable:?} in ATLAS store {location} (variables: {known})")]
    UnknownVariable {
        /// The variable asked for.
        variable: String,
        /// The store.
        location: String,
        /// The variables the store does have, comma-separated.
        known: String,
    },
    /// Datasets of a table whose type its column cannot hold, under
    /// `atlas.type_conflicts = 'error'`.
    #[error(
        "table {table:?}: {count} dataset{s} do{es} not fit column {column:?} ({table_type}); \
         dataset {dataset:?} has {dataset_type}. atlas.type_conflicts is 'error': set it to \
         'null' or 'exclude' to query the rest; SELECT * FROM _conflicts lists them all",
        table = first.table,
        column = first.column,
        table_type = first.table_type,
        dataset = first.dataset,
        dataset_type = first.dataset_type,
        s = if *count == 1 { "" } else { "s" },
        es = if *count == 1 { "es" } else { "" }
    )]
    TypeConflict {
        /// How many datasets of the table do not fit one of its columns.
        count: usize,
        /// The first of them.
        first: Box<crate::Conflict>,
    },
    /// A dtype with no SQL mapping (lists).
    #[error(
        "variable {variable:?} of dataset {dataset:?} has dtype {dtype}, which SQL cannot show"
    )]
    UnsupportedType {
        /// The variable.
        variable: String,
        /// The dataset holding it.
        dataset: String,
        /// Its dtype.
        dtype: String,
    },
    /// Two columns of a table would have the same name.
    #[error(
        "table {variable:?} would have two columns named {column:?} ({first} and {second}); \
         rename the dimension or variable in the store"
    )]
    NameCollision {
        /// The table (its variable, or the grid table's name).
        variable: String,
        /// The clashing column name.
        column: String,
        /// What the first column is.
        first: String,
        /// What the second column is.
        second: String,
    },
    /// Variables asked for in one grid table whose dimensions differ.
    #[error(
        "table {table:?}: {first:?} has dims ({first_dims}) but {other:?} has ({other_dims}); \
         the variables of one table share their dimensions"
    )]
    MixedDims {
        /// The table.
        table: String,
        /// Its first variable.
        first: String,
        /// That variable's dims, comma-separated.
        first_dims: String,
        /// A variable with other dims.
        other: String,
        /// Its dims.
        other_dims: String,
    },
    /// Bad arguments to a table function or `CREATE EXTERNAL TABLE`.
    #[error("{0}")]
    Usage(String),
    /// Rows that cannot be written as dataset `dataset`.
    #[error("cannot write dataset {dataset:?}: {reason}")]
    Write {
        /// The dataset the rows name.
        dataset: String,
        /// What is wrong with them.
        reason: String,
    },
    /// An error from DataFusion itself.
    #[error(transparent)]
    DataFusion(Box<DataFusionError>),
    /// An error from Arrow.
    #[error(transparent)]
    Arrow(Box<datafusion::arrow::error::ArrowError>),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => *e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

impl Error {
    pub(crate) fn store(location: &str, source: atlas_store::Error) -> Self {
        Error::Store {
            location: location.to_string(),
            source: Box::new(source),
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Error::DataFusion(Box::new(e))
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::Arrow(Box::new(e))
    }
}
