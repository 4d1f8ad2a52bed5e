//! Store locations: a local directory, or a URL naming an object store and a prefix inside it.
//!
//! `s3://bucket/path`, `gs://bucket/path`, `az://container/path` (also `abfs://`, `azure://`,
//! and the `https://` forms of the three clouds) and `http(s)://host/path` (a WebDAV server:
//! opening a store lists its catalog folders) build their clients from the usual environment
//! variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as the clouds' own tools do. `file://` URLs and
//! plain paths are local directories.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::error::{Error, Result};

/// The URL schemes a location may use.
pub const SCHEMES: &str =
    "a local path, file://, s3://, gs://, az:// (abfs://, azure://) or http(s)://";

/// Whether `location` is a URL (`scheme://…`) rather than a local path. One-letter schemes are
/// Windows drive letters, not URLs.
pub fn is_url(location: &str) -> bool {
    location
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.len() > 1 && scheme.chars().all(is_scheme_char))
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// The object store at `location` and the store's prefix inside it.
///
/// A local path becomes a file system rooted at that directory (prefix empty); a URL becomes a
/// client for its bucket, container or host, configured from the environment, with the URL's
/// path as the prefix. Nothing is contacted: a wrong bucket or missing credentials show at the
/// first read, naming the location.
pub fn resolve(location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let bad = |reason: String| Error::Location {
        location: location.to_string(),
        reason,
    };
    if !is_url(location) {
        let fs = object_store::local::LocalFileSystem::new_with_prefix(location)
            .map_err(|e| Error::store(location, e))?;
        return Ok((Arc::new(fs), Path::default()));
    }
    let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
    let (scheme, prefix) = object_store::ObjectStoreScheme::parse(&url)
        .map_err(|_| bad(format!("unknown scheme {:?}; use {SCHEMES}", url.scheme())))?;
    use object_store::ObjectStoreScheme as S;
    let built: object_store::Result<Arc<dyn ObjectStore>> = match scheme {
        S::Local => {
            let dir = url
                .to_file_path()
                .map_err(|()| bad("not a local file URL".into()))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| Error::store(location, e))?;
            return Ok((Arc::new(fs), Path::default()));
        }
        S::Memory => {
            return Err(bad(
                "memory:// stores live in one process: pass the in-memory store itself \
                 (Atlas::open, or a runtime's object store registry)"
                    .into(),
            ));
        }
        #[cfg(feature = "cloud")]
        S::AmazonS3 => object_store::aws::AmazonS3Builder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Arc::new(s) as _),
        #[cfg(feature = "cloud")]
        S::GoogleCloudStorage => object_store::gcp::GoogleCloudStorageBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Arc::new(s) as _),
        #[cfg(feature = "cloud")]
        S::MicrosoftAzure => object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Arc::new(s) as _),
        #[cfg(feature = "cloud")]
        S::Http => object_store::http::HttpBuilder::new()
            .with_url(&url[..url::Position::BeforePath])
            .with_client_options(
                object_store::ClientOptions::new().with_allow_http(url.scheme() == "http"),
            )
            .build()
            .map(|s| Arc::new(s) as _),
        #[allow(unreachable_patterns)]
        _ => {
            return Err(bad(format!(
                "{}:// needs the cloud clients, left out of this build (atlas-store feature \
                 \"cloud\")",
                url.scheme()
            )));
        }
    };
    let store = built.map_err(|e| bad(e.to_string()))?;
    Ok((store, prefix))
}

/// Whether nothing is under `prefix` of `store`: where a new store may be created.
pub async fn is_vacant(store: &dyn ObjectStore, prefix: &Path) -> Result<bool> {
    use futures::StreamExt;
    match store.list(Some(prefix)).next().await {
        None => Ok(true),
        Some(Ok(_)) => Ok(false),
        Some(Err(source)) => Err(Error::store(prefix, source)),
    }
}

/// Whether the local folder `path` is missing or empty: where a new store may be created.
pub fn is_vacant_dir(path: impl AsRef<std::path::Path>) -> bool {
    std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths_and_drive_letters() {
        assert!(is_url("s3://bucket/store"));
        assert!(is_url("file:///tmp/store"));
        assert!(!is_url("store.atlas"));
        assert!(!is_url("C://store"));
        assert!(!is_url("/data/a b://c"));
    }

    #[test]
    fn an_unknown_scheme_is_refused_by_name() {
        let err = resolve("ftp://host/store").unwrap_err().to_string();
        assert!(err.contains("\"ftp\"") && err.contains("s3://"), "{err}");
        let err = resolve("memory:///store").unwrap_err().to_string();
        assert!(err.contains("in one process"), "{err}");
    }

    #[cfg(feature = "cloud")]
    #[test]
    fn a_cloud_url_names_its_bucket_and_keeps_its_path_as_the_prefix() {
        let (_, prefix) = resolve("s3://bucket/stores/argo.atlas").unwrap();
        assert_eq!(prefix.as_ref(), "stores/argo.atlas");
        let (_, prefix) = resolve("https://example.org/data/argo.atlas").unwrap();
        assert_eq!(prefix.as_ref(), "data/argo.atlas");
    }
}
