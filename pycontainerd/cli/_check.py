"""``pyctr check``: an fsck for a pycontainerd root (see :mod:`pycontainerd.check`).

It reads the daemon's directories, not its socket: by default with the
daemon stopped (it takes the root's lock, and says which daemon holds it
otherwise), or with ``--live`` beside a running daemon.  One line per
problem on stdout, then a summary; exit status 0 when clean, 1 when not.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from ..client import Client
from ..errors import FailedPrecondition, InvalidArgument

_DEFAULT_ROOT = "/var/lib/pycontainerd"
_DEFAULT_STATE = "/run/pycontainerd"


def _layout(args: argparse.Namespace) -> Any:
    from ..check import Layout

    root = pathlib.Path(_DEFAULT_ROOT)
    state = pathlib.Path(_DEFAULT_STATE)
    roots: dict[str, pathlib.Path] = {}
    if args.config:
        from ..server.config import ConfigError, load

        try:
            cfg = load(pathlib.Path(args.config))
        except ConfigError as e:
            raise InvalidArgument(str(e)) from None
        root, state = cfg.root, cfg.state
        for key, section in cfg.plugins.items():
            if key.startswith("io.containerd.snapshotter.v1.") and section.get("root_path"):
                roots[key.rsplit(".", 1)[-1]] = pathlib.Path(str(section["root_path"]))
    if args.root:
        root = pathlib.Path(args.root)
    if args.state:
        state = pathlib.Path(args.state)
    if not root.is_dir():
        raise InvalidArgument(f"root {root} is not a directory")
    return Layout.of(root, state, roots)


def _check(client: Client, args: argparse.Namespace) -> int:
    from ..check import DaemonRunning, check, hold_root, repair

    if args.live and args.repair:
        raise InvalidArgument("--repair needs the daemon stopped: it cannot be combined with --live")
    layout = _layout(args)
    try:
        with hold_root(layout) if not args.live else _nothing():
            problems = check(layout, live=args.live, verify_blobs=not args.no_verify)
            if args.repair and problems:
                failed = repair(layout, problems)
                for p, why in failed:
                    print(f"could not repair {p}: {why}", file=sys.stderr)
                fixed = sum(1 for p in problems if p.repairable) - len(failed)
                print(f"repaired {fixed} of {len(problems)} problems")
                problems = check(layout, live=False, verify_blobs=not args.no_verify)
    except DaemonRunning as e:
        raise FailedPrecondition(str(e)) from None
    for p in problems:
        print(p)
    mode = "live" if args.live else "offline"
    if not problems:
        print(f"{layout.root}: clean ({mode} check)")
        return 0
    repairable = sum(1 for p in problems if p.repairable)
    hint = f", {repairable} repairable with --repair" if repairable and not args.repair else ""
    print(f"{layout.root}: {len(problems)} problem{'s' if len(problems) != 1 else ''} found ({mode} check{hint})")
    return 1


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check a pycontainerd root for corruption and leaks (fsck)",
        description=(
            "Check that every metadata reference resolves, every blob matches its digest, and no snapshot "
            "directory, ingest or mount is left over.  Runs with the daemon stopped (it takes the root's lock); "
            "--live checks beside a running daemon, read-only, skipping leftovers that work in progress makes."
        ),
    )
    p.set_defaults(func=_check)
    p.add_argument("--root", default="", help=f"the daemon's root (default: from --config, else {_DEFAULT_ROOT})")
    p.add_argument("--state", default="", help=f"the daemon's state directory (default {_DEFAULT_STATE})")
    p.add_argument("--config", default="", help="the daemon's config file, for root, state and snapshotter paths")
    p.add_argument("--live", action="store_true", help="check beside a running daemon (read-only, fewer checks)")
    p.add_argument("--repair", action="store_true", help="remove leftovers that are safe to remove (offline only)")
    p.add_argument("--no-verify", action="store_true", help="do not hash every blob (faster)")
