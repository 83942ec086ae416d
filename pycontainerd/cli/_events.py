"""``pyctr events``: follow the daemon's events as they happen, one line each."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from ..api import typeurl
from ..client import Client
from ..events import Envelope
from ..events.exchange import decode
from ._common import subcommand

__all__ = ["register"]


def format_event(e: Envelope) -> str:
    """Time, namespace, topic and the payload as JSON (or its type when this pyctr does not know it)."""
    when = datetime.fromtimestamp(e.timestamp_ns / 1e9, UTC).isoformat(timespec="microseconds")
    msg = decode(e.event)
    if msg is None:
        body = json.dumps({"type_url": e.event.type_url})
    else:
        body = json.dumps(MessageToDict(msg, preserving_proto_field_name=True), sort_keys=True)
    return f"{when} {e.namespace} {e.topic} {typeurl.name_of(e.event)} {body}"


def _events(client: Client, args: argparse.Namespace) -> int:
    out = sys.stdout
    for seen, envelope in enumerate(client.events.subscribe(args.filters), 1):
        out.write(format_event(envelope) + "\n")
        out.flush()
        if args.count and seen >= args.count:
            break
    return 0


def register(sub: Any) -> None:
    p = subcommand(sub, "events", _events, "print events as they happen (all namespaces)")
    p.add_argument("-n", "--count", type=int, default=0, help="stop after this many events (default: never)")
    p.add_argument("filters", nargs="*", metavar="FILTER", help='e.g. topic=="/tasks/exit" or namespace==default')
