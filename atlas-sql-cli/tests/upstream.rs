//! Stores written by atlas-rust 0.17 through the command line: queried, described and
//! verified like ours; every command that writes refuses, naming the format.

use std::path::Path;

use assert_cmd::Command;

fn atlas_sql() -> Command {
    let mut cmd = Command::cargo_bin("atlas-sql").unwrap();
    cmd.env("ATLAS_SQL_HISTORY", "/dev/null");
    cmd
}

fn collection(dir: &Path) -> String {
    let path = dir.join("upstream");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(atlas_upstream_fixtures::mixed_017(&path))
        .unwrap();
    path.display().to_string()
}

fn output(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// What `sql` prints against `store` (registered as `s`), with `options`; it must succeed.
fn answer(store: &str, sql: &str, options: &[&str]) -> String {
    let schema = format!("s={store}");
    let mut args = vec!["--store", schema.as_str()];
    args.extend_from_slice(options);
    args.extend(["-c", sql]);
    let (code, out, err) = output(atlas_sql().args(&args));
    assert_eq!(code, Some(0), "{sql}: {err}");
    out
}

#[test]
fn an_upstream_collection_is_queried_described_and_verified_like_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = collection(dir.path());
    let (code, out, err) = output(atlas_sql().args([
        "--store",
        &s,
        "-c",
        "SELECT dataset, count(temperature) AS n, max(temperature) AS hottest, min(lat) AS south FROM temperature GROUP BY dataset ORDER BY dataset",
        "-c",
        r#"SELECT dataset, platform, cycle, serial FROM _datasets ORDER BY dataset"#,
    ]));
    assert_eq!(code, Some(0), "{err}");
    insta::assert_snapshot!("upstream_query", out);

    let (code, out, err) = output(atlas_sql().args(["info", &s]));
    assert_eq!(code, Some(0), "{err}");
    let out = out.replace(&s, "[STORE]");
    let out: String = out
        .lines()
        .map(|l| match l.find(" segment") {
            // Sizes depend on the upstream writer's codec.
            _ if l.starts_with("3 datasets") => {
                l.split(", ").take(3).collect::<Vec<_>>().join(", ")
            }
            Some(i) => l[..i + 8].to_string(),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("upstream_info", out);

    let (code, out, err) = output(atlas_sql().args(["verify", &s]));
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn commands_that_write_refuse_an_upstream_collection_naming_its_format() {
    let dir = tempfile::tempdir().unwrap();
    let s = collection(dir.path());
    let before = std::fs::read(Path::new(&s).join("data.atlas")).unwrap();
    for args in [
        vec!["compact", s.as_str()],
        vec!["vacuum", s.as_str()],
        vec!["vacuum", s.as_str(), "--dry-run"],
        vec!["delete", s.as_str(), "jan"],
        vec!["upgrade", s.as_str()],
        vec![
            "--store",
            s.as_str(),
            "-c",
            "INSERT INTO lat (dataset, lat_index, lat) VALUES ('x', 0, 1.0)",
        ],
    ] {
        let (code, out, err) = output(atlas_sql().args(&args));
        assert_ne!(code, Some(0), "{args:?}: {out}");
        assert!(
            err.contains("an atlas-rust 0.17 collection (data.atlas), which atlas-sql reads but does not write"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read(Path::new(&s).join("data.atlas")).unwrap(),
        before
    );
}

#[test]
fn verify_reports_a_damaged_segment_of_an_upstream_collection() {
    let dir = tempfile::tempdir().unwrap();
    let s = collection(dir.path());
    let path = Path::new(&s).join("data.atlas");
    let mut bytes = std::fs::read(&path).unwrap();
    // The first segment's first blocks: past the 8-byte header.
    for b in &mut bytes[8..72] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (code, out, err) = output(atlas_sql().args(["verify", &s]));
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(out.contains("data.atlas/"), "{out}");
}

#[test]
fn migrate_copies_an_upstream_collection_into_a_store_that_answers_every_query_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let s = collection(dir.path());
    let dst = dir.path().join("ours.atlas").display().to_string();
    let (code, out, err) = output(atlas_sql().args(["migrate", &s, &dst]));
    assert_eq!(code, Some(0), "{out}{err}");
    let shown: Vec<String> = out
        .replace(&s, "[SRC]")
        .replace(&dst, "[DST]")
        .lines()
        // The size of the new store depends on the codec's version.
        .map(|l| match l.rsplit_once(", ") {
            Some((head, _)) if l.starts_with("[DST]") => head.to_string(),
            _ => l.to_string(),
        })
        .collect();
    insta::assert_snapshot!("migrate", shown.join("\n"));

    let queries = [
        "SELECT dataset, count(temperature) AS n, sum(temperature) AS s, count(*) AS cells FROM temperature GROUP BY dataset ORDER BY dataset",
        "SELECT dataset, lat_index, lon_index, temperature FROM temperature WHERE temperature > 3 ORDER BY 1, 2, 3",
        "SELECT * FROM _datasets ORDER BY dataset",
        "SELECT dataset, station FROM station ORDER BY dataset",
        "SELECT dataset, count(*), min(time), max(time) FROM time GROUP BY dataset ORDER BY dataset",
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 's' ORDER BY 1, 2",
    ];
    for sql in queries {
        assert_eq!(answer(&dst, sql, &[]), answer(&s, sql, &[]), "{sql}");
    }
    let (code, out, err) = output(atlas_sql().args(["verify", &dst]));
    assert_eq!(code, Some(0), "{out}{err}");

    // The copy is ours: it takes writes.
    let (code, out, err) = output(atlas_sql().args(["delete", &dst, "jan"]));
    assert_eq!(code, Some(0), "{out}{err}");

    // A destination that holds anything is refused, and kept.
    let (code, _, err) = output(atlas_sql().args(["migrate", &s, &dst]));
    assert_eq!(code, Some(1));
    assert!(err.contains("is not empty"), "{err}");
    assert!(Path::new(&dst).join("_log").exists());
}

#[test]
fn migrate_of_a_damaged_collection_fails_naming_it_and_leaves_no_partial_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = collection(dir.path());
    let path = Path::new(&s).join("data.atlas");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[8..72] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    let dst = dir.path().join("ours.atlas");
    let (code, out, err) = output(atlas_sql().args(["migrate", &s, &dst.display().to_string()]));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("data.atlas"), "{err}");
    assert!(err.contains("nothing was migrated"), "{err}");
    assert!(!dst.exists(), "the partial copy is removed");
}

fn store_010(dir: &Path) -> String {
    let path = dir.join("upstream010");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(atlas_upstream_fixtures::v010::mixed_010(&path, false))
        .unwrap();
    path.display().to_string()
}

#[test]
fn an_atlas_rust_010_store_is_queried_verified_refused_writes_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_010(dir.path());
    let (code, out, err) = output(atlas_sql().args([
        "--store",
        &s,
        "-c",
        "SELECT dataset, count(temperature) AS n, max(temperature) AS hottest FROM temperature GROUP BY dataset ORDER BY dataset",
        "-c",
        "SELECT dataset, platform, cycle, qc FROM _datasets ORDER BY dataset",
    ]));
    assert_eq!(code, Some(0), "{err}");
    insta::assert_snapshot!("upstream010_query", out);

    let (code, out, err) = output(atlas_sql().args(["info", &s]));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("an atlas-rust 0.10 store"), "{out}");
    let (code, out, err) = output(atlas_sql().args(["verify", &s]));
    assert_eq!(code, Some(0), "{out}{err}");

    for args in [
        vec!["compact", s.as_str()],
        vec!["delete", s.as_str(), "jan"],
        vec![
            "--store",
            s.as_str(),
            "-c",
            "INSERT INTO lat (dataset, lat_index, lat) VALUES ('x', 0, 1.0)",
        ],
    ] {
        let (code, out, err) = output(atlas_sql().args(&args));
        assert_ne!(code, Some(0), "{args:?}: {out}");
        assert!(
            err.contains("an atlas-rust 0.10 store") && err.contains("reads but does not write"),
            "{args:?}: {err}"
        );
    }

    let dst = dir.path().join("ours.atlas").display().to_string();
    let (code, out, err) = output(atlas_sql().args(["migrate", "-q", &s, &dst]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("migrated 4 datasets"), "{out}");
    for sql in [
        "SELECT dataset, count(temperature) AS n, sum(temperature) AS s, count(*) AS cells FROM temperature GROUP BY dataset ORDER BY dataset",
        "SELECT * FROM _datasets ORDER BY dataset",
        "SELECT dataset, lat_index, flag FROM flag ORDER BY 1, 2",
        "SELECT dataset, lat_index, level FROM level ORDER BY 1, 2",
    ] {
        let csv = ["--format", "csv"];
        assert_eq!(answer(&dst, sql, &csv), answer(&s, sql, &csv), "{sql}");
    }
}
