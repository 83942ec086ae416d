"""``pyctr snapshots``: the snapshots of one snapshotter, as ``ctr snapshots`` shows and changes them."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping
from typing import Any

from ..client import Client
from ..mount import Mount, mount_all
from ..snapshots import Info, Kind, Usage
from ..snapshots.proxy import ProxySnapshotter
from ._common import for_each, format_labels, gc_root_label, group, human_size, parse_labels, print_table, subcommand

__all__ = ["register"]


def _snapshotter(client: Client, args: argparse.Namespace) -> ProxySnapshotter:
    return client.snapshotter(args.snapshotter or "")


def _ls(client: Client, args: argparse.Namespace) -> int:
    infos = list(_snapshotter(client, args).walk(args.filters))
    if args.quiet:
        sys.stdout.write("".join(f"{i.name}\n" for i in infos))
        return 0
    print_table(("KEY", "PARENT", "KIND"), [(i.name, i.parent, i.kind.label) for i in infos])
    return 0


def _info_json(info: Info) -> dict[str, Any]:
    out: dict[str, Any] = {"Kind": info.kind.label, "Name": info.name}
    if info.parent:
        out["Parent"] = info.parent
    if info.labels:
        out["Labels"] = dict(sorted(info.labels.items()))
    out["Created"] = info.created_at.isoformat().replace("+00:00", "Z")
    out["Updated"] = info.updated_at.isoformat().replace("+00:00", "Z")
    return out


def _info(client: Client, args: argparse.Namespace) -> int:
    print(json.dumps(_info_json(_snapshotter(client, args).stat(args.key)), indent=4))
    return 0


def _tree(client: Client, args: argparse.Namespace) -> int:
    infos = list(_snapshotter(client, args).walk())
    children: dict[str, list[str]] = {}
    for i in infos:
        children.setdefault(i.parent, []).append(i.name)
    out = sys.stdout

    def show(name: str, depth: int) -> None:
        out.write(("  " * (depth - 1) + " \\_ " if depth else " ") + name + "\n")
        for c in sorted(children.get(name, [])):
            show(c, depth + 1)

    names = {i.name for i in infos}
    for root in sorted(n for parent, kids in children.items() if parent not in names for n in kids):
        show(root, 0)
    return 0


def _print_mounts(mounts: list[Mount], target: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"type": m.type, "source": m.source, "options": list(m.options)} for m in mounts]))
        return
    for m in mounts:
        print(f"mount -t {m.type} {shlex.quote(m.source)} {shlex.quote(target)} -o {shlex.quote(','.join(m.options))}")


def _create(client: Client, args: argparse.Namespace, view: bool) -> int:
    sn = _snapshotter(client, args)
    labels = {**gc_root_label(), **parse_labels(args.label)}
    create = sn.view if view else sn.prepare
    mounts = create(args.key, args.parent or "", labels)
    if args.target:
        mount_all(mounts, args.target)
    elif args.mounts:
        _print_mounts(mounts, "", as_json=True)
    return 0


def _prepare(client: Client, args: argparse.Namespace) -> int:
    return _create(client, args, view=False)


def _view(client: Client, args: argparse.Namespace) -> int:
    return _create(client, args, view=True)


def _mounts(client: Client, args: argparse.Namespace) -> int:
    _print_mounts(_snapshotter(client, args).mounts(args.key), args.target, args.json)
    return 0


def _commit(client: Client, args: argparse.Namespace) -> int:
    labels = {**gc_root_label(), **parse_labels(args.label)}
    _snapshotter(client, args).commit(args.name, args.key, labels)
    return 0


def _rm(client: Client, args: argparse.Namespace) -> int:
    sn = _snapshotter(client, args)
    return for_each(args.keys, lambda key, last: sn.remove(key))


def _usage(client: Client, args: argparse.Namespace) -> int:
    sn = _snapshotter(client, args)
    keys = args.keys or [i.name for i in sn.walk()]
    usages: list[tuple[str, Usage]] = [(k, sn.usage(k)) for k in keys]
    size = str if args.bytes else human_size
    print_table(("KEY", "SIZE", "INODES"), [(k, size(u.size), u.inodes) for k, u in usages])
    return 0


def _label(client: Client, args: argparse.Namespace) -> int:
    sn = _snapshotter(client, args)
    labels: Mapping[str, str] = parse_labels(args.labels)
    paths = [f"labels.{k}" for k in labels]
    info = sn.update(Info(args.name, Kind.UNKNOWN, labels=labels), paths) if paths else sn.stat(args.name)
    print(format_labels(info.labels, empty=""))
    return 0


def register(sub: Any) -> None:
    # `pyctr snapshots --snapshotter native ls`, as with ctr; the global --snapshotter works too.
    snaps = group(
        sub,
        "snapshots",
        "manage snapshots",
        aliases=["snapshot"],
        options=lambda g: g.add_argument(
            "--snapshotter", default=argparse.SUPPRESS, help="the snapshotter (default: the daemon's default)"
        ),
    )
    p = subcommand(snaps, "ls", _ls, "list snapshots", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the keys")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. kind==committed, parent==KEY, labels.k==v")
    p = subcommand(snaps, "info", _info, "show a snapshot's record as JSON")
    p.add_argument("key")
    subcommand(snaps, "tree", _tree, "show snapshots as a tree of parents and children")
    for name, func, help_ in (
        ("prepare", _prepare, "prepare an active snapshot"),
        ("view", _view, "create a read-only view of a committed snapshot"),
    ):
        p = subcommand(snaps, name, func, help_)
        p.add_argument("-t", "--target", default="", help="mount the snapshot on this directory")
        p.add_argument("--mounts", action="store_true", help="print the mounts as JSON")
        p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("key")
        p.add_argument("parent", nargs="?", default="")
    p = subcommand(snaps, "mounts", _mounts, "print the commands that mount a snapshot", aliases=["m", "mount"])
    p.add_argument("--json", action="store_true", help="the mount list as JSON")
    p.add_argument("target")
    p.add_argument("key")
    p = subcommand(snaps, "commit", _commit, "commit an active snapshot under a name")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("name")
    p.add_argument("key")
    p = subcommand(snaps, "rm", _rm, "remove snapshots", aliases=["del", "delete", "remove"])
    p.add_argument("keys", nargs="+", metavar="KEY")
    p = subcommand(snaps, "usage", _usage, "disk used by snapshots (without their parents)")
    p.add_argument("-b", "--bytes", action="store_true", help="sizes in bytes")
    p.add_argument("keys", nargs="*", metavar="KEY")
    p = subcommand(snaps, "label", _label, "set (k=v) or remove (k=) labels, and print them")
    p.add_argument("name")
    p.add_argument("labels", nargs="*", metavar="KEY=VALUE")
