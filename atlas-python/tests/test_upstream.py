"""Stores written by the original ATLAS crate (atlas-rust 0.17) from Python: registered and
queried like ours, converted to xarray, verified, and never written to. The collection is
written by atlas-rust itself, through the fixture binary `cargo test --workspace` builds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import datafusion
import numpy as np
import pytest

import atlas_sql
from test_atlas_sql import built, py_rows


def fixture_bin() -> str:
    """The fixture writer (`upstream-fixtures`)."""
    return built("make-upstream-fixture", "ATLAS_UPSTREAM_FIXTURE_BIN")


@pytest.fixture()
def collection(tmp_path) -> Path:
    path = tmp_path / "floats.atlas"
    subprocess.run([fixture_bin(), "mixed", str(path)], check=True)
    return path


def test_register_queries_an_atlas_rust_collection_like_a_store(collection):
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, collection, schema="u")
    assert py_rows(
        ctx,
        "SELECT dataset, count(temperature), count(*) FROM u.temperature GROUP BY dataset ORDER BY dataset",
    ) == [["feb", "12", "24"], ["jan", "23", "24"], ["mar", "24", "24"]]
    assert py_rows(ctx, "SELECT dataset, platform FROM u._datasets ORDER BY dataset") == [
        ["feb", "float feb"],
        ["jan", "float jan"],
        ["mar", "float mar"],
    ]
    ds = atlas_sql.to_xarray(ctx.sql("SELECT * FROM u.temperature WHERE dataset = 'feb'"))
    temp = ds["temperature"].sel(dataset="feb").values
    assert temp.shape == (4, 6)
    assert np.isnan(temp[2:]).all() and not np.isnan(temp[:2]).any()


def test_an_atlas_rust_collection_is_verified_and_never_written(collection):
    report = atlas_sql.verify(collection)
    assert report["damaged"] == [] and report["segments_checked"] > 0
    before = (collection / "data.atlas").read_bytes()
    for write in (
        lambda: atlas_sql.compact(collection),
        lambda: atlas_sql.delete(collection, ["jan"]),
        lambda: atlas_sql.vacuum(collection, dry_run=True),
    ):
        with pytest.raises(Exception, match="atlas-rust 0.17 collection"):
            write()
    assert (collection / "data.atlas").read_bytes() == before


def test_migrate_copies_a_collection_into_a_store_with_the_same_answers(collection, tmp_path):
    dst = tmp_path / "ours.atlas"
    phases = []
    report = atlas_sql.migrate(
        collection, dst, progress=lambda phase, *_: phases.append(phase) if phase not in phases else None
    )
    assert phases == ["copying", "committing", "verifying"]
    assert report["datasets"] == 3 and report["cells_verified"] == report["cells"] > 0
    assert report["source_format"] == "an atlas-rust 0.17 collection (data.atlas)"
    answers = []
    for location in (collection, dst):
        ctx = datafusion.SessionContext()
        atlas_sql.register(ctx, location, schema="u")
        answers.append(
            py_rows(
                ctx,
                "SELECT dataset, count(temperature), sum(temperature), count(*) FROM u.temperature GROUP BY dataset ORDER BY dataset",
            )
            + py_rows(ctx, "SELECT dataset, platform, cycle FROM u._datasets ORDER BY dataset")
        )
    assert answers[0] == answers[1]
    # The copy is ours, so it takes writes; a second migration into it is refused.
    assert atlas_sql.delete(dst, ["jan"]) == ["jan"]
    with pytest.raises(Exception, match="not empty"):
        atlas_sql.migrate(collection, dst)
    assert atlas_sql.verify(dst)["damaged"] == []


def test_an_atlas_rust_010_store_registers_verifies_and_migrates(tmp_path):
    store = tmp_path / "old.atlas"
    subprocess.run([fixture_bin(), "mixed010", str(store)], check=True)
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, store, schema="old")
    assert py_rows(
        ctx,
        "SELECT dataset, count(temperature), count(*) FROM old.temperature GROUP BY dataset ORDER BY dataset",
    ) == [["apr", "24", "24"], ["feb", "24", "24"], ["jan", "23", "24"], ["mar", "24", "24"]]
    report = atlas_sql.verify(store)
    assert report["damaged"] == [] and report["segments_checked"] > 0
    with pytest.raises(Exception, match="atlas-rust 0.10 store"):
        atlas_sql.delete(store, ["jan"])
    copy = tmp_path / "new.atlas"
    migrated = atlas_sql.migrate(store, copy)
    assert migrated["datasets"] == 4
    atlas_sql.register(ctx, copy, schema="new")
    query = "SELECT dataset, sum(temperature) FROM {}.temperature GROUP BY dataset ORDER BY dataset"
    assert py_rows(ctx, query.format("new")) == py_rows(ctx, query.format("old"))
