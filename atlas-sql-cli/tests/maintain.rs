//! Store maintenance from the command line: `compact`, `vacuum` (and its dry run), `verify` on
//! intact and damaged stores, and `delete` by name and pattern, with their exit codes.

#[path = "common/stations.rs"]
mod stations;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use atlas_store::{Atlas, Attr};
use ndarray::{Array, IxDyn};
use predicates::prelude::*;

fn atlas_sql() -> Command {
    let mut cmd = Command::cargo_bin("atlas-sql").unwrap();
    cmd.env("ATLAS_SQL_HISTORY", "/dev/null");
    cmd
}

/// Output with the temporary directory and the random part of segment names replaced, so
/// snapshots are stable.
fn scrub(out: &[u8], dir: &Path) -> String {
    let text = String::from_utf8(out.to_vec()).unwrap();
    let text = text.replace(dir.to_str().unwrap(), "<dir>");
    let mut clean = String::new();
    let mut rest = text.as_str();
    // Segment names are `<generation>-<16 hex digits>.af`.
    while let Some(i) = rest.find(".af") {
        let head = &rest[..i];
        let id_start = head.len().saturating_sub(16);
        let is_id = head.len() >= 17
            && head[id_start..].chars().all(|c| c.is_ascii_hexdigit())
            && head.as_bytes()[id_start - 1] == b'-';
        if is_id {
            clean.push_str(&head[..id_start]);
            clean.push_str("<id>.af");
        } else {
            clean.push_str(head);
            clean.push_str(".af");
        }
        rest = &rest[i + 3..];
    }
    clean.push_str(rest);
    clean
}

fn run(dir: &Path, args: &[&str], code: i32) -> String {
    let out = atlas_sql()
        .args(args)
        .assert()
        .code(code)
        .get_output()
        .clone();
    let mut text = scrub(&out.stdout, dir);
    let err = scrub(&out.stderr, dir);
    if !err.is_empty() {
        text.push_str("--- stderr\n");
        text.push_str(&err);
    }
    text
}

fn csv(store: &str, sql: &str) -> Vec<String> {
    let out = atlas_sql()
        .args(["--store", store, "--format", "csv", "-q", "-c", sql])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// The stations store plus a second commit (`delta`), so each variable spans two segments.
fn two_commit_store(dir: &Path) -> String {
    let s = stations::store(dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut atlas = Atlas::open_path(&s).await.unwrap();
        let ds = atlas.create_dataset("delta").await.unwrap();
        ds.set_attribute("depth_m", Attr::Int64(40)).unwrap();
        ds.define_array::<f64>("time", vec!["time".into()], vec![4], None, None)
            .await
            .unwrap();
        let t = Array::from_shape_fn(IxDyn(&[4]), |ix| ix[0] as f64 * 3600.0);
        ds.write_array("time", vec![0], t.view()).await.unwrap();
        ds.define_array::<f32>("temp", vec!["time".into()], vec![4], None, None)
            .await
            .unwrap();
        let v = Array::from_shape_fn(IxDyn(&[4]), |ix| 30.0 + ix[0] as f32);
        ds.write_array("temp", vec![0], v.view()).await.unwrap();
        atlas.flush().await.unwrap();
    });
    s
}

