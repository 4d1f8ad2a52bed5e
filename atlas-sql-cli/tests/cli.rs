//! The `atlas-sql` binary through its command line: query mode, formats, the shell driven through
//! stdin, errors and exit codes, info, and the demo.

#[path = "common/stations.rs"]
mod stations;

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use stations::store;

fn atlas_sql() -> Command {
    let mut cmd = Command::cargo_bin("atlas-sql").unwrap();
    cmd.env("ATLAS_SQL_HISTORY", "/dev/null");
    cmd
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn query_mode_prints_tables_and_the_first_store_is_the_default_schema() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let out = stdout_of(atlas_sql().args([
        "--store",
        &s,
        "-c",
        "SELECT dataset, count(temp) AS n, max(temp) AS hottest FROM temp GROUP BY dataset ORDER BY dataset",
        "-c",
        "SELECT count(*) FROM stations._datasets",
    ]));
    insta::assert_snapshot!("table", out);
}

#[test]
fn csv_json_and_ndjson_stream_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let sql = "SELECT dataset, time_index, time, temp FROM temp WHERE time_index < 2 AND dataset <> 'charlie' ORDER BY dataset, time_index";
    for format in ["csv", "json", "ndjson"] {
        let out = stdout_of(atlas_sql().args(["--store", &s, "--format", format, "-q", "-c", sql]));
        insta::assert_snapshot!(format, out);
    }
}

#[test]
fn csv_writes_list_values_as_their_text_rather_than_failing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let sql = "SELECT 'a' AS name, make_array(1, 2, 3) AS levels, CAST(NULL AS INT[]) AS none";
    let out = stdout_of(atlas_sql().args(["--store", &s, "--format", "csv", "-q", "-c", sql]));
    assert_eq!(out, "name,levels,none\na,\"[1, 2, 3]\",\n");
}

#[test]
fn the_shell_reads_statements_and_commands_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let script = "\\d\n\\d temp\nSELECT dataset,\n  depth_m\nFROM _datasets\nORDER BY depth_m DESC;\n\\format csv\nSELECT 1 + 1 AS two;\n\\q\nSELECT 'never reached';\n";
    let out = stdout_of(
        atlas_sql()
            .args(["--store", &format!("st={s}"), "-q"])
            .write_stdin(script),
    );
    insta::assert_snapshot!("shell", out);
}

#[test]
fn a_failing_statement_in_piped_input_sets_a_non_zero_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    atlas_sql()
        .args(["--store", &s])
        .write_stdin("SELECT * FROM nope;\nSELECT 1;\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope"))
        .stdout(predicate::str::contains("1 row"));
}

