//! `atlas-sql serve-worker` and `atlas-sql --workers`: the same answers as one process, from
//! worker processes that open the store themselves.

#[path = "common/stations.rs"]
mod stations;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use stations::store;

/// A `serve-worker` process, killed on drop.
struct Worker {
    child: Child,
    address: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker(extra: &[&str]) -> Worker {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("atlas-sql"))
        .args(["serve-worker", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the worker exited before it listened")
            .expect("read");
        if let Some(rest) = line.strip_prefix("atlas-sql worker listening on ") {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    // Keep draining stderr so the worker never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Worker { child, address }
}

fn csv(args: &[&str]) -> String {
    let out = assert_cmd::Command::cargo_bin("atlas-sql")
        .expect("binary")
        .env("ATLAS_SQL_HISTORY", "/dev/null")
        .args(args)
        .args(["--format", "csv"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).expect("utf-8")
}

const QUERIES: &[&str] = &[
    "SELECT dataset, count(temp) AS n, max(temp) AS hottest FROM temp GROUP BY dataset ORDER BY dataset",
    "SELECT count(*), avg(temp) FROM temp WHERE temp > 5",
    "SELECT * FROM temp ORDER BY dataset, time_index LIMIT 5",
];

#[test]
fn queries_with_workers_print_what_one_process_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(dir.path());
    // One worker opens the store before serving, the other when the first task arrives.
    let a = worker(&["--store", &s]);
    let b = worker(&[]);
    let workers = format!("{},{}", a.address, b.address);
    for q in QUERIES {
        let local = csv(&["--store", &s, "-c", q]);
        let distributed = csv(&[
            "--store",
            &s,
            "--workers",
            &workers,
            "-c",
            "SET atlas.elements_per_task = 1",
            "-c",
            q,
        ]);
        assert!(local.lines().count() > 1, "{q}: {local}");
        assert_eq!(distributed, local, "{q}");
    }
    // The full scan ran as one task per worker (EXPLAIN ANALYZE shows the stages as run).
    let plan = csv(&[
        "--store",
        &s,
        "--workers",
        &workers,
        "-c",
        "SET atlas.elements_per_task = 1",
        "-c",
        "EXPLAIN ANALYZE SELECT avg(temp) FROM temp",
    ]);
    assert!(plan.contains("DistributedLeafExec"), "{plan}");
    assert!(plan.contains("tasks=2"), "{plan}");
}

#[test]
fn a_bad_worker_list_is_a_usage_error_naming_the_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(dir.path());
    let out = assert_cmd::Command::cargo_bin("atlas-sql")
        .expect("binary")
        .args(["--store", &s, "--workers", "nohost", "-c", "SELECT 1"])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).expect("utf-8");
    assert!(
        err.contains("--workers") && err.contains("\"nohost\""),
        "{err}"
    );
}
