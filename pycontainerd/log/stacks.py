"""What every thread and asyncio task is doing: the daemon's answer to a goroutine dump.

A thread's stack is its current frames.  A task's is longer than
``Task.get_stack`` shows (only the outermost coroutine's frame): the dump
follows the chain of awaits — coroutines, generators, async generators,
even through the ``asend`` wrapper of ``async for`` — to where the task is
actually suspended.  A task or core thread serving a gRPC call is labelled
with the call's request id, method and namespace, read from the context it
runs in.  Reading another thread's frames is safe under the GIL; it may be
called from any thread, including from a signal handler.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread
import contextvars
import functools
import gc
import inspect
import logging
import queue
import sys
import threading
import traceback
from collections.abc import Iterable
from types import FrameType
from typing import Any

from . import Request, current

__all__ = ["MAX_FRAMES", "Dumper", "dump", "task_request"]

#: Frames shown per thread or task (the innermost ones when there are more).
MAX_FRAMES = 128

_WORK_ITEM_RUN = concurrent.futures.thread._WorkItem.run.__code__


def dump(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Every thread's stack, then every task of ``loop`` (if given), as text."""
    out: list[str] = []
    frames = sys._current_frames()
    threads = {t.ident: t for t in threading.enumerate()}
    main = threading.main_thread().ident
    for ident in sorted(frames, key=lambda i: (i != main, i)):
        frame = frames[ident]
        thread = threads.get(ident)
        name = thread.name if thread is not None else "?"
        notes = ["main"] if ident == main else []
        if thread is not None and thread.daemon:
            notes.append("daemon")
        out.append(f"thread {name} (id {ident}{''.join(', ' + n for n in notes)}){_serving(_thread_request(frame))}:")
        out.extend(_format(_outward(frame)))
        out.append("")
    if loop is not None:
        tasks = sorted(asyncio.all_tasks(loop), key=lambda t: _natural(t.get_name()))
        out.append(f"{len(tasks)} asyncio tasks")
        out.append("")
        # Idle tasks waiting alike (grpc keeps dozens ready for new calls) are shown once.
        alike: dict[tuple[str, ...], list[str]] = {}
        for task in tasks:
            coro = task.get_coro()
            what = getattr(coro, "__qualname__", type(coro).__name__)
            key = (f"({what}){_serving(task_request(task))}:", *_format(_awaits(coro)))
            alike.setdefault(key, []).append(task.get_name())
        for (header, *lines), names in alike.items():
            who = f"task {names[0]}" if len(names) == 1 else f"{len(names)} tasks {', '.join(names)}"
            out.append(f"{who} {header}")
            out.extend(lines)
            out.append("")
    return "\n".join(out)


class Dumper:
    """Logs :func:`dump` whenever asked, from a thread of its own.

    :meth:`request` only puts a note on a queue, so a signal handler may call
    it: the dump is taken and logged on the dumper's thread, never in the
    interrupted code, which may hold a lock the logging path needs (the
    credential redactor's, for one).  Being a thread, it also dumps a daemon
    whose event loop is stuck in Python code.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None, logger: logging.Logger) -> None:
        self.loop = loop
        self._log = logger
        self._queue: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="stack-dumper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Ask for a dump; safe in a signal handler (SimpleQueue.put is reentrant)."""
        self._queue.put(True)

    def stop(self) -> None:
        self._queue.put(False)
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while self._queue.get():
            try:
                text = dump(self.loop)
            except Exception:
                self._log.exception("stack dump failed")
                continue
            self._log.info("=== BEGIN stack dump ===\n%s\n=== END stack dump ===", text)


def task_request(task: asyncio.Task[Any]) -> Request | None:
    """The gRPC call ``task`` serves, if one is bound in its context."""
    context = _task_context(task)
    return context.get(current) if context is not None else None


def _task_context(task: asyncio.Task[Any]) -> contextvars.Context | None:
    get_context = getattr(task, "get_context", None)  # Python 3.12
    if get_context is not None:
        context: contextvars.Context = get_context()
        return context
    # Before 3.12 the C task hides its context, but hands it to the collector.
    for referent in gc.get_referents(task):
        if isinstance(referent, contextvars.Context):
            return referent
    return None


def _thread_request(frame: FrameType | None) -> Request | None:
    """The call a core thread works for: the context ``asyncio.to_thread`` runs its function in."""
    while frame is not None:
        if frame.f_code is _WORK_ITEM_RUN:
            fn = getattr(frame.f_locals.get("self"), "fn", None)
            if isinstance(fn, functools.partial):
                context = getattr(fn.func, "__self__", None)
                if isinstance(context, contextvars.Context):
                    return context.get(current)
            return None
        frame = frame.f_back
    return None


def _natural(name: str) -> tuple[str, int]:
    """Task-9 before Task-10."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    return stem, int(digits) if digits else -1


def _serving(request: Request | None) -> str:
    if request is None:
        return ""
    return f" serving request_id={request.id} method={request.method} namespace={request.namespace or '-'}"


def _outward(frame: FrameType | None) -> list[FrameType | str]:
    """A thread's frames, outermost first."""
    frames: list[FrameType | str] = []
    while frame is not None and len(frames) < MAX_FRAMES:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    return frames


def _awaits(awaitable: object) -> list[FrameType | str]:
    """The frames of ``awaitable`` and of everything it awaits in turn, outermost first.

    A coroutine compiled by Cython (grpc's) has no frame; it appears by name.
    What the chain ends in, when it is a task or future, is named last.
    """
    frames: list[FrameType | str] = []
    obj: object = awaitable
    for _ in range(4 * MAX_FRAMES):
        if obj is None:
            break
        frame = _attr(obj, "cr_frame", "gi_frame", "ag_frame")
        inner = _attr(obj, "cr_await", "gi_yieldfrom", "ag_await")
        if isinstance(frame, FrameType):
            frames.append(frame)
        elif hasattr(obj, "cr_await"):
            frames.append(f"<compiled coroutine {getattr(obj, '__qualname__', type(obj).__name__)}>")
        if inner is None and not _is_coroutine_like(obj):
            inner = _unwrap(obj)
            if isinstance(inner, asyncio.Future):
                frames.append(f"<awaiting {_future_name(inner)}>")
                break
        obj = inner
    return frames[-MAX_FRAMES:]


def _attr(obj: object, *names: str) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _is_coroutine_like(obj: object) -> bool:
    return inspect.iscoroutine(obj) or inspect.isgenerator(obj) or inspect.isasyncgen(obj) or hasattr(obj, "cr_await")


def _unwrap(obj: object) -> object:
    """What an opaque awaitable (an ``asend``, a future's iterator) stands for, if the collector can tell."""
    for referent in gc.get_referents(obj):
        if _is_coroutine_like(referent) or isinstance(referent, asyncio.Future):
            return referent
    return None


def _future_name(future: asyncio.Future[Any]) -> str:
    if isinstance(future, asyncio.Task):
        return f"task {future.get_name()}"
    return "a future"


def _format(frames: Iterable[FrameType | str]) -> list[str]:
    lines: list[str] = []
    for frame in frames:
        if isinstance(frame, str):
            lines.append(f"  {frame}")
            continue
        summary = traceback.StackSummary.extract([(frame, frame.f_lineno or 0)], lookup_lines=True)
        lines.extend(line.rstrip("\n") for chunk in summary.format() for line in chunk.splitlines())
    return lines
