"""``pyctr migrate docker``: a Docker data root's images into the daemon (see :mod:`pycontainerd.migrate.importer`).

The namespace is this command's ``--namespace``, else pyctr's ``-n`` when
it names one other than ``default``, else ``moby``, where Docker's
containerd integration keeps its images.  Progress goes to stderr (rich
rows per layer on a terminal, one line per change of state otherwise,
nothing with ``-q``); the report goes to stdout.  The exit status is 1 when
an image or a name could not be migrated now; what the Docker root holds
that cannot be migrated at all (other graph drivers, schema1 leftovers) is
reported without failing, so that a rerun that finds everything done exits 0.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import BarRows, group, human_size, progress_display, subcommand

if TYPE_CHECKING:
    from ..client import Client
    from ..migrate import Event, MigrationReport

__all__ = ["register"]

DEFAULT_ROOT = "/var/lib/docker"
DEFAULT_NAMESPACE = "moby"


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12] or digest


def _image_line(e: Event) -> str:
    names = "".join(f" {n}" for n in e.names)
    why = f": {e.reason}" if e.reason else ""
    return f"image {_short(e.subject)}{names}: {e.state}{why}"


class _Lines:
    """Progress as plain lines: each image's and layer's changes of state (not their byte counts)."""

    def __init__(self) -> None:
        self._state: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        with self._lock:
            if e.kind == "image":
                print(_image_line(e), file=sys.stderr, flush=True)
                return
            if self._state.get(e.subject) == e.state:
                return
            self._state[e.subject] = e.state
            size = f" ({human_size(e.total)})" if e.total else ""
            why = f": {e.reason}" if e.reason else ""
            print(f"layer {_short(e.subject)}: {e.state}{size}{why}", file=sys.stderr, flush=True)


def _rows(rows: BarRows) -> Callable[[Event], None]:
    def show(e: Event) -> None:
        if e.kind == "image":
            rows.note(_image_line(e))
            return
        label = f"layer-{_short(e.subject)}"
        rows.update(e.subject, label, state=e.state, completed=e.done, total=e.total or None)

    return show


def _display(quiet: bool) -> AbstractContextManager[Callable[[Event], None] | None]:
    return progress_display(quiet, _Lines, _rows, state_width=16)


def _namespace(args: argparse.Namespace) -> str:
    if args.migrate_namespace:
        return str(args.migrate_namespace)
    return str(args.namespace) if args.namespace != "default" else DEFAULT_NAMESPACE


def _print_report(report: MigrationReport, namespace: str) -> None:
    from ..migrate.importer import FAILED, MIGRATED, PRESENT, WOULD_MIGRATE

    for outcome in report.images:
        why = f": {outcome.reason}" if outcome.reason else ""
        state = "not migrated" if outcome.state == FAILED else outcome.state
        print(f"{state:<16} {outcome.image_id} {' '.join(outcome.names)}{why}")
    for failure in report.failures:
        print(f"{'not recorded':<16} {failure}")
    for problem in report.problems:
        print(f"{'not migrated':<16} {problem}")
    if report.intermediate:
        print(
            f"{'left out':<16} {report.intermediate} intermediate image(s) of classic builds: "
            "their layers come with the images built on them"
        )
    failed = report.count(FAILED) + len(report.problems)
    present = report.count(PRESENT)
    if report.dry_run:
        print(
            f"dry run into namespace {namespace}: {report.count(WOULD_MIGRATE)} image(s) would be migrated, "
            f"{present} already present, {failed} not migratable; every layer rebuilt to its diff id; nothing written"
        )
    elif not report.changed and not report.count(FAILED):
        print(f"nothing to do in namespace {namespace}: {present} image(s) already present")
    else:
        print(
            f"{report.count(MIGRATED)} image(s) migrated into namespace {namespace}, {present} already present, "
            f"{failed} not migrated; {report.layers_written} layer(s) written ({human_size(report.bytes_written)})"
        )


def _docker(client: Client, args: argparse.Namespace) -> int:
    from ..migrate import MigrateOptions, migrate_docker

    namespace = _namespace(args)
    with _display(args.quiet) as progress:
        report = migrate_docker(
            client.with_namespace(namespace),
            Path(args.source),
            MigrateOptions(snapshotter=args.snapshotter, dry_run=args.dry_run, progress=progress),
        )
    _print_report(report, namespace)
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    migrate = group(sub, "migrate", "bring another engine's images into the daemon")
    p = subcommand(
        migrate,
        "docker",
        _docker,
        "migrate the images of a stopped Docker's overlay2 data root (read-only) into the daemon",
    )
    p.add_argument(
        "--from",
        dest="source",
        default=DEFAULT_ROOT,
        metavar="DIR",
        help=f"Docker's data root (default {DEFAULT_ROOT}); dockerd must not be running on it",
    )
    p.add_argument(
        "--namespace",
        dest="migrate_namespace",
        default="",
        metavar="NS",
        help=f"namespace to migrate into (default: pyctr's -n if given, else {DEFAULT_NAMESPACE})",
    )
    p.add_argument("--dry-run", action="store_true", help="read and verify every layer; write nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
