"""Running a process in the foreground: FIFOs, a terminal in raw mode, resizes and signals passed on.

``pyctr run``, ``pyctr tasks start`` and ``pyctr tasks exec`` share this:
the process's streams are this terminal's, Ctrl-C reaches the process rather
than pyctr, and pyctr exits with the process's exit status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from types import FrameType

from ..client import Attached, Client, fifo_set_of, new_fifo_set
from ..errors import ContainerdError, FailedPrecondition
from ..tasks import IO, Exit

__all__ = ["attach", "run_attached"]

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def _raw_terminal(enabled: bool) -> Iterator[None]:
    if not enabled or not os.isatty(sys.stdin.fileno()):
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _handlers(pairs: dict[int, Callable[[int, FrameType | None], object]]) -> Iterator[None]:
    saved = {s: signal.signal(s, h) for s, h in pairs.items()}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def run_attached(
    client: Client,
    container_id: str,
    create: Callable[[IO], object],
    *,
    exec_id: str = "",
    terminal: bool = False,
    stdin: bool = True,
) -> Exit:
    """Create the process with FIFOs wired to this terminal (``create`` gets its IO), start it, wait for it."""
    tasks = client.tasks
    fifos = new_fifo_set(exec_id or container_id, stdin=stdin, terminal=terminal)

    def close_stdin() -> None:
        tasks.close_io(container_id, exec_id)

    attached = Attached(
        fifos, sys.stdin.buffer if stdin else None, sys.stdout.buffer, sys.stderr.buffer, on_stdin_eof=close_stdin
    )
    try:
        create(fifos.io)
        return _follow(client, container_id, exec_id, attached, terminal=terminal, start=True)
    finally:
        attached.close()


def attach(client: Client, container_id: str, exec_id: str = "") -> Exit:
    """Join a running process's FIFOs from this terminal until it exits; its streams stay for the next attach."""
    process = client.tasks.get(container_id, exec_id)
    fifos = fifo_set_of(process.io)
    if fifos is None:
        raise FailedPrecondition(f"{exec_id or container_id}: its streams are not FIFOs (started with no IO)")
    attached = Attached(fifos, sys.stdin.buffer if process.io.stdin else None, sys.stdout.buffer, sys.stderr.buffer)
    try:
        return _follow(client, container_id, exec_id, attached, terminal=process.io.terminal, start=False)
    finally:
        attached.close(remove=False)


def _follow(
    client: Client, container_id: str, exec_id: str, attached: Attached, *, terminal: bool, start: bool
) -> Exit:
    """Pass on resizes (with a terminal) or signals (without), optionally start the process, wait for it."""
    tasks = client.tasks
    exited: list[Exit] = []
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            exited.append(tasks.wait(container_id, exec_id))
        except BaseException as e:
            failed.append(e)

    waiter = threading.Thread(target=wait, daemon=True, name="wait")
    waiter.start()

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ContainerdError):
            tasks.kill(container_id, signum, exec_id=exec_id)

    def resize(signum: int = 0, frame: FrameType | None = None) -> None:
        if not os.isatty(sys.stdout.fileno()):
            return
        size = os.get_terminal_size(sys.stdout.fileno())
        with contextlib.suppress(ContainerdError):
            tasks.resize_pty(container_id, size.columns, size.lines, exec_id=exec_id)

    handlers: dict[int, Callable[[int, FrameType | None], object]] = {}
    if terminal:
        handlers[signal.SIGWINCH] = resize
    else:
        handlers.update(dict.fromkeys(_FORWARDED, forward))
    with _raw_terminal(terminal), _handlers(handlers):
        if terminal:
            resize()  # before the start, so the process sees its size from the first instruction
        if start:
            tasks.start(container_id, exec_id)
        while waiter.is_alive():
            waiter.join(0.2)  # short joins, so forwarded signals are handled promptly
        attached.wait(5.0)
    if failed:
        raise failed[0]
    return exited[0]
