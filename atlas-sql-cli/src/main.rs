//! The `atlas-sql` command line. Query mode, ingest and the demo are not built yet; until they
//! are, this binary says so and exits non-zero rather than pretending to work.

fn main() -> std::process::ExitCode {
    eprintln!(
        "atlas-sql {}: the SQL command line is not built yet; \
         see `cargo run --example quickstart -p atlas-store` for the store API",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
