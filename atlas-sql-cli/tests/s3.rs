//! Stores on S3: ingest into, query, verify and compact an `s3://` store served by a real
//! S3-compatible server (`moto_server`, from PyPI's `moto[server]`) that the test starts.
//!
//! The server is `$ATLAS_MOTO_SERVER` or `moto_server` on the `PATH`; `scripts/test` installs
//! it. Without it the tests say so and pass, except under `CI=true`, where they fail.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// A running `moto_server`, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ATLAS_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// Starts a server with bucket `atlas`; `None` (with a message) when there is no server to
/// start, a failure under `CI=true`.
fn moto() -> Option<Moto> {
    let Some(bin) = moto_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("moto_server not found (set ATLAS_MOTO_SERVER), and CI=true runs every test");
        }
        eprintln!("skipped: moto_server not found (pip install 'moto[server]')");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = std::process::Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(status) = http(port, "PUT", "/atlas") {
            assert!(
                status.starts_with("HTTP/1.1 200"),
                "create bucket: {status}"
            );
            return Some(moto);
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One unsigned HTTP request (moto accepts them); the status line.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.lines().next().unwrap_or_default().to_string())
}

impl Moto {
    /// `atlas-sql` with the environment an S3 user sets, pointed at this server.
    fn atlas_sql(&self) -> Command {
        let mut cmd = Command::cargo_bin("atlas-sql").unwrap();
        cmd.env("ATLAS_SQL_HISTORY", "/dev/null")
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1");
        cmd
    }
}

fn ersst(data: &Path, months: &[u32]) -> Vec<String> {
    months
        .iter()
        .map(|m| {
            data.join(format!("ersst/ersst.v5.2000{m:02}.nc"))
                .display()
                .to_string()
        })
        .collect()
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().clone();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_s3_store_ingests_and_answers_as_the_same_store_on_disk() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let Some(moto) = moto() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.atlas");
    let local = local.to_str().unwrap();
    let remote = "s3://atlas/stores/ersst.atlas";
    let files = ersst(&data, &[1, 2, 3]);
    for store in [local, remote] {
        let mut cmd = moto.atlas_sql();
        cmd.args(["ingest", store, "--create", "-q"]).args(&files);
        cmd.assert().success();
    }
    // A second ingest appends to the existing remote store.
    let mut cmd = moto.atlas_sql();
    cmd.args(["ingest", remote, "-q"])
        .args(ersst(&data, &[4]))
        .assert()
        .success();
    let mut cmd = moto.atlas_sql();
    cmd.args(["ingest", local, "-q"])
        .args(ersst(&data, &[4]))
        .assert()
        .success();

    let queries = [
        "SELECT count(*), count(sst), avg(sst), min(sst), max(sst) FROM sst",
        "SELECT dataset, count(*) AS n, round(avg(sst), 4) AS mean FROM sst \
         WHERE lat BETWEEN -10 AND 10 AND lon_index < 20 GROUP BY dataset ORDER BY dataset",
        "SELECT dataset FROM _datasets ORDER BY dataset",
        "SELECT count(*) FROM sst WHERE sst > 30",
    ];
    for q in queries {
        let on_disk = stdout(moto.atlas_sql().args(["--store", local, "-c", q]));
        let on_s3 = stdout(moto.atlas_sql().args(["--store", remote, "-c", q]));
        assert_eq!(on_s3, on_disk, "{q}");
        assert!(!on_s3.trim().is_empty(), "{q}");
    }
    // The table function opens the same URL.
    let q = format!("SELECT count(*) FROM atlas_scan('{remote}', 'sst')");
    let counted = stdout(moto.atlas_sql().args(["-c", &q]));
    let expected =
        stdout(
            moto.atlas_sql()
                .args(["--store", local, "-c", "SELECT count(*) FROM sst"]),
        );
    assert_eq!(counted, expected);
    assert!(counted.contains(&(4 * 180 * 89).to_string()), "{counted}");

    // Maintenance works on the remote store too.
    moto.atlas_sql().args(["verify", remote]).assert().success();
    moto.atlas_sql()
        .args(["delete", remote, "ersst.v5.200004"])
        .assert()
        .success();
    moto.atlas_sql()
        .args(["compact", remote])
        .assert()
        .success();
    let after = stdout(moto.atlas_sql().args([
        "--store",
        remote,
        "-c",
        "SELECT count(DISTINCT dataset) FROM sst",
    ]));
    assert!(after.contains('3'), "{after}");
}

/// The stderr of a query on `store` that must fail.
fn failure(moto: &Moto, store: &str) -> String {
    let out = moto
        .atlas_sql()
        .args(["--store", store, "-c", "SELECT 1"])
        .assert()
        .failure()
        .get_output()
        .clone();
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_missing_remote_store_or_bucket_is_an_error_naming_the_url() {
    let Some(moto) = moto() else {
        return;
    };
    let err = failure(&moto, "s3://atlas/nothing/here");
    assert!(
        err.contains("no ATLAS store at s3://atlas/nothing/here"),
        "{err}"
    );
    let err = failure(&moto, "s3://no-such-bucket/x");
    assert!(err.contains("s3://no-such-bucket/x"), "{err}");
    let err = failure(&moto, "ftp://host/x");
    assert!(err.contains("unknown scheme \"ftp\""), "{err}");
}
