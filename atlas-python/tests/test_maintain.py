"""Store maintenance from Python: verify, delete (by name and LIKE, dry run, all or none),
compact and vacuum, with the answers of the store checked after each."""

from __future__ import annotations

import shutil
from pathlib import Path

import datafusion
import pytest

import atlas_sql
from test_atlas_sql import py_rows, store  # noqa: F401 (store is a fixture)


@pytest.fixture()
def own(store, tmp_path) -> Path:
    """A copy of the ERSST store this test may change."""
    path = tmp_path / "ersst.atlas"
    shutil.copytree(store, path)
    return path


def datasets(path: Path) -> list[str]:
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, path, schema="s")
    return [r[0] for r in py_rows(ctx, "SELECT DISTINCT dataset FROM s.sst ORDER BY dataset")]


def test_verify_reports_an_intact_store_and_names_the_arrays_of_a_damaged_segment(own):
    report = atlas_sql.verify(own)
    assert report["damaged"] == []
    assert report["segments_checked"] > 0 and report["bytes_checked"] > 0
    segment = max((own / "sst").glob("*.af"), key=lambda p: p.stat().st_size)
    data = bytearray(segment.read_bytes())
    data[len(data) // 3] ^= 0x10
    segment.write_bytes(bytes(data))
    report = atlas_sql.verify(own)
    [damaged] = report["damaged"]
    assert damaged["segment"] == f"sst/{segment.name}"
    assert "checksum" in damaged["error"]
    assert ("ersst.v5.200001", "sst") in [tuple(h) for h in damaged["holds"]]


def test_delete_by_name_and_pattern_commits_all_or_nothing_and_dry_run_changes_nothing(own):
    assert atlas_sql.delete(own, like="%200002", dry_run=True) == ["ersst.v5.200002"]
    assert len(datasets(own)) == 3
    with pytest.raises(Exception, match="nope"):
        atlas_sql.delete(own, ["ersst.v5.200001", "nope"])
    assert len(datasets(own)) == 3
    assert atlas_sql.delete(own, like="%200002") == ["ersst.v5.200002"]
    assert datasets(own) == ["ersst.v5.200001", "ersst.v5.200003"]
    assert atlas_sql.delete(own, like="no_match%") == []


def test_compact_and_vacuum_reclaim_space_and_keep_the_answers(own):
    before = py_rows_of(own)
    atlas_sql.delete(own, ["ersst.v5.200003"])
    plan = atlas_sql.vacuum(own, retention=0, dry_run=True)
    assert set(plan) == {"retired", "orphans", "retired_kept", "orphans_kept"}
    report = atlas_sql.compact(own, retention=0)
    assert report["segments_removed"] > 0 and report["bytes_removed"] > 0
    assert "sst" in report["variables_rewritten"]
    assert py_rows_of(own) == [r for r in before if r[0] != "ersst.v5.200003"]
    assert atlas_sql.verify(own)["damaged"] == []
    assert atlas_sql.vacuum(own, retention=0)["segments_removed"] == 0
    with pytest.raises(ValueError, match="non-negative"):
        atlas_sql.compact(own, retention=-1)


def py_rows_of(path: Path) -> list[list[str]]:
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, path, schema="s")
    return py_rows(
        ctx,
        "SELECT dataset, count(sst), round(avg(sst), 4) FROM s.sst GROUP BY dataset ORDER BY dataset",
    )
