"""``pyctr check --repair``: remove what is safe to remove while the daemon is stopped.

Only leftovers go: blobs and ingests no namespace records, ingest records
without data, snapshot directories no record names, leftover mounts.  A
record that names something missing is never "repaired" by guessing; it is
reported for a person to judge.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import sqlite3
from collections.abc import Iterable

from ..mount import unmount
from ._layout import Layout
from ._problems import Kind, Problem
from ._scan import connect

__all__ = ["repair"]


def _rmtree(path: pathlib.Path) -> None:
    def onerror(fn: object, p: str, excinfo: object) -> None:
        # Read-only directories from a layer: make them writable, then remove what they hold.
        os.chmod(os.path.dirname(p), 0o700)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, onerror=onerror)
        else:
            os.unlink(p)

    shutil.rmtree(path, onerror=onerror)


def repair(layout: Layout, problems: Iterable[Problem]) -> list[tuple[Problem, str]]:
    """Fix the repairable ``problems``; returns what could not be fixed, with why.  The caller holds the root."""
    failed: list[tuple[Problem, str]] = []
    todo = [p for p in problems if p.repairable]
    # Mounts first: a directory cannot go while something is mounted in it.
    todo.sort(key=lambda p: p.kind != Kind.MOUNT_LEFTOVER)
    for p in todo:
        try:
            if p.kind == Kind.MOUNT_LEFTOVER:
                unmount(p.path, detach=True)
            elif p.kind == Kind.INGEST_DATA_MISSING:
                _forget_ingest(layout, p)
            elif p.kind == Kind.BLOB_UNREFERENCED:
                os.unlink(p.path)
            else:
                _rmtree(pathlib.Path(p.path))
        except FileNotFoundError:
            pass
        except (OSError, sqlite3.Error) as exc:
            failed.append((p, str(exc)))
        except Exception as exc:  # an unmount error from the mount package
            failed.append((p, str(exc)))
    return failed


def _forget_ingest(layout: Layout, p: Problem) -> None:
    ref = p.subject.removeprefix("ingest ")
    with contextlib.closing(connect(layout.metadata, live=False)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM ingests WHERE namespace = ? AND ref = ?", (p.namespace, ref))
        conn.execute(
            "DELETE FROM lease_resources WHERE namespace = ? AND type = 'ingests' AND id = ?", (p.namespace, ref)
        )
        conn.execute("COMMIT")