#[test]
fn errors_name_what_to_fix_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    atlas_sql()
        .args(["--store", &s, "-c", "SELECT salinity FROM temp"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("salinity"));
    atlas_sql()
        .args(["--store", "/no/such/store", "-c", "SELECT 1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("/no/such/store"));
    atlas_sql()
        .args(["--store", &s, "-f", "/no/such/file.sql"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("/no/such/file.sql"));
    atlas_sql()
        .args(["--format", "xml", "-c", "SELECT 1"])
        .assert()
        .code(2);
}

#[test]
fn explain_analyze_create_external_table_and_copy_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let out = stdout_of(atlas_sql().args([
        "--store",
        &s,
        "-c",
        "EXPLAIN ANALYZE SELECT max(temp) FROM temp WHERE dataset = 'bravo' AND time_index < 2",
    ]));
    assert!(out.contains("AtlasScan: variable=temp"), "{out}");
    assert!(out.contains("datasets_pruned=2"), "{out}");
    assert!(out.contains("chunks_read=1"), "{out}");

    let parquet = dir.path().join("temp.parquet");
    let out = stdout_of(atlas_sql().args([
        "-q",
        "-c",
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS ATLAS LOCATION '{s}' OPTIONS ('variable' 'temp')"
        ),
        "-c",
        &format!(
            "COPY (SELECT * FROM t) TO '{}' STORED AS PARQUET",
            parquet.display()
        ),
        "-c",
        &format!("SELECT count(*) AS n FROM '{}'", parquet.display()),
        "-c",
        &format!("SELECT count(*) AS n FROM atlas_scan('{s}', 'temp') WHERE temp IS NULL"),
    ]));
    assert!(parquet.exists());
    assert!(out.contains("| 12 |"), "{out}");
    assert!(out.contains("| 1 |"), "{out}");
}

#[test]
fn copy_stored_as_atlas_writes_a_store_that_opens_and_takes_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let warm = dir.path().join("warm.atlas");
    let warm = warm.to_str().unwrap();
    let out = stdout_of(atlas_sql().args([
        "--store",
        &s,
        "-q",
        "-c",
        &format!(
            "COPY (SELECT t.*, d.depth_m FROM temp t JOIN _datasets d USING (dataset) \
             WHERE temp > 10) TO '{warm}' STORED AS ATLAS"
        ),
    ]));
    assert!(out.contains("| 6     |"), "{out}");
    let out = stdout_of(atlas_sql().args([
        "--store",
        warm,
        "-c",
        "SELECT * FROM temp ORDER BY dataset, time_index",
        "-c",
        "SELECT * FROM _datasets ORDER BY dataset",
        "-c",
        "INSERT INTO temp (dataset, time_index, temp) VALUES ('delta', 1, 4.5)",
        "-c",
        "SELECT dataset, count(*) AS n, count(temp) AS values FROM temp GROUP BY dataset \
         ORDER BY dataset",
    ]));
    insta::assert_snapshot!("copy_to_atlas", out);
    // A second COPY to the same place is refused and leaves the store as it was.
    atlas_sql()
        .args([
            "--store",
            &s,
            "-c",
            &format!("COPY (SELECT * FROM temp) TO '{warm}' STORED AS ATLAS"),
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("is not empty"));
    let out =
        stdout_of(atlas_sql().args(["--store", warm, "-q", "-c", "SELECT count(*) FROM temp"]));
    assert!(out.contains("| 9 "), "{out}");
}

#[test]
fn info_describes_datasets_variables_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let out = stdout_of(atlas_sql().args(["info", &s]));
    let out = out.replace(&s, "[STORE]");
    let out: String = out
        .lines()
        .map(|l| {
            // Sizes depend on the codec version; keep the rest.
            match l.find(" segment") {
                Some(i) if l.starts_with("temp") || l.starts_with("time") => l[..i + 8].to_string(),
                _ if l.contains("on disk, generation") => {
                    l.split(", ").take(3).collect::<Vec<_>>().join(", ")
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("info", out);
}

#[test]
fn the_demo_builds_a_store_and_shows_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo");
    let out = stdout_of(atlas_sql().args(["demo", path.to_str().unwrap()]));
    assert!(out.contains("Built a demo store"), "{out}");
    assert!(out.contains("datasets_pruned=399"), "{out}");
    assert!(out.contains("datasets_pruned_by_stats="), "{out}");
    assert!(out.contains("datasets_pruned_by_dynamic_filter="), "{out}");
    assert!(out.contains("no array read: statistics answered"), "{out}");
    assert!(out.contains("one grid table"), "{out}");
    // A second run reuses the store.
    let again = stdout_of(atlas_sql().args(["demo", path.to_str().unwrap()]));
    assert!(again.contains("Using the demo store"), "{again}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn upgrade_brings_a_version_1_store_to_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("old.atlas");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../atlas-store/tests/golden/v1");
    copy_dir(&golden, &store);
    let s = store.to_str().unwrap();
    let info = stdout_of(atlas_sql().args(["info", s]));
    assert!(info.contains("format version 1"), "{info}");
    let out = stdout_of(atlas_sql().args(["upgrade", s]));
    assert!(
        out.contains("upgraded from format version 1 to 4 (checkpoint of generation 2)"),
        "{out}"
    );
    assert!(store.join("_checkpoint/00000000000000000002.atl").is_file());
    let out = stdout_of(atlas_sql().args(["upgrade", s]));
    assert!(out.contains("already at format version 4"), "{out}");
    let info = stdout_of(atlas_sql().args(["info", s]));
    assert!(info.contains("format version 4"), "{info}");
    let out = stdout_of(atlas_sql().args([
        "--store",
        s,
        "--format",
        "csv",
        "-c",
        "SELECT dataset, count(\"TEMP\") AS n FROM \"TEMP\" GROUP BY dataset",
    ]));
    assert_eq!(out, "dataset,n\nprofile_a,5\n");
    // A directory that is no store is refused by name, with exit code 1.
    atlas_sql()
        .args(["upgrade", dir.path().to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no ATLAS store at"));
}
