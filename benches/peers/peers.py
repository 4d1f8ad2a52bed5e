"""DuckDB on the Parquet files and queries `sql_compare` leaves in DIR.

    target/release/sql_compare 1000 5 DIR         # builds the stores, the Parquet, the queries
    python benches/peers/peers.py DIR [RUNS]      # the same queries in DuckDB, cold and warm

Cold: a new connection per run (the Parquet footer read and planning are timed). Warm: one
connection, a first untimed run. Medians in ms, in the layout of sql_compare's tables, so the
two outputs line up row by row.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import duckdb


def run(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return len(con.execute(sql).fetchall())


def median_ms(sql: str, runs: int, warm: bool) -> tuple[float, int]:
    times = []
    shared = duckdb.connect()
    rows = run(shared, sql) if warm else 0
    for _ in range(runs):
        start = time.perf_counter()
        con = shared if warm else duckdb.connect()
        rows = run(con, sql)
        times.append((time.perf_counter() - start) * 1e3)
        if not warm:
            con.close()
    return statistics.median(times), rows


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = Path(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    found = sorted(folder.glob("*.queries.json"))
    if not found:
        sys.exit(f"no *.queries.json in {folder}: run sql_compare with DIR={folder} first")
    print(f"DuckDB {duckdb.__version__}, {runs} runs")
    for spec in found:
        doc = json.loads(spec.read_text())
        table = f"read_parquet('{folder / doc['parquet']}')"
        print(f"\n## {spec.name.removesuffix('.queries.json')}")
        for warm in (False, True):
            print("\n" + ("Warm: one connection" if warm else "Cold: a new connection per run"))
            print("| query | DuckDB+Parquet ms | rows |")
            print("|---|---:|---:|")
            for q in doc["queries"]:
                ms, rows = median_ms(q["sql"].replace("{t}", table), runs, warm)
                print(f"| {q['name']} | {ms:.2f} | {rows} |")


if __name__ == "__main__":
    main()
