"""atlas_sql through DataFusion's Python bindings, on a store the CLI ingests from the shared
ERSST files: the tables, pushdown across the FFI boundary, the table function, xarray output,
and the errors a user meets."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import datafusion
import numpy as np
import pytest

import atlas_sql

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
MONTHS = ["ersst.v5.200001.nc", "ersst.v5.200002.nc", "ersst.v5.200003.nc"]


def built(name: str, env: str) -> str:
    """A binary of the workspace: $`env`, else the one `cargo test --workspace` builds."""
    if os.environ.get(env):
        return os.environ[env]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    found = target / "debug" / name
    if not found.exists():
        pytest.fail(f"no {name} binary at {found}: run cargo test --workspace first")
    return str(found)


def cli() -> str:
    """The `atlas-sql` binary."""
    return built("atlas-sql", "ATLAS_SQL_BIN")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    if not DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{DATA} is absent (the shared real-data folder), and CI=true runs every test")
        pytest.skip(f"{DATA} is absent (the shared real-data folder)")
    root = tmp_path_factory.mktemp("atlas")
    inputs = root / "in"
    inputs.mkdir()
    for m in MONTHS:
        shutil.copy(DATA / "ersst" / m, inputs / m)
    path = root / "ersst.atlas"
    subprocess.run([cli(), "ingest", str(path), str(inputs), "--create", "-q"], check=True)
    return path


def cli_rows(store: Path, sql: str) -> list[list[str]]:
    out = subprocess.run(
        [cli(), "--store", str(store), "--format", "csv", "-q", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return list(csv.reader(io.StringIO(out)))[1:]


def py_rows(ctx: datafusion.SessionContext, sql: str) -> list[list[str]]:
    table = ctx.sql(sql).to_arrow_table()
    cols = [c.to_pylist() for c in table.columns]
    return [["" if v is None else str(v) for v in row] for row in zip(*cols)]


def test_register_makes_every_variable_a_table_with_the_cli_answers(store):
    ctx = datafusion.SessionContext()
    s = atlas_sql.register(ctx, store, schema="ersst")
    assert {"sst", "ssta", "time", "lat", "lon"} <= set(s.variables())
    sql = (
        "SELECT dataset, count(*) AS n, count(sst) AS wet, round(avg(sst), 4) AS mean "
        "FROM ersst.sst GROUP BY dataset ORDER BY dataset"
    )
    got = py_rows(ctx, sql)
    assert [r[0] for r in got] == ["ersst.v5.200001", "ersst.v5.200002", "ersst.v5.200003"]
    assert all(r[1] == str(89 * 180) for r in got)
    assert got == cli_rows(store, sql.replace("ersst.sst", "sst"))
    meta = py_rows(ctx, "SELECT count(*) FROM ersst._datasets")
    assert meta == [["3"]]
    assert py_rows(ctx, "SELECT count(*) FROM ersst._conflicts") == [["0"]]


def metrics(ctx: datafusion.SessionContext, sql: str) -> dict[str, int]:
    text = "\n".join(
        str(v) for v in ctx.sql("EXPLAIN ANALYZE " + sql).to_arrow_table().column(1).to_pylist()
    )
    return {k: int(v) for k, v in re.findall(r"(datasets_\w+|chunks_\w+)=(\d+)", text)}


def test_pushdown_survives_the_ffi_boundary_with_the_metrics_of_the_cli(store):
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, store, schema="ersst")
    # avg, not max: exact statistics answer max() without a scan.
    one = metrics(ctx, "SELECT avg(sst) FROM ersst.sst WHERE dataset = 'ersst.v5.200002'")
    assert one["datasets_pruned"] == 2 and one["datasets_scanned"] == 1, one
    by_value = metrics(ctx, "SELECT avg(sst) FROM ersst.sst WHERE sst > 1000")
    assert by_value["datasets_pruned_by_stats"] == 3, by_value
    sliced = metrics(ctx, "SELECT avg(sst) FROM ersst.sst WHERE lat_index < 10 AND lon > 100")
    assert sliced["datasets_scanned"] == 3, sliced
    out = subprocess.run(
        [cli(), "--store", str(store), "-q", "-c",
         "EXPLAIN ANALYZE SELECT avg(sst) FROM sst WHERE dataset = 'ersst.v5.200002'"],
        check=True, capture_output=True, text=True,
    ).stdout
    cli_metrics = {k: int(v) for k, v in re.findall(r"(datasets_\w+|chunks_\w+)=(\d+)", out)}
    assert one == cli_metrics
    # Limits and projection: the first rows without reading the value column's other datasets.
    assert len(py_rows(ctx, "SELECT dataset, lat_index FROM ersst.sst LIMIT 5")) == 5


def test_table_and_atlas_scan_register_single_tables(store):
    ctx = datafusion.SessionContext()
    ctx.register_table("sst", atlas_sql.table(store, "sst"))
    ctx.register_udtf(atlas_sql.atlas_scan())
    assert py_rows(ctx, "SELECT count(*) FROM sst") == [[str(3 * 89 * 180)]]
    got = py_rows(ctx, f"SELECT count(*) FROM atlas_scan('{store}', 'ssta')")
    assert got == [[str(3 * 89 * 180)]]
    with pytest.raises(Exception, match="no variable \"nope\""):
        ctx.sql(f"SELECT * FROM atlas_scan('{store}', 'nope')").collect()


def test_to_xarray_rebuilds_the_grids_as_the_netcdf_files_hold_them(store):
    xr = pytest.importorskip("xarray")
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, store, schema="ersst")
    ds = atlas_sql.to_xarray(ctx.sql("SELECT * FROM ersst.sst ORDER BY dataset"))
    assert dict(ds.sizes) == {"dataset": 3, "time": 1, "lev": 1, "lat": 89, "lon": 180}
    assert list(ds["dataset"].values) == [m[:-3] for m in MONTHS]
    for i, m in enumerate(MONTHS):
        with xr.open_dataset(DATA / "ersst" / m, engine="scipy", decode_times=False) as f:
            expected = f["sst"].values.astype("float64")
            got = ds["sst"].isel(dataset=i).values
            np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)
            np.testing.assert_allclose(ds["lat"].isel(dataset=i).values, f["lat"].values)
    # A filtered, projected result keeps only what was selected; holes are NaN.
    part = atlas_sql.to_xarray(
        ctx.sql(
            "SELECT dataset, time_index, lev_index, lat_index, lon_index, sst FROM ersst.sst "
            "WHERE lat_index < 3 AND lon_index < 4 AND dataset = 'ersst.v5.200003'"
        )
    )
    assert dict(part.sizes) == {"dataset": 1, "time": 1, "lev": 1, "lat": 3, "lon": 4}
    with pytest.raises(ValueError, match="'dataset' column"):
        atlas_sql.to_xarray(ctx.sql("SELECT sst FROM ersst.sst LIMIT 1"))


def test_errors_name_the_store_and_the_bad_option(store, tmp_path):
    ctx = datafusion.SessionContext()
    with pytest.raises(RuntimeError, match="no ATLAS store"):
        atlas_sql.register(ctx, tmp_path / "nowhere", schema="x")
    with pytest.raises(ValueError, match="'null', 'exclude' or 'error'"):
        atlas_sql.register(ctx, store, schema="x", type_conflicts="sometimes")
    s = atlas_sql.register(ctx, store, schema="strict", type_conflicts="error")
    assert py_rows(ctx, "SELECT count(*) FROM strict.lat") == [["267"]]
    assert "ersst.atlas" in repr(s)


def test_a_datafusion_of_another_major_is_refused_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(datafusion, "__version__", "54.1.0")
    with pytest.raises(ImportError, match="needs datafusion 55.x"):
        atlas_sql._check_datafusion()
    assert atlas_sql.ffi_version() == atlas_sql.DATAFUSION_MAJOR


def test_python_threads_query_one_session_concurrently_with_the_same_answers(store):
    from concurrent.futures import ThreadPoolExecutor

    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, store, schema="ersst")
    sql = "SELECT dataset, count(sst), round(sum(sst), 3) FROM ersst.sst GROUP BY dataset ORDER BY dataset"
    expected = py_rows(ctx, sql)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: py_rows(ctx, sql), range(8)))
    assert all(r == expected for r in results)


def test_an_unknown_variable_is_an_error_naming_it_and_the_store(store):
    ctx = datafusion.SessionContext()
    s = atlas_sql.register(ctx, store, schema="ersst")
    with pytest.raises(RuntimeError, match='no variable "salinity"'):
        s.table("salinity")
    with pytest.raises(Exception, match="salinity"):
        ctx.sql("SELECT * FROM ersst.salinity").collect()


def test_create_external_table_stored_as_atlas_works_from_python(store):
    ctx = datafusion.SessionContext()
    atlas_sql.register_factory(ctx)
    ctx.sql(
        f"CREATE EXTERNAL TABLE t STORED AS ATLAS LOCATION '{store}' "
        "OPTIONS ('variable' 'sst', 'type_conflicts' 'exclude')"
    ).collect()
    assert py_rows(ctx, "SELECT count(*) FROM t") == [[str(3 * 89 * 180)]]
    one = metrics(ctx, "SELECT avg(sst) FROM t WHERE dataset = 'ersst.v5.200001'")
    assert one["datasets_pruned"] == 2 and one["chunks_read"] == 1, one
    with pytest.raises(Exception, match="needs OPTIONS"):
        ctx.sql(f"CREATE EXTERNAL TABLE u STORED AS ATLAS LOCATION '{store}'").collect()


def test_grid_tables_hold_several_variables_in_one_table_from_python(store):
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, store, schema="ersst")
    grids = ctx.sql("SELECT \"table\", variables FROM ersst._tables WHERE kind = 'grid'")
    grids = grids.to_pydict()
    named = [t for t, v in zip(grids["table"], grids["variables"]) if {"sst", "ssta"} <= set(v)]
    assert len(named) == 1, grids
    grid = named[0]
    sql = f'SELECT count(*), count(sst), count(ssta), round(avg(sst - ssta), 4) FROM ersst."{grid}"'
    got = py_rows(ctx, sql)
    assert got[0][0] == str(3 * 89 * 180)
    assert got == cli_rows(store, sql.replace("ersst.", ""))
    # The same table from atlas_scan with several variables and from atlas_sql.table.
    ctx.register_udtf(atlas_sql.atlas_scan())
    scan = py_rows(ctx, f"SELECT count(*), count(sst), count(ssta) FROM atlas_scan('{store}', 'sst', 'ssta')")
    assert scan == [got[0][:3]]
    ctx.register_table("g", atlas_sql.table(store, grid))
    assert py_rows(ctx, "SELECT count(*), count(sst), count(ssta) FROM g") == [got[0][:3]]
    # Statistics on either variable prune datasets.
    pruned = metrics(ctx, f'SELECT avg(sst) FROM ersst."{grid}" WHERE ssta > 1000')
    assert pruned["datasets_pruned_by_stats"] == 3, pruned


def test_copy_writes_a_new_store_whose_answers_equal_the_source(store, tmp_path):
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, store, schema="ersst")
    target = tmp_path / "tropics.atlas"
    query = (
        "SELECT t.dataset, t.lat_index, t.lon_index, t.lat, t.lon, t.sst "
        "FROM ersst.sst t WHERE t.lat BETWEEN -20 AND 20"
    )
    # The DataFrame of `query` runs through the FFI into the store's sink.
    written = atlas_sql.copy(ctx, ctx.sql(query), target, chunk={"lat": 10})
    atlas_sql.register(ctx, target, schema="tropics")
    rows = "SELECT dataset, lat, lon, sst FROM {} WHERE lat BETWEEN -20 AND 20 ORDER BY 1, 2, 3"
    assert py_rows(ctx, rows.format("tropics.sst")) == py_rows(ctx, rows.format("ersst.sst"))
    assert written == int(py_rows(ctx, f"SELECT count(*) FROM ({query})")[0][0])
    # The CLI reads the copy the same way, and its chunks are those asked for.
    chunks = "SELECT DISTINCT array_to_string(chunk_shape, ',') FROM _arrays WHERE array = 'sst'"
    assert cli_rows(target, chunks) == [["10,180"]]
    # Attribute columns of _datasets stay dataset attributes across the FFI.
    titled = tmp_path / "titled.atlas"
    atlas_sql.copy(
        ctx,
        "SELECT t.dataset, t.lat_index, t.lon_index, t.sst, d.title "
        "FROM ersst.sst t JOIN ersst._datasets d USING (dataset) WHERE t.lat_index = 44",
        titled,
    )
    assert cli_rows(titled, "SELECT dataset, title FROM _datasets ORDER BY 1") == cli_rows(
        store, "SELECT dataset, title FROM _datasets ORDER BY 1"
    )
    assert cli_rows(titled, "SELECT DISTINCT array FROM _arrays ORDER BY 1") == [["sst"]]
    # A bad option names itself, and nothing is written.
    with pytest.raises(Exception, match="shape.sst"):
        atlas_sql.copy(ctx, query, tmp_path / "bad.atlas", shape={"sst": (1,)})
    assert not (tmp_path / "bad.atlas").exists() or not any((tmp_path / "bad.atlas").iterdir())


def test_insert_into_a_registered_variable_table_adds_a_dataset_through_the_ffi(store, tmp_path):
    copy = tmp_path / "ersst.atlas"
    shutil.copytree(store, copy)
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, copy, schema="e")
    ctx.sql(
        "INSERT INTO e.sst (dataset, time_index, lev_index, lat_index, lon_index, sst) "
        "VALUES ('synthetic', 0, 0, 0, 0, 1.5), ('synthetic', 0, 0, 1, 2, 2.5)"
    ).collect()
    got = py_rows(ctx, "SELECT count(*), count(sst), sum(sst) FROM e.sst WHERE dataset = 'synthetic'")
    assert got == [["6", "2", "4.0"]]
    assert cli_rows(copy, "SELECT count(*) FROM _datasets") == [["4"]]


def test_ingest_from_python_builds_the_store_the_cli_builds(store, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for m in MONTHS:
        shutil.copy(DATA / "ersst" / m, inputs / m)
    (inputs / "broken.nc").write_text("not a NetCDF file")
    seen: list[tuple[int, int, int, int]] = []
    target = tmp_path / "py.atlas"
    report = atlas_sql.ingest(target, inputs, progress=lambda *p: seen.append(p))
    assert report["ingested"] == 3, report
    assert [p for p, _ in report["failures"]] == [str(inputs / "broken.nc")]
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] == 4, seen
    sql = "SELECT dataset, count(sst), round(avg(sst), 6), min(time) FROM sst GROUP BY dataset ORDER BY dataset"
    assert cli_rows(target, sql) == cli_rows(store, sql)
    # A second run skips what is there; without skip_existing it reports each file.
    again = atlas_sql.ingest(target, inputs, skip_existing=True, progress=False)
    assert again["skipped"] == 3 and again["ingested"] == 0
    again = atlas_sql.ingest(target, inputs / MONTHS[0], progress=False)
    assert "already exists" in again["failures"][0][1]
    with pytest.raises(ValueError, match="no ATLAS store"):
        atlas_sql.ingest(tmp_path / "absent.atlas", inputs, create=False, progress=False)


def test_ingest_takes_xarray_datasets_and_keeps_their_values(tmp_path):
    xr = pytest.importorskip("xarray")
    if not DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{DATA} is absent (the shared real-data folder), and CI=true runs every test")
        pytest.skip(f"{DATA} is absent (the shared real-data folder)")
    # ERSST counts time in a 360-day calendar, which xarray decodes only with cftime.
    month = xr.open_dataset(DATA / "ersst" / MONTHS[0], decode_times=False)
    target = tmp_path / "xr.atlas"
    report = atlas_sql.ingest(target, {"january": month, "named": month.isel(lat=slice(0, 10))}, progress=False)
    assert report["ingested"] == 2 and not report["failures"], report
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, target, schema="x")
    got = py_rows(ctx, "SELECT dataset, count(sst), sum(sst) FROM x.sst GROUP BY dataset ORDER BY dataset")
    sst = month["sst"]
    small = sst.isel(lat=slice(0, 10))
    assert [g[0] for g in got] == ["january", "named"]
    assert int(got[0][1]) == int(sst.count()) and int(got[1][1]) == int(small.count())
    assert float(got[0][2]) == pytest.approx(float(sst.sum()), rel=1e-6)
    with pytest.raises(ValueError, match="needs a name"):
        atlas_sql.ingest(target, [xr.Dataset({"v": ("x", [1.0, 2.0])})], progress=False)
