"""``pyctr namespaces``: list, create, label and remove the daemon's tenants."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..client import Client
from ._common import for_each, format_labels, group, parse_labels, print_table, subcommand


def _ls(client: Client, args: argparse.Namespace) -> int:
    store = client.namespaces
    names = sorted(store.list())
    if args.quiet:
        sys.stdout.write("".join(f"{n}\n" for n in names))
        return 0
    print_table(("NAME", "LABELS"), [(n, format_labels(store.labels(n), empty="")) for n in names])
    return 0


def _create(client: Client, args: argparse.Namespace) -> int:
    client.namespaces.create(args.name, parse_labels(args.labels))
    return 0


def _rm(client: Client, args: argparse.Namespace) -> int:
    store = client.namespaces
    return for_each(args.names, lambda name, _last: store.delete(name))


def _label(client: Client, args: argparse.Namespace) -> int:
    """Set each label; an empty value (``key=``) clears it.  Without pairs, show the labels."""
    store = client.namespaces
    for key, value in parse_labels(args.labels).items():
        store.set_label(args.name, key, value)
    print(format_labels(store.labels(args.name), empty=""))
    return 0


def register(sub: Any) -> None:
    ns = group(sub, "namespaces", "manage namespaces", aliases=["namespace", "ns"])
    p = subcommand(ns, "ls", _ls, "list namespaces", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the namespace names")
    p = subcommand(ns, "create", _create, "create a new namespace", aliases=["c"])
    p.add_argument("name", metavar="NAME")
    p.add_argument("labels", nargs="*", metavar="KEY=VALUE")
    p = subcommand(ns, "rm", _rm, "remove empty namespaces", aliases=["remove"])
    p.add_argument("names", nargs="+", metavar="NAME")
    p = subcommand(ns, "label", _label, "set and clear labels of a namespace")
    p.add_argument("name", metavar="NAME")
    p.add_argument("labels", nargs="*", metavar="KEY=VALUE")
