"""Query results back into ``xarray.Dataset``: dims from the ``<dim>_index`` columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _batches(result: Any):
    """Record batches of a DataFusion DataFrame (streamed), a pyarrow Table, or batches."""
    if isinstance(result, pa.Table):
        yield from result.to_batches()
        return
    if isinstance(result, pa.RecordBatch):
        yield result
        return
    if hasattr(result, "execute_stream"):
        for batch in result.execute_stream():
            yield batch.to_pyarrow()
        return
    yield from result


def _as_numpy(column: pa.Array) -> np.ndarray:
    """A column as numpy, NULL as NaN (numbers), NaT (times) or None (anything else)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    t = column.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_duration(t):
        return column.to_numpy(zero_copy_only=False)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        if column.null_count == 0:
            return column.to_numpy(zero_copy_only=False)
        values = column.cast(pa.float64()).fill_null(float("nan"))
        return values.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(t) and column.null_count == 0:
        return column.to_numpy(zero_copy_only=False)
    return np.array(column.to_pylist(), dtype=object)


def _missing(dtype: np.dtype) -> Any:
    if dtype.kind in "mM":
        return np.datetime64("NaT") if dtype.kind == "M" else np.timedelta64("NaT")
    if dtype.kind == "f":
        return np.nan
    return None


def _target_dtype(parts: list[np.ndarray]) -> np.dtype:
    """The dtype one array holding every part needs, with room for missing cells."""
    dtype = np.result_type(*[p.dtype for p in parts]) if parts else np.dtype("float64")
    if dtype.kind in "iub":
        return np.dtype("float64")
    return dtype


def to_xarray(result: Any):
    """Rebuilds an ``xarray.Dataset`` from a query result.

    The result must have a ``dataset`` column and at least one ``<dim>_index`` column. The
    dimensions are ``dataset`` and each ``<dim>`` (lengths: the largest index + 1); a column named
    like a dimension is its coordinate, per dataset (dims ``(dataset, <dim>)``); every other
    column is a data variable on all dimensions. Cells no row fills are missing: NaN for numbers
    (integers become float64), NaT for times, None otherwise. The batches are streamed; no
    pandas frame of the whole result is built.
    """
    import xarray as xr

    names: list[str] | None = None
    dataset_codes: dict[str, int] = {}
    dataset_parts: list[np.ndarray] = []
    index_parts: dict[str, list[np.ndarray]] = {}
    value_parts: dict[str, list[np.ndarray]] = {}
    dims: list[str] = []
    for batch in _batches(result):
        if names is None:
            names = list(batch.schema.names)
            if "dataset" not in names:
                raise ValueError(
                    "to_xarray needs a 'dataset' column; the result has: " + ", ".join(names)
                )
            dims = [n[: -len("_index")] for n in names if n.endswith("_index")]
            if not dims:
                raise ValueError(
                    "to_xarray needs at least one '<dim>_index' column; the result has: "
                    + ", ".join(names)
                )
            index_parts = {d: [] for d in dims}
            value_parts = {
                n: [] for n in names if n != "dataset" and not n.endswith("_index")
            }
        if batch.num_rows == 0:
            continue
        ds = batch.column("dataset")
        if not pa.types.is_dictionary(ds.type):
            ds = pc.dictionary_encode(ds)
        # Per batch, only the (few) distinct names the rows use go through Python (the
        # dictionary may list every dataset of the store); rows map in numpy.
        indices = ds.indices.cast(pa.int64()).to_numpy(zero_copy_only=False)
        used, first = np.unique(indices, return_index=True)
        local = np.zeros(len(ds.dictionary), dtype=np.int64)
        dictionary = ds.dictionary
        for k in used[np.argsort(first)]:
            name = dictionary[int(k)].as_py()
            code = dataset_codes.get(name)
            if code is None:
                code = dataset_codes[name] = len(dataset_codes)
            local[k] = code
        dataset_parts.append(local[indices])
        for d in dims:
            col = batch.column(f"{d}_index")
            # A dataset lacking a dimension has NULL positions: position 0 of a length-1 dim.
            idx = pc.fill_null(col, 0).cast(pa.int64()).to_numpy(zero_copy_only=False)
            index_parts[d].append(idx)
        for n in value_parts:
            value_parts[n].append(_as_numpy(batch.column(n)))
    if names is None:
        raise ValueError("to_xarray got no batches (and no schema) to rebuild")
    n_datasets = len(dataset_codes)
    codes = np.concatenate(dataset_parts) if dataset_parts else np.empty(0, np.int64)
    positions = {
        d: (np.concatenate(p) if p else np.empty(0, np.int64)) for d, p in index_parts.items()
    }
    lengths = {d: int(p.max()) + 1 if p.size else 0 for d, p in positions.items()}
    dataset_names = np.array(list(dataset_codes), dtype=object)

    data_vars = {}
    coords: dict[str, Any] = {"dataset": dataset_names}
    for n, parts in value_parts.items():
        dtype = _target_dtype(parts)
        values = np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)
        if n in lengths:
            # A coordinate: one value per dataset and position along its dimension.
            out = np.full((n_datasets, lengths[n]), _missing(dtype), dtype=dtype)
            out[codes, positions[n]] = values
            coords[n] = (("dataset", n), out)
            continue
        shape = (n_datasets, *[lengths[d] for d in dims])
        out = np.full(shape, _missing(dtype), dtype=dtype)
        out[(codes, *[positions[d] for d in dims])] = values
        data_vars[n] = (("dataset", *dims), out)
    return xr.Dataset(data_vars=data_vars, coords=coords)
