"""``pyctr leases``: list, create and delete the leases that keep resources from the collector."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from ..client import Client, expire_label, random_lease_id
from ..leases import LABEL_EXPIRE
from ._common import duration_arg, for_each, format_labels, group, parse_labels, print_table, subcommand


def _ls(client: Client, args: argparse.Namespace) -> int:
    leases = client.leases.list(args.filters)
    if args.quiet:
        sys.stdout.write("".join(f"{lease.id}\n" for lease in leases))
        return 0
    rows = [
        (lease.id, lease.created_at.astimezone().isoformat(timespec="seconds"), format_labels(lease.labels))
        for lease in leases
    ]
    print_table(("ID", "CREATED AT", "LABELS"), rows)
    return 0


def _create(client: Client, args: argparse.Namespace) -> int:
    labels = parse_labels(args.labels)
    expires: timedelta = args.expires
    if expires > timedelta(0):
        labels[LABEL_EXPIRE] = expire_label(expires)
    lease = client.leases.create(args.id or random_lease_id(), labels)
    print(lease.id)
    return 0


def _rm(client: Client, args: argparse.Namespace) -> int:
    """With ``--sync`` only the last delete waits for the collector, as ctr does."""
    store = client.leases
    return for_each(args.ids, lambda lease_id, last: store.delete(lease_id, sync=args.sync and last))


def register(sub: Any) -> None:
    leases = group(sub, "leases", "manage leases", aliases=["lease"])
    p = subcommand(leases, "ls", _ls, "list leases", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the lease ids")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. id==mylease or labels.key==value")
    p = subcommand(leases, "create", _create, "create a lease and print its id")
    p.add_argument("--id", default="", help="the lease id (generated when omitted)")
    p.add_argument(
        "-x",
        "--expires",
        type=duration_arg,
        default=timedelta(hours=24),
        metavar="DURATION",
        help="expiry, e.g. 1h30m (0: never; default 24h)",
    )
    p.add_argument("labels", nargs="*", metavar="KEY=VALUE")
    p = subcommand(leases, "rm", _rm, "delete leases", aliases=["delete", "del", "remove"])
    p.add_argument("--sync", action="store_true", help="wait until unreferenced resources are collected")
    p.add_argument("ids", nargs="+", metavar="ID")
