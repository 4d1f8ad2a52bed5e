//! Writes a fixture store with atlas-rust itself, for tests outside Rust (the Python suite):
//!
//! ```text
//! make-upstream-fixture mixed DIR                 # atlas-rust 0.17
//! make-upstream-fixture profiles DIR N LEVELS     # atlas-rust 0.17
//! make-upstream-fixture mixed010 DIR              # atlas-rust 0.10
//! make-upstream-fixture profiles010 DIR N LEVELS  # atlas-rust 0.10
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let written = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["mixed", dir] => runtime
            .block_on(atlas_upstream_fixtures::mixed_017(dir.as_ref()))
            .map_err(|e| e.to_string()),
        ["profiles", dir, n, levels] => {
            let (Ok(n), Ok(levels)) = (n.parse(), levels.parse()) else {
                eprintln!("error: N and LEVELS are counts, got {n:?} and {levels:?}");
                return ExitCode::from(2);
            };
            runtime
                .block_on(atlas_upstream_fixtures::profiles_017(
                    dir.as_ref(),
                    n,
                    levels,
                ))
                .map_err(|e| e.to_string())
        }
        ["mixed010", dir] => runtime
            .block_on(atlas_upstream_fixtures::v010::mixed_010(
                dir.as_ref(),
                false,
            ))
            .map_err(|e| e.to_string()),
        ["profiles010", dir, n, levels] => {
            let (Ok(n), Ok(levels)) = (n.parse(), levels.parse()) else {
                eprintln!("error: N and LEVELS are counts, got {n:?} and {levels:?}");
                return ExitCode::from(2);
            };
            runtime
                .block_on(atlas_upstream_fixtures::v010::profiles_010(
                    dir.as_ref(),
                    n,
                    levels,
                ))
                .map_err(|e| e.to_string())
        }
        _ => {
            eprintln!(
                "usage: make-upstream-fixture mixed|mixed010 DIR | profiles|profiles010 DIR N \
                 LEVELS"
            );
            return ExitCode::from(2);
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
