//! What the CLI's test binaries share.

use std::path::{Path, PathBuf};

/// The shared real-data folder (`../shared/data`): `None` with a message when it is absent,
/// and a failure when it is absent under `CI=true`, where every test must run.
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if p.is_dir() {
        Some(p)
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is absent (the shared real-data folder), and CI=true runs every test",
            p.display()
        );
    } else {
        eprintln!(
            "skipped: {} is absent (the shared real-data folder)",
            p.display()
        );
        None
    }
}
