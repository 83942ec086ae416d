"""``pyctr content``: list, read, ingest, label and remove blobs, and watch active ingests."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from ..client import Client
from ..content import Info, Writer, validate_digest
from ..content.helpers import open_writer
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument
from ._common import (
    age,
    for_each,
    format_labels,
    group,
    human_size,
    parse_labels,
    print_table,
    subcommand,
    transfer_bars,
)
from ._distribution import add_content_commands

CHUNK = 1 << 20


def _ls(client: Client, args: argparse.Namespace) -> int:
    infos = client.content.walk(args.filters)
    if args.quiet:
        for info in infos:
            sys.stdout.write(f"{info.digest}\n")
        return 0
    rows = [(i.digest, human_size(i.size), age(i.created_at), format_labels(i.labels)) for i in infos]
    print_table(("DIGEST", "SIZE", "AGE", "LABELS"), rows)
    return 0


def _get(client: Client, args: argparse.Namespace) -> int:
    reader = client.content.reader_at(validate_digest(args.digest))
    out = sys.stdout.buffer
    try:
        for data in reader.chunks():
            out.write(data)
    finally:
        reader.close()
    out.flush()
    return 0


def _skip(source: BinaryIO, offset: int) -> None:
    """Move ``source`` past what the ingest already holds: seek if it can, read and drop if not."""
    try:
        if source.seekable():
            source.seek(offset)
            return
    except (OSError, io.UnsupportedOperation):
        pass
    left = offset
    while left:
        data = source.read(min(CHUNK, left))
        if not data:
            raise FailedPrecondition(f"input ended before the ingest's current offset {offset}")
        left -= len(data)


@contextlib.contextmanager
def _progress(total: int, start: int, ref: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal stderr; elsewhere a function that does nothing."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    with transfer_bars(transient=True) as bar:
        task = bar.add_task(ref, total=total or None, completed=start)
        yield lambda n: bar.advance(task, n)


def _copy(w: Writer, source: BinaryIO, advance: Callable[[int], None]) -> int:
    copied = 0
    while data := source.read(CHUNK):
        w.write(data)
        copied += len(data)
        advance(len(data))
    return copied


def _ingest(client: Client, args: argparse.Namespace) -> int:
    """Write stdin into the ingest ``REF`` and commit it; an interrupted ingest resumes where it stopped."""
    expected = validate_digest(args.expected_digest) if args.expected_digest else ""
    size: int = args.expected_size
    if size < 0:
        raise InvalidArgument(f"--expected-size must not be negative: {size}")
    labels = parse_labels(args.label)
    try:
        w = open_writer(client.content, args.ref, total=size, expected=expected)
    except AlreadyExists:
        print(expected)
        return 0
    try:
        offset = w.status().offset
        source = sys.stdin.buffer
        if offset:
            _skip(source, offset)
        with _progress(size, offset, args.ref) as advance:
            copied = _copy(w, source, advance)
        if size and offset + copied < size:
            raise FailedPrecondition(f"input ended after {offset + copied} of {size} bytes; the ingest is kept")
        try:
            digest = w.commit(size=size, expected=expected, labels=labels)
        except AlreadyExists:
            digest = expected or w.digest()
    finally:
        w.close()
    print(digest)
    return 0


def _rm(client: Client, args: argparse.Namespace) -> int:
    store = client.content
    return for_each(args.digests, lambda digest, _last: store.delete(validate_digest(digest)))


def _label(client: Client, args: argparse.Namespace) -> int:
    """Set labels (``key=`` clears one) and print the blob's labels afterwards."""
    store = client.content
    digest = validate_digest(args.digest)
    labels = parse_labels(args.labels)
    if labels:
        current = store.info(digest)
        wanted = Info(
            digest=digest,
            size=current.size,
            created_at=current.created_at,
            updated_at=current.updated_at,
            labels={k: v for k, v in labels.items() if v},
        )
        info = store.update(wanted, [f"labels.{k}" for k in labels])
    else:
        info = store.info(digest)
    print(format_labels(info.labels, empty=""))
    return 0


def _active(client: Client, args: argparse.Namespace) -> int:
    statuses = client.content.list_statuses(args.filters)
    rows = [(s.ref, human_size(s.offset), human_size(s.total) if s.total else "-", age(s.started_at)) for s in statuses]
    print_table(("REF", "SIZE", "TOTAL", "AGE"), rows)
    return 0


def register(sub: Any) -> None:
    content = group(sub, "content", "manage content")
    add_content_commands(content)
    p = subcommand(content, "ls", _ls, "list blobs", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the digests")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. labels.key==value or digest==sha256:...")
    p = subcommand(content, "get", _get, "write a blob to stdout")
    p.add_argument("digest", metavar="DIGEST")
    p = subcommand(content, "ingest", _ingest, "store stdin as a blob through the ingest REF and print its digest")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--expected-size", type=int, default=0, metavar="N", help="refuse to commit another size")
    p.add_argument("--expected-digest", default="", metavar="DIGEST", help="refuse to commit another digest")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="label the committed blob")
    p = subcommand(content, "rm", _rm, "delete blobs", aliases=["delete", "del", "remove"])
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p = subcommand(content, "label", _label, "set and clear labels of a blob")
    p.add_argument("digest", metavar="DIGEST")
    p.add_argument("labels", nargs="*", metavar="KEY=VALUE")
    p = subcommand(content, "active", _active, "list ingests in progress")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. ref==myref")
