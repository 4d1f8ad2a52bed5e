//! The DataFusion session of query mode: every `--store` a schema, the first the default one.

use std::sync::Arc;

use atlas_datafusion::{AtlasCodec, AtlasStore, register_atlas, register_opened};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::exec::CliError;

/// The schema name of a store: `NAME=` if given, else its directory name without extension,
/// with characters SQL identifiers do not like replaced by `_`.
pub fn schema_name(spec: &str) -> (String, String) {
    if let Some((name, location)) = spec.split_once('=')
        && !name.is_empty()
        && !name.contains('/')
    {
        return (name.to_string(), location.to_string());
    }
    let trimmed = spec.trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    let stem = last.split('.').next().unwrap_or(last);
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "store_");
    }
    (name, spec.to_string())
}

/// A session with the ATLAS SQL surface and every store registered, with the opened stores;
/// with `workers`, a coordinator that runs each query's scans on them.
pub async fn build(
    stores: &[String],
    workers: Option<&str>,
) -> Result<(SessionContext, Vec<Arc<AtlasStore>>), CliError> {
    let specs: Vec<(String, String)> = stores.iter().map(|s| schema_name(s)).collect();
    let mut config = SessionConfig::new().with_information_schema(true);
    if let Some((first, _)) = specs.first() {
        config = config.with_default_catalog_and_schema("datafusion", first);
    }
    let ctx = match workers {
        None => SessionContext::new_with_config(config),
        Some(list) => {
            let workers = atlas_distributed::Workers::parse(list)
                .map_err(|e| CliError::Usage(format!("--workers: {e}")))?;
            let state = atlas_distributed::distribute(
                SessionStateBuilder::new()
                    .with_default_features()
                    .with_config(config),
                workers,
                AtlasCodec::new(),
            )
            .build();
            SessionContext::new_with_state(state)
        }
    };
    // `SELECT * FROM 'file.parquet'` works, as in datafusion-cli.
    let ctx = ctx.enable_url_table();
    register_atlas(&ctx);
    let mut opened = Vec::with_capacity(specs.len());
    for (i, (name, location)) in specs.iter().enumerate() {
        if specs[..i].iter().any(|(n, _)| n == name) {
            return Err(CliError::Usage(format!(
                "two stores would both be schema {name:?}; name one with --store OTHER={location}"
            )));
        }
        let store = AtlasStore::open(location, &ctx.runtime_env()).await?;
        register_opened(&ctx, name, Arc::clone(&store))?;
        opened.push(store);
    }
    Ok((ctx, opened))
}
