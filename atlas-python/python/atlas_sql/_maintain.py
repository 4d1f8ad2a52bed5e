"""Store maintenance: the operations of ``atlas-sql compact|vacuum|verify|delete|migrate``."""

from __future__ import annotations

import datetime
import os
import re
from typing import Any, Callable, Iterable

from atlas_sql import _internal

Retention = datetime.timedelta | float | None


def _seconds(retention: Retention) -> float | None:
    if retention is None:
        return None
    if isinstance(retention, datetime.timedelta):
        return retention.total_seconds()
    return float(retention)


def compact(location: str | os.PathLike[str], retention: Retention = None) -> dict[str, Any]:
    """Merges each variable's segments into one and removes what no commit needs once it is
    older than ``retention`` (a ``timedelta`` or seconds; default the store's, one hour).

    Returns ``variables_rewritten``, ``segments_removed``, ``bytes_removed`` and what was kept
    for readers of older generations (``retired_kept``, ``orphans_kept``).
    """
    return _internal.compact(os.fspath(location), _seconds(retention))


def vacuum(
    location: str | os.PathLike[str], retention: Retention = None, dry_run: bool = False
) -> dict[str, Any]:
    """Removes segments no commit references that are older than ``retention``, without
    rewriting anything. ``dry_run=True`` removes nothing and returns what it would remove:
    ``retired`` and ``orphans`` as ``(path, bytes)`` lists."""
    return _internal.vacuum(os.fspath(location), _seconds(retention), dry_run)


def verify(location: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads and checks every segment (size, CRC-32, page checksums). Returns
    ``segments_checked``, ``bytes_checked`` and ``damaged``: one dict per missing or damaged
    segment with ``segment``, ``error`` and ``holds`` (its ``(dataset, array)`` pairs). An
    intact store has ``damaged == []``."""
    return _internal.verify(os.fspath(location))


def _like(pattern: str) -> re.Pattern[str]:
    # SQL LIKE: % any run, _ one character, \\ escapes.
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def delete(
    location: str | os.PathLike[str],
    names: Iterable[str] = (),
    like: str | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Deletes datasets by name and/or SQL ``LIKE`` pattern (``like="R69%"``) in one commit:
    all of them or, on error, none. A name that does not exist is an error naming it.
    ``dry_run=True`` deletes nothing. Returns the names deleted (or that would be). Space is
    reclaimed by a later ``compact``."""
    where = os.fspath(location)
    chosen = list(dict.fromkeys(names))
    if like is not None:
        pattern = _like(like)
        chosen += [n for n in _internal.datasets(where) if pattern.fullmatch(n) and n not in chosen]
    if not chosen:
        return []
    return _internal.delete(where, chosen, dry_run)


def migrate(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    codec: str = "zstd",
    progress: Callable[[str, int, int, int, int], Any] | None = None,
) -> dict[str, Any]:
    """Copies the store at ``src`` (an atlas-rust 0.17 collection, or an atlas-sql store) into
    a new atlas-sql store at ``dst``, which must be empty or missing, streaming with bounded
    memory; then reads the copy back and checks every array, definition and attribute equal to
    the source. Only then does it return: ``datasets``, ``arrays``, ``arrays_unwritten``,
    ``cells``, ``cells_verified``, ``generation`` and ``source_format``. On any error, what was
    written at ``dst`` is removed and the error raised.

    ``progress``, when given, is called with ``(phase, datasets_done, datasets_total,
    cells_done, cells_total)``; ``phase`` is ``"copying"``, ``"committing"`` or
    ``"verifying"``."""
    return _internal.migrate(os.fspath(src), os.fspath(dst), codec, progress)