fn segment_files(store: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for var in ["temp", "time"] {
        for e in std::fs::read_dir(Path::new(store).join(var)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "af") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

const SUMS: &str =
    "SELECT dataset, count(temp), sum(temp) FROM temp GROUP BY dataset ORDER BY dataset";

#[test]
fn compact_merges_segments_and_drops_the_bytes_of_deleted_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_commit_store(dir.path());
    assert_eq!(segment_files(&s).len(), 4);
    let before = csv(&s, SUMS);
    let out = run(dir.path(), &["delete", &s, "bravo"], 0);
    insta::assert_snapshot!("delete_one", out);
    let out = run(dir.path(), &["compact", &s, "--retention", "0"], 0);
    insta::assert_snapshot!("compact", out);
    // One segment per variable is left, and the answers are those of the store minus bravo.
    assert_eq!(segment_files(&s).len(), 2);
    let expected: Vec<String> = before
        .into_iter()
        .filter(|r| !r.starts_with("bravo"))
        .collect();
    assert_eq!(csv(&s, SUMS), expected);
    let out = run(dir.path(), &["compact", &s], 0);
    assert!(out.contains("no variable needed rewriting"), "{out}");
}

#[test]
fn vacuum_dry_run_lists_what_it_would_remove_and_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_commit_store(dir.path());
    // Compacting with the default retention keeps the replaced segments for older readers.
    let out = run(dir.path(), &["compact", &s], 0);
    assert!(out.contains("kept for now: 4 retired segments"), "{out}");
    // A crashed writer's leftover.
    let orphan = Path::new(&s).join("temp/000099-00000000deadbeef.af");
    std::fs::copy(&segment_files(&s)[0], &orphan).unwrap();
    let files = segment_files(&s);
    assert_eq!(files.len(), 7);
    let out = run(dir.path(), &["vacuum", &s, "--dry-run"], 0);
    insta::assert_snapshot!("vacuum_dry_run_default_retention", out);
    let out = run(
        dir.path(),
        &["vacuum", &s, "--dry-run", "--retention", "0"],
        0,
    );
    insta::assert_snapshot!("vacuum_dry_run", out);
    assert_eq!(segment_files(&s), files, "a dry run removes nothing");
    let out = run(dir.path(), &["vacuum", &s, "--retention", "0"], 0);
    insta::assert_snapshot!("vacuum", out);
    assert_eq!(segment_files(&s).len(), 2);
    assert!(!orphan.exists());
    assert_eq!(csv(&s, "SELECT count(*) FROM temp"), vec!["16"]);
    let out = run(dir.path(), &["vacuum", &s, "--retention", "forever"], 2);
    assert!(
        out.contains("is not a duration like 90s, 15m, 1h or 7d"),
        "{out}"
    );
}

#[test]
fn verify_names_every_damaged_segment_with_the_arrays_it_holds_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_commit_store(dir.path());
    let out = run(dir.path(), &["verify", &s], 0);
    insta::assert_snapshot!("verify_intact", out);
    let files = segment_files(&s);
    // One temp segment gets a flipped byte, one time segment disappears.
    let temp = files
        .iter()
        .find(|p| p.to_str().unwrap().contains("/temp/000001"))
        .unwrap();
    let mut bytes = std::fs::read(temp).unwrap();
    bytes[10] ^= 0x40;
    std::fs::write(temp, bytes).unwrap();
    let time = files
        .iter()
        .find(|p| p.to_str().unwrap().contains("/time/000002"))
        .unwrap();
    std::fs::remove_file(time).unwrap();
    let out = run(dir.path(), &["verify", &s], 4);
    insta::assert_snapshot!("verify_damaged", out);
    // Queries that need neither damaged file still answer.
    assert_eq!(
        csv(&s, "SELECT count(*) FROM temp WHERE dataset = 'delta'"),
        vec!["4"]
    );
    let out = run(
        dir.path(),
        &["verify", &dir.path().join("nowhere").to_string_lossy()],
        1,
    );
    assert!(out.contains("no ATLAS store at"), "{out}");
}

#[test]
fn delete_takes_names_and_like_patterns_in_one_commit_with_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_commit_store(dir.path());
    let out = run(dir.path(), &["delete", &s, "--like", "%a", "--dry-run"], 0);
    insta::assert_snapshot!("delete_dry_run", out);
    assert_eq!(csv(&s, "SELECT count(*) FROM _datasets"), vec!["4"]);
    // An unknown name stops everything, even the names that exist.
    let out = run(dir.path(), &["delete", &s, "alpha", "zulu"], 1);
    assert!(
        out.contains("has no dataset \"zulu\"; nothing was deleted"),
        "{out}"
    );
    assert_eq!(csv(&s, "SELECT count(*) FROM _datasets"), vec!["4"]);
    let out = run(dir.path(), &["delete", &s, "bravo", "--like", "%a"], 0);
    insta::assert_snapshot!("delete", out);
    assert_eq!(csv(&s, "SELECT dataset FROM _datasets"), vec!["charlie"]);
    let out = run(dir.path(), &["delete", &s, "--like", "x%"], 0);
    assert!(out.contains("nothing to delete"), "{out}");
    let out = run(dir.path(), &["delete", &s], 1);
    assert!(out.contains("--like"), "{out}");
}

#[test]
fn maintenance_commands_exist_in_the_help() {
    atlas_sql().arg("--help").assert().success().stdout(
        predicate::str::contains("compact")
            .and(predicate::str::contains("vacuum"))
            .and(predicate::str::contains("verify"))
            .and(predicate::str::contains("delete")),
    );
}
