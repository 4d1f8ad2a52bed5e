"""Query ATLAS stores with SQL from DataFusion's Python bindings.

Every variable of a store is a table (``dataset``, ``<dim>_index`` columns, coordinates, the
value), and filters on dataset names, positions, coordinates and values are pushed into the
scan, exactly as in the ``atlas-sql`` command line::

    import datafusion, atlas_sql
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, "argo.atlas", schema="argo")
    ctx.sql('SELECT dataset, max("TEMP") FROM argo."TEMP" GROUP BY dataset').show()
    ds = atlas_sql.to_xarray(ctx.sql('SELECT * FROM argo."TEMP" WHERE dataset LIKE \\'R69%\\''))

``docs/python.md`` in the repository is the guide.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import datafusion

#: The ``datafusion`` major version this package's FFI structs match.
DATAFUSION_MAJOR = 55


def _check_datafusion() -> None:
    # Mismatched FFI structs crash the interpreter instead of raising, so refuse early.
    found = datafusion.__version__
    try:
        major = int(found.split(".")[0])
    except ValueError:
        major = -1
    if major != DATAFUSION_MAJOR:
        raise ImportError(
            f"atlas_sql needs datafusion {DATAFUSION_MAJOR}.x (its FFI structs must match), "
            f"but datafusion {found} is installed: pip install 'datafusion>={DATAFUSION_MAJOR},"
            f"<{DATAFUSION_MAJOR + 1}'"
        )


_check_datafusion()

from atlas_sql._internal import (  # noqa: E402
    Store,
    Table,
    TableFactory,
    ffi_version,
    new_store,
    open_store,
)
from atlas_sql._ingest import ingest  # noqa: E402
from atlas_sql._maintain import compact, delete, migrate, vacuum, verify  # noqa: E402
from atlas_sql._xarray import to_xarray  # noqa: E402

if TYPE_CHECKING:
    from datafusion import SessionContext

__all__ = [
    "DATAFUSION_MAJOR",
    "Store",
    "Table",
    "TableFactory",
    "atlas_scan",
    "compact",
    "copy",
    "delete",
    "ingest",
    "migrate",
    "register_factory",
    "ffi_version",
    "open",
    "register",
    "table",
    "to_xarray",
    "vacuum",
    "verify",
]

TYPE_CONFLICTS = ("null", "exclude", "error")


def open(location: str | os.PathLike[str], type_conflicts: str | None = None) -> Store:  # noqa: A001
    """Opens the ATLAS store at ``location``: a local path or a ``file://``, ``s3://``,
    ``gs://``, ``az://`` or ``http(s)://`` URL (credentials from the usual environment
    variables, e.g. ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``).

    ``type_conflicts`` is what the store's tables do with datasets whose value or coordinate has
    a type the column cannot hold: ``"null"`` (the default: their rows stay, NULL in that
    column), ``"exclude"`` (left out) or ``"error"``. ``SELECT * FROM _conflicts`` lists them.
    """
    return open_store(os.fspath(location), type_conflicts)


def register(
    ctx: SessionContext,
    location: str | os.PathLike[str],
    schema: str = "atlas",
    type_conflicts: str | None = None,
) -> Store:
    """Registers the store at ``location`` as schema ``schema`` of ``ctx``'s default catalog.

    Every variable becomes a table ``<schema>.<variable>``, next to the metadata tables
    ``_datasets``, ``_arrays``, ``_attributes`` and ``_conflicts``. Each table lookup sees the
    store's newest commit. Returns the opened store.
    """
    store = open(location, type_conflicts)
    ctx.catalog().register_schema(schema, store)
    return store


def table(
    location: str | os.PathLike[str] | Store,
    variable: str,
    type_conflicts: str | None = None,
) -> Table:
    """The table of one variable (or metadata table), for ``ctx.register_table(name, t)``."""
    store = location if isinstance(location, Store) else open(location)
    return store.table(variable, type_conflicts)


def register_factory(ctx: SessionContext) -> None:
    """Teaches ``ctx`` ``CREATE EXTERNAL TABLE t STORED AS ATLAS LOCATION '<store>'
    OPTIONS ('variable' '<name>' [, 'type_conflicts' 'exclude'])``."""
    ctx.register_table_factory("ATLAS", TableFactory())


def _literal(expr: Any, what: str) -> str:
    """The string value of a literal argument of a table function."""
    value = None
    try:
        variant = expr.to_variant()
        value = variant.value_string()
    except Exception:  # noqa: BLE001 - fall back on the textual form
        value = None
    if value is None:
        text = str(expr)
        # `Expr(Utf8("…"))` or `Utf8("…")`.
        start, end = text.find('("'), text.rfind('")')
        if start < 0 or end <= start:
            raise ValueError(f"atlas_scan expects a string literal {what}, got {text}")
        value = text[start + 2 : end]
    return value


def atlas_scan(name: str = "atlas_scan") -> Any:
    """The table function ``atlas_scan('<store>', '<variable>')``, for ``ctx.register_udtf``;
    ``atlas_scan('<store>', 'a', 'b', ...)`` gives the grid table of those variables.

    Stores are opened once per location and reused by later calls.
    """
    from datafusion import udtf

    opened: dict[str, Store] = {}

    def scan(*args: Any) -> Table:
        if len(args) < 2:
            raise ValueError(
                "atlas_scan takes a store and one or more variables (store, variable, ...), "
                f"got {len(args)} argument{'' if len(args) == 1 else 's'}"
            )
        location = _literal(args[0], "store location")
        variables = [_literal(a, "variable name") for a in args[1:]]
        store = opened.get(location)
        if store is None:
            store = opened[location] = open(location)
        if len(variables) == 1:
            return store.table(variables[0])
        return store.grid(variables)

    return udtf(scan, name)


def _option_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def copy(
    ctx: SessionContext,
    query: str | datafusion.DataFrame,
    location: str | os.PathLike[str],
    *,
    shape: dict[str, Any] | None = None,
    dims: dict[str, Any] | None = None,
    chunk: dict[str, int] | None = None,
    codec: str | None = None,
    attributes: list[str] | None = None,
) -> int:
    """Writes the rows of ``query`` (SQL text, or a DataFrame of ``ctx``) as a new store at
    ``location``, as ``COPY (query) TO '<location>' STORED AS ATLAS`` does in the command line.
    Returns the number of rows written.

    Rows name their dataset (``dataset``) and position (``<dim>_index`` columns); a column named
    like a dimension is its coordinate, the others are arrays over every dimension. The
    keywords are the ``COPY`` options:

    - ``shape={"TEMP": (3, 100)}``: an array's shape, instead of one more than its largest index;
    - ``dims={"JULD": ["N_PROF"]}``: the dimensions a value repeated along others spans;
    - ``chunk={"time": 24}``: chunk lengths; ``codec``: ``"zstd"`` (default), ``"lz4"``, ``"none"``;
    - ``attributes=["title"]``: columns written as dataset attributes (those of ``_datasets``
      are, always).

    The store is committed once, at the end; on error nothing is left at ``location``.
    """
    options: dict[str, str] = {}
    for prefix, given in (("shape", shape), ("dims", dims)):
        for column, value in (given or {}).items():
            options[f"{prefix}.{column}"] = _option_text(value)
    if chunk:
        options["chunk"] = ",".join(f"{d}={n}" for d, n in chunk.items())
    if codec is not None:
        options["codec"] = codec
    if attributes:
        options["attributes"] = ",".join(attributes)
    df = ctx.sql(query) if isinstance(query, str) else query
    target = new_store(os.fspath(location), df.schema().serialize().to_pybytes(), options)
    token = uuid.uuid4().hex
    source, sink = f"__atlas_copy_source_{token}", f"__atlas_copy_target_{token}"
    ctx.register_table(source, df.into_view())
    ctx.register_table(sink, target)
    try:
        batches = ctx.sql(f'INSERT INTO "{sink}" SELECT * FROM "{source}"').collect()
    finally:
        ctx.deregister_table(source)
        ctx.deregister_table(sink)
    return int(batches[0].column(0)[0].as_py()) if batches and batches[0].num_rows else 0
