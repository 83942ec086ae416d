"""What a container has while pydockerd runs: its current task's stdio and everyone waiting on it.

A :class:`Slot` exists for every record: the broadcasts attachers and
``logs --follow`` subscribe to (made anew after each exit, so an attach
before a start sees that start's output), the log file written line by
line, the waiters of ``wait``.  A :class:`Run` is one task from its start
to its handled exit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._jsonlog import LineSplitter, LogFile
from ._stdio import Broadcast, Fifos, OutputReader, StdinWriter

__all__ = ["Run", "Slot", "unpack_entry"]

log = logging.getLogger("pydockerd")


class Run:
    """One task of a container, from start to its handled exit."""

    def __init__(self, fifos: Fifos | None, reader: OutputReader, stdin: StdinWriter | None) -> None:
        self.fifos = fifos
        self.reader = reader
        self.stdin = stdin
        self.exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()  # set once handled
        self.stopping = False


class Slot:
    """What a record has at run time: the current (or next) run's output and who waits on it."""

    def __init__(self, log: LogFile) -> None:
        self.log = log
        self.output = Broadcast()  # raw output, to attachers
        self.lines = Broadcast()  # log entries as written, to ``logs --follow`` (stream, json entry)
        self.run: Run | None = None
        self.started = asyncio.Event()
        self.spec: dict[str, Any] = {}
        self.splitters = {1: LineSplitter(), 2: LineSplitter()}
        self.exit_waiters: list[asyncio.Future[int]] = []
        self.remove_waiters: list[asyncio.Future[int]] = []
        self.removing = False
        self.execs: set[str] = set()

    def write(self, stream: int, data: bytes) -> None:
        """A piece of output: to attachers now, to the log line by line."""
        self.output.publish(stream, data)
        for line in self.splitters[stream].feed(data):
            self._line(stream, line)

    def _line(self, stream: int, line: bytes) -> None:
        try:
            entry = self.log.append("stdout" if stream == 1 else "stderr", line)
        except OSError as e:
            log.warning("log of %s: %s", self.log.path, e)
            return
        self.lines.publish(stream, _pack_entry(entry.time_ns, line))

    def flush(self) -> None:
        for stream, splitter in self.splitters.items():
            rest = splitter.flush()
            if rest:
                self._line(stream, rest)


def _pack_entry(time_ns: int, line: bytes) -> bytes:
    return time_ns.to_bytes(8, "big") + line


def unpack_entry(data: bytes) -> tuple[int, bytes]:
    return int.from_bytes(data[:8], "big"), data[8:]
