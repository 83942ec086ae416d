"""Attach and logs: a container's output to clients, and an attacher's input to the container.

Both subscribe to the container's output before they answer, so nothing
written after the request is lost, and read the log file in the same turn
of the loop as they subscribe (the log is appended on the loop), so
``logs --follow`` has no gap and no repeat.  Without a terminal every piece
goes out in Docker's multiplexed frames; with one, raw.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from pycontainerd.errors import ContainerdError, InvalidArgument

from .._http import Hijacked
from ._frames import STDERR, STDOUT, encode_frame
from ._jsonlog import Entry, format_time, select
from ._service import ContainerService
from ._slot import Slot, unpack_entry
from ._stdio import Item

__all__ = ["AttachOptions", "LogOptions", "attach", "logs"]

_STREAM_OF = {"stdout": STDOUT, "stderr": STDERR}


@dataclass(frozen=True)
class LogOptions:
    stdout: bool = False
    stderr: bool = False
    follow: bool = False
    timestamps: bool = False
    tail: int = -1
    since_ns: int = 0
    until_ns: int = 0


@dataclass(frozen=True)
class AttachOptions:
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    logs: bool = False
    stream: bool = False


def _shape(tty: bool, stream: int, data: bytes) -> bytes:
    return data if tty else encode_frame(stream, data)


def parse_tail(text: str) -> int:
    """``tail``: ``all`` (or empty) is -1, else a count (a negative one means all, as dockerd reads it)."""
    if text in ("", "all"):
        return -1
    try:
        n = int(text)
    except ValueError:
        raise InvalidArgument(f'invalid value for "tail": {text!r}') from None
    return n if n >= 0 else -1


def logs(svc: ContainerService, ref: str, opts: LogOptions) -> tuple[bool, AsyncIterator[bytes]]:
    """``GET /containers/{id}/logs``: (whether the container has a terminal, the body's chunks)."""
    if not opts.stdout and not opts.stderr:
        raise InvalidArgument("You must choose at least one stream")
    record = svc.get(ref)
    slot = svc.slot(record)
    tty = bool(record.config.get("Tty"))
    queue = slot.lines.subscribe() if opts.follow and record.state.running else None
    entries = select(
        slot.log.entries(),
        stdout=opts.stdout,
        stderr=opts.stderr,
        since_ns=opts.since_ns,
        until_ns=opts.until_ns,
        tail=opts.tail,
    )

    def line(e: Entry) -> bytes:
        data = (format_time(e.time_ns, fixed=True) + " ").encode() + e.data if opts.timestamps else e.data
        return _shape(tty, _STREAM_OF[e.stream], data)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b""
            for e in entries:
                yield line(e)
            while queue is not None:
                item = await queue.get()
                if item is None:
                    return
                stream, packed = item
                t, data = unpack_entry(packed)
                if opts.until_ns and t > opts.until_ns:
                    return
                if (stream == STDOUT and opts.stdout) or (stream == STDERR and opts.stderr):
                    yield line(Entry("stdout" if stream == STDOUT else "stderr", data, t))
        finally:
            if queue is not None:
                slot.lines.unsubscribe(queue)

    return tty, chunks()


def attach(svc: ContainerService, ref: str, opts: AttachOptions) -> tuple[bool, Callable[[Hijacked], Awaitable[None]]]:
    """``POST /containers/{id}/attach``: (terminal or not, the hijacked connection's handler)."""
    record = svc.get(ref)
    slot = svc.slot(record)
    tty = bool(record.config.get("Tty"))
    wanted = {s for s, on in ((STDOUT, opts.stdout), (STDERR, opts.stderr)) if on}
    queue = slot.output.subscribe() if opts.stream else None
    history: list[Entry] = []
    if opts.logs:
        history = select(slot.log.entries(), stdout=opts.stdout, stderr=opts.stderr)
    use_stdin = opts.stdin and bool(record.config.get("OpenStdin"))
    stdin_once = bool(record.config.get("StdinOnce"))
    svc.publish(record, "attach")

    async def run(conn: Hijacked) -> None:
        feeder = asyncio.ensure_future(_feed_stdin(svc, record.id, slot, conn, stdin_once)) if use_stdin else None
        try:
            for e in history:
                await conn.write(_shape(tty, _STREAM_OF[e.stream], e.data))
            while queue is not None:
                item: Item = await queue.get()
                if item is None:
                    break
                stream, data = item
                if stream in wanted:
                    await conn.write(_shape(tty, stream, data))
            conn.close_write()
        except ConnectionError:
            pass
        finally:
            if queue is not None:
                slot.output.unsubscribe(queue)
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feeder

    return tty, run


async def _feed_stdin(svc: ContainerService, id: str, slot: Slot, conn: Hijacked, stdin_once: bool) -> None:
    """The client's bytes into the container's stdin, from its start on; at the client's end, StdinOnce closes it."""
    await slot.started.wait()
    run = slot.run
    if run is None or run.stdin is None:
        return
    while data := await conn.read():
        await run.stdin.write(data)
    if stdin_once and run.stdin.open:
        run.stdin.close()
        with contextlib.suppress(ContainerdError):
            await svc.call(svc.client.tasks.close_io, id)
