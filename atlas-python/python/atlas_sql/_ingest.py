"""``atlas_sql.ingest``: NetCDF files or xarray Datasets into a store, the ingest of
``atlas-sql ingest``."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Union

from atlas_sql import _internal

Input = Union[str, "os.PathLike[str]", Any]
ProgressFn = Callable[[int, int, int, int], None]


class _Line:
    """Progress on one line of stderr, redrawn at most five times a second."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, files_done: int, files_total: int, bytes_done: int, bytes_total: int) -> None:
        now = time.monotonic()
        if files_done < files_total and now - self.last < 0.2:
            return
        self.last = now
        mib = 1 << 20
        end = "\n" if files_done >= files_total else ""
        sys.stderr.write(
            f"\ringest: {files_done}/{files_total} files, "
            f"{bytes_done / mib:.1f}/{bytes_total / mib:.1f} MiB{end}"
        )
        sys.stderr.flush()


def _progress(progress: bool | ProgressFn | None) -> ProgressFn | None:
    if callable(progress):
        return progress
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Line()
    bar: dict[str, Any] = {}

    def update(files_done: int, files_total: int, bytes_done: int, bytes_total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=files_total, unit="file", desc="ingest")
        b = bar["bar"]
        b.update(files_done - b.n)
        if files_done >= files_total:
            b.close()

    return update


def _is_xarray(value: Any) -> bool:
    return type(value).__name__ == "Dataset" and hasattr(value, "to_netcdf")


def ingest(
    store: str | os.PathLike[str],
    inputs: Input | Iterable[Input] | Mapping[str, Any],
    *,
    create: bool = True,
    chunk: dict[str, int] | None = None,
    name_from: str = "stem",
    skip_existing: bool = False,
    raw: bool = False,
    strict: bool = False,
    jobs: int | None = None,
    flush_every: int | None = None,
    progress: bool | ProgressFn | None = True,
) -> dict[str, Any]:
    """Ingests NetCDF files into the store at ``store`` (created if absent and ``create``),
    one dataset per file, as ``atlas-sql ingest`` does: CF decoding (scale/offset, fill and
    missing values, times) unless ``raw``, files decoded in parallel (``jobs``), a commit every
    ``flush_every`` files (500), so an interrupted ingest keeps what was committed and
    ``skip_existing=True`` resumes it.

    ``inputs`` are paths of files or folders (searched for ``*.nc``, ``*.nc4``, ``*.cdf``,
    ``*.netcdf``), xarray Datasets, or a mapping of dataset names to Datasets. A Dataset is
    written to a temporary NetCDF file first (``Dataset.to_netcdf``), named after its mapping
    key or the file it was opened from.

    ``chunk={"time": 24}`` sets chunk lengths; ``name_from="relpath"`` names datasets by their
    path below the folder; ``strict=True`` refuses the first file whose variables disagree
    with the store and commits nothing. ``progress`` is ``True`` (a tqdm bar when tqdm is
    installed, else a line on stderr), ``False``, or a callable taking
    ``(files_done, files_total, bytes_done, bytes_total)``.

    Returns ``ingested``, ``bytes``, ``skipped``, ``failures`` (``(path, reason)`` for each file
    not ingested; the others are), ``conflicts`` (what the datasets disagree on) and
    ``seconds``.
    """
    if isinstance(inputs, Mapping):
        items: list[tuple[str | None, Any]] = list(inputs.items())
    elif isinstance(inputs, (str, os.PathLike)) or _is_xarray(inputs):
        items = [(None, inputs)]
    else:
        items = [(None, i) for i in inputs]
    with tempfile.TemporaryDirectory(prefix="atlas-ingest-") as tmp:
        paths: list[str] = []
        for name, value in items:
            if _is_xarray(value):
                if name is None:
                    source = value.encoding.get("source")
                    if not source:
                        raise ValueError(
                            "an xarray Dataset needs a name: pass {name: dataset} "
                            "(it was not opened from a file to be named after)"
                        )
                    name = Path(source).stem
                if "/" in name or name in ("", ".", ".."):
                    raise ValueError(f"dataset name {name!r} cannot name a file")
                path = Path(tmp) / f"{name}.nc"
                if path.exists():
                    raise ValueError(f"two Datasets would both be dataset {name!r}")
                value.to_netcdf(path)
                paths.append(str(path))
            elif isinstance(value, (str, os.PathLike)):
                if name is not None:
                    raise ValueError(
                        f"{name!r}: a mapping of names takes xarray Datasets; files are named "
                        "by name_from"
                    )
                paths.append(os.fspath(value))
            else:
                raise TypeError(
                    f"ingest takes paths and xarray Datasets, not {type(value).__name__}"
                )
        return _internal.ingest(
            os.fspath(store),
            paths,
            create,
            chunk,
            name_from,
            skip_existing,
            raw,
            strict,
            jobs,
            flush_every,
            _progress(progress),
        )
