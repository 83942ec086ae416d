"""SQLite transactions as the stores use them: rolled back on any error, a full disk reported as such.

Both SQLite files (the metadata database and each snapshotter's records)
write through :func:`transaction`, so a full disk is the client's
RESOURCE_EXHAUSTED wherever it is met, and a transaction SQLite has already
rolled back on its own is not rolled back twice.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from .errors import ResourceExhausted

__all__ = ["transaction", "translated"]


def translated(e: sqlite3.Error) -> Exception:
    """A full disk as ResourceExhausted; any other SQLite failure stays what it is."""
    if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return ResourceExhausted(f"metadata: no space left on device ({e})")
    return e


def _undo(conn: sqlite3.Connection, savepoint: str) -> None:
    if not conn.in_transaction:  # SQLite rolled back already (a full disk can do that)
        return
    with contextlib.suppress(sqlite3.Error):
        if savepoint:
            conn.execute(f"ROLLBACK TO {savepoint}")
            conn.execute(f"RELEASE {savepoint}")
        else:
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, savepoint: str = "") -> Iterator[None]:
    """One write transaction (``BEGIN IMMEDIATE``), or a savepoint of that name inside one."""
    begin, commit = (f"SAVEPOINT {savepoint}", f"RELEASE {savepoint}") if savepoint else ("BEGIN IMMEDIATE", "COMMIT")
    try:
        conn.execute(begin)
    except sqlite3.Error as e:
        raise translated(e) from None
    try:
        yield
    except sqlite3.Error as e:
        _undo(conn, savepoint)
        raise translated(e) from None
    except BaseException:
        _undo(conn, savepoint)
        raise
    try:
        conn.execute(commit)
    except sqlite3.Error as e:
        _undo(conn, savepoint)
        raise translated(e) from None
