"""FFI overhead: the same queries from DataFusion's Python bindings (through atlas_sql) and from
the `atlas-sql` CLI, on one store, warm (one session), median of RUNS.

    python benches/python/ffi_overhead.py STORE [RUNS]     # STORE: e.g. three ERSST months

Needs the atlas_sql package installed (docs/python.md) and `atlas-sql` on PATH (or $ATLAS_SQL_BIN).
The queries assume a variable `sst` (ERSST); pass other SQL by editing QUERIES.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time

import datafusion

import atlas_sql

QUERIES = {
    "full scan avg": "SELECT avg(sst) FROM {t}",
    "one dataset": "SELECT avg(sst) FROM {t} WHERE dataset = (SELECT min(dataset) FROM {m})",
    "group by": "SELECT dataset, count(sst), avg(sst) FROM {t} GROUP BY dataset",
}


def main() -> None:
    store = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    cli = os.environ.get("ATLAS_SQL_BIN", "atlas-sql")
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, store, schema="s")
    print("| query | Python ms | CLI ms |")
    print("|---|---:|---:|")
    for name, q in QUERIES.items():
        py_sql = q.format(t="s.sst", m="s._datasets")
        ctx.sql(py_sql).collect()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            ctx.sql(py_sql).collect()
            times.append((time.perf_counter() - t) * 1000)
        cli_sql = q.format(t="sst", m="_datasets")
        args = [cli, "--store", store, "-q", "--timing"]
        for _ in range(runs + 1):
            args += ["-c", cli_sql]
        err = subprocess.run(args, capture_output=True, text=True, check=True).stderr
        cli_times = [float(x) for x in re.findall(r"([0-9.]+) ?ms", err)][1:]
        print(f"| {name} | {statistics.median(times):.2f} | {statistics.median(cli_times):.2f} |")


if __name__ == "__main__":
    main()
