"""DuckDB on the Parquet files and queries `sql_compare` leaves in DIR, and xarray on the same
data as NetCDF files.

    target/release/sql_compare 1000 5 DIR                   # the stores, the Parquet, the queries
    python -m pip install -r benches/peers/requirements.txt
    python benches/peers/peers.py DIR [RUNS] [--no-xarray]  # the same queries in each peer

DuckDB: cold is a new connection per run (the Parquet footer read and planning are timed); warm is
one connection and a first untimed run.

xarray: the first run writes each workload's Parquet file as one NetCDF file per dataset,
DIR/<workload>.nc/<dataset>.nc, with the default `to_netcdf` (untimed; later runs reuse them).
Cold opens the files in each run (`open_mfdataset` concatenating along `dataset`, or
`open_dataset` for one dataset) and closes them after; warm opens and `.load()`s them once, and
only the computation is timed. Each xarray answer is checked against DuckDB's. Workloads whose
queries are not the five of sensors, profile and gridded (argo) are DuckDB's alone.

Medians in ms, in the layout of sql_compare's tables, so the two outputs line up row by row.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dask
import duckdb
import netCDF4
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xarray as xr

S = TypeVar("S")
R = TypeVar("R")
Answer = tuple[float, ...]
XarrayQuery = tuple[list[Path], Callable[[xr.DataArray], Answer]]

# The queries xarray runs, by the names sql_compare gives them.
FIVE = ("full scan", "one dataset", "quarter slice", "value filter", "count/min/max")


def median_ms(
    open_: Callable[[], S],
    query: Callable[[S], R],
    close: Callable[[S], None],
    runs: int,
    warm: bool,
) -> tuple[float, R]:
    """The median time of `query` over `runs` runs, in ms, and its result. Cold: each run opens
    its own source (timed) and closes it after (untimed). Warm: one source for all runs,
    opened and queried once before them."""
    shared = open_() if warm else None
    if shared is not None:
        query(shared)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        source = shared if shared is not None else open_()
        result = query(source)
        times.append((time.perf_counter() - start) * 1e3)
        if shared is None:
            close(source)
    if shared is not None:
        close(shared)
    return statistics.median(times), result


def duckdb_ms(sql: str, runs: int, warm: bool) -> tuple[float, list[tuple]]:
    """The median time of `sql` in DuckDB, in ms, and its rows."""
    return median_ms(
        duckdb.connect, lambda con: con.execute(sql).fetchall(), lambda con: con.close(), runs, warm
    )


def dataset_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """The `dataset` column as one code per row and the names the codes stand for."""
    names = column.combine_chunks()
    if not pa.types.is_dictionary(names.type):
        names = names.dictionary_encode()
    return names.indices.to_numpy(), names.dictionary


def long_layout(schema: pa.Schema) -> tuple[list[str], str]:
    """The `<dim>_index` columns and the value column of a long-format table (the one column
    that is neither `dataset`, an index nor a dimension's coordinate)."""
    index = [n for n in schema.names if n.endswith("_index")]
    dims = {n.removesuffix("_index") for n in index}
    values = [n for n in schema.names if n != "dataset" and n not in index and n not in dims]
    if not index or len(values) != 1:
        raise SystemExit(f"not a long-format table of one variable: columns {schema.names}")
    return index, values[0]


def write_netcdf(parquet: Path, nc: Path) -> str:
    """Writes the table in `parquet` as one NetCDF file per dataset in folder `nc` (the value
    variable on the dims the `<dim>_index` columns name), unless `nc` has them already (as many
    files as datasets, written after the Parquet file). Returns the variable's name."""
    index, var = long_layout(pq.read_schema(parquet))
    codes, _ = dataset_codes(pq.read_table(parquet, columns=["dataset"])["dataset"])
    datasets = pc.count_distinct(pa.array(codes)).as_py()
    fresh = nc.is_dir() and nc.stat().st_mtime >= parquet.stat().st_mtime
    if fresh and len(list(nc.glob("*.nc"))) == datasets:
        print(f"NetCDF: {nc} has the {datasets} files")
        return var
    start = time.perf_counter()
    table = pq.read_table(parquet, columns=["dataset", *index, var])
    codes, names = dataset_codes(table["dataset"])
    positions = [table[c].to_numpy() for c in index]
    values = table[var].to_numpy()
    dims = [c.removesuffix("_index") for c in index]
    order = np.argsort(codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    # Written aside and renamed when complete, so an interrupted conversion is redone.
    partial = nc.with_name(nc.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for rows in np.split(order, cuts):
        at = tuple(p[rows].astype(np.intp) for p in positions)
        grid = np.full([int(a.max()) + 1 for a in at], np.nan, dtype=values.dtype)
        grid[at] = values[rows]
        name = names[codes[rows[0]]].as_py()
        xr.Dataset({var: (dims, grid)}).to_netcdf(partial / f"{name}.nc", engine="netcdf4")
    shutil.rmtree(nc, ignore_errors=True)
    partial.rename(nc)
    mib = sum(f.stat().st_size for f in nc.glob("*.nc")) / 1048576
    print(
        f"NetCDF: wrote {datasets} files to {nc} in {time.perf_counter() - start:.1f} s,"
        f" {mib:.2f} MiB (the Parquet file: {parquet.stat().st_size / 1048576:.2f} MiB)"
    )
    return var


def sql_part(pattern: str, sql: str) -> str:
    """The first group of `pattern` in `sql`."""
    found = re.search(pattern, sql)
    if found is None:
        raise SystemExit(f"no {pattern!r} in {sql!r}")
    return found[1]


def xarray_query(name: str, sql: str, nc: Path) -> XarrayQuery:
    """The NetCDF files that query `name` of sql_compare reads, and the same query in xarray on
    their variable, with the parameters (dataset, slice ends, threshold) taken from `sql`."""
    every = sorted(nc.glob("*.nc"))

    def mean(v: xr.DataArray) -> Answer:
        return (float(v.mean()),)

    if name == "full scan":
        return every, mean
    if name == "one dataset":
        dataset = sql_part(r"dataset = '([^']*)'", sql)
        return [nc / f"{dataset}.nc"], mean
    if name == "quarter slice":
        ends = {d: slice(0, int(n)) for d, n in re.findall(r"(\w+)_index < (\d+)", sql)}
        if not ends:
            raise SystemExit(f"no <dim>_index < N in {sql!r}")
        return every, lambda v: mean(v.isel(ends))
    if name == "value filter":
        threshold = float(sql_part(r" > ([-+.\deE]+)", sql))
        return every, lambda v: (int((v > threshold).sum()),)
    if name == "count/min/max":

        def stats(v: xr.DataArray) -> Answer:
            # One computation, so the files are read once.
            s = xr.Dataset({"n": v.count(), "min": v.min(), "max": v.max()}).compute()
            return int(s["n"]), float(s["min"]), float(s["max"])

        return every, stats
    raise ValueError(f"no xarray query {name!r}")


def open_files(files: list[Path]) -> xr.Dataset:
    """The NetCDF files as one dataset, concatenated along a new dimension `dataset`."""
    if len(files) == 1:
        return xr.open_dataset(files[0], engine="netcdf4")
    return xr.open_mfdataset(files, combine="nested", concat_dim="dataset", engine="netcdf4")


def xarray_ms(
    query: XarrayQuery, var: str, runs: int, loaded: dict[tuple[Path, ...], xr.Dataset] | None
) -> tuple[float, Answer]:
    """The median time of an xarray query, in ms, and its answer. Cold (`loaded` is None): each
    run opens the files. Warm: the files are loaded in memory once, into `loaded`, which keeps
    them for the workload's other queries."""
    files, compute = query
    if loaded is None:
        return median_ms(
            lambda: open_files(files), lambda ds: compute(ds[var]), xr.Dataset.close, runs, False
        )
    key = tuple(files)
    if key not in loaded:
        loaded[key] = open_files(files).load()
    return median_ms(lambda: loaded[key], lambda ds: compute(ds[var]), lambda _: None, runs, True)


def agree(duck: tuple, mine: Answer) -> bool:
    """Whether DuckDB's row and xarray's answer are the same numbers, within 1e-3 relative."""
    return len(duck) == len(mine) and all(
        d is not None and math.isclose(d, m, rel_tol=1e-3) for d, m in zip(duck, mine, strict=True)
    )


def compare(workload: str, doc: dict, folder: Path, runs: int, with_xarray: bool) -> None:
    """Prints the cold and warm tables of the queries of `workload`, described by `doc`."""
    workload_nc = folder / f"{workload}.nc"
    parquet = folder / doc["parquet"]
    table = f"read_parquet('{parquet}')"
    xarray: dict[str, XarrayQuery] = {}
    if with_xarray and sorted(q["name"] for q in doc["queries"]) != sorted(FIVE):
        print("xarray: skipped (not the five queries of sensors, profile and gridded)")
    elif with_xarray:
        var = write_netcdf(parquet, workload_nc)
        xarray = {q["name"]: xarray_query(q["name"], q["sql"], workload_nc) for q in doc["queries"]}
    for warm in (False, True):
        columns = ["query", "DuckDB+Parquet ms", "rows"]
        if not xarray:
            title = "Warm: one connection" if warm else "Cold: a new connection per run"
        else:
            columns.insert(2, "xarray+NetCDF ms")
            title = (
                "Warm: one connection; the NetCDF files opened and loaded once"
                if warm
                else "Cold: a new connection and a new open of the NetCDF files per run"
            )
        print(f"\n{title}\n| {' | '.join(columns)} |\n|---|{'---:|' * (len(columns) - 1)}")
        loaded: dict[tuple[Path, ...], xr.Dataset] | None = {} if warm else None
        differ = []
        for q in doc["queries"]:
            ms, rows = duckdb_ms(q["sql"].replace("{t}", table), runs, warm)
            cells = [q["name"], f"{ms:.2f}", str(len(rows))]
            if xarray:
                xms, answer = xarray_ms(xarray[q["name"]], var, runs, loaded)
                cells.insert(2, f"{xms:.2f}")
                if len(rows) != 1 or not agree(rows[0], answer):
                    differ.append(f"warning: {q['name']}: xarray {answer}, DuckDB {rows}")
            print(f"| {' | '.join(cells)} |")
        for ds in (loaded or {}).values():
            ds.close()
        if xarray:
            print("\n".join(differ) or "xarray's answers agree with DuckDB's")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", type=Path, help="the folder sql_compare wrote")
    parser.add_argument("runs", type=int, nargs="?", default=5, help="runs per median (5)")
    parser.add_argument("--no-xarray", action="store_true", help="time DuckDB only")
    args = parser.parse_args()
    found = sorted(args.dir.glob("*.queries.json"))
    if not found:
        raise SystemExit(
            f"no *.queries.json in {args.dir}: run sql_compare with DIR={args.dir} first"
        )
    peers = f"DuckDB {duckdb.__version__}"
    if not args.no_xarray:
        peers += (
            f", xarray {xr.__version__} (netCDF4 {netCDF4.__version__}, dask {dask.__version__})"
        )
    print(f"{peers}, {args.runs} runs")
    for spec in found:
        workload = spec.name.removesuffix(".queries.json")
        print(f"\n## {workload}")
        compare(workload, json.loads(spec.read_text()), args.dir, args.runs, not args.no_xarray)


if __name__ == "__main__":
    main()
