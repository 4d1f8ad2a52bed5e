//! The fixture binary writes collections the upstream crate reads back (and `cargo test`
//! builds it for the Python suite, which calls it).

use std::process::Command;

use atlas_upstream_fixtures::upstream;

#[tokio::test]
async fn the_fixture_binary_writes_collections_the_upstream_crate_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = env!("CARGO_BIN_EXE_make-upstream-fixture");
    let mixed = dir.path().join("mixed");
    let status = Command::new(bin)
        .arg("mixed")
        .arg(&mixed)
        .status()
        .expect("run");
    assert!(status.success());
    let atlas = upstream::Atlas::open_path(&mixed).await.expect("open");
    assert_eq!(atlas.list_datasets(), atlas_upstream_fixtures::MIXED_LIVE);
    let profiles = dir.path().join("profiles");
    let status = Command::new(bin)
        .args(["profiles", &profiles.display().to_string(), "12", "30"])
        .status()
        .expect("run");
    assert!(status.success());
    let atlas = upstream::Atlas::open_path(&profiles).await.expect("open");
    assert_eq!(atlas.dataset_count(), 12);
    let bad = Command::new(bin).arg("nonsense").status().expect("run");
    assert_eq!(bad.code(), Some(2));
}
