"""The fork server: a shim interpreter kept ready, that forks a new shim on request.

A shim started from scratch pays for a Python interpreter's start and its
imports — most of the time from ``Tasks.Create`` to ``runc create`` — and
holds its own copy of every module.  The fork server pays both once: it
imports everything a shim runs, freezes those objects out of the garbage
collector's reach (so no collection in a shim ever writes to their pages),
and then forks.  A forked shim shares those pages with the server and with
every other forked shim until it writes to one, so it starts in about a
millisecond and costs a fraction of a fresh interpreter's memory.

A forked shim is the same process as a spawned one from then on: the
child runs ``_main.main`` with the same arguments, which forks again — the
shim proper is the grandchild, in a session of its own, never the server's
child — so it outlives the server as it outlives the daemon.  Nothing
crosses from one shim to the next: each is a copy of the server as it was
after its imports, holding no fd of the server's but /dev/null.

Its command line is rewritten to the one a spawned shim would have (``…
--bundle B --namespace N --id ID --socket PATH``), so ``ps`` and anything
that finds shims by their command line tell no difference.  The server
is started with a padding argument that reserves room for it; a command
line that does not fit is refused, and the daemon spawns that shim instead.

The daemon talks to the server over the socket it gets as stdin, in
:mod:`.protocol` frames: ``spawn`` ``{cmdline: [...], args: [...]}`` →
``{pid}`` (the intermediate child's, which has exited by then) or an
error with the shim's last message.  On EOF — the daemon went away — the
server exits; its shims carry on.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

from . import _main, _service  # noqa: F401  (imported for the pages every forked shim shares)
from .protocol import Decoder, ProtocolError, encode, failure, parse_request, reply

__all__ = ["Cmdline", "serve"]

_CONTROL_FD = 9


def _arg_area() -> tuple[int, int]:
    """Where this process's command line lives (``/proc/self/stat`` fields 48 and 49)."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[45]), int(fields[46])


class Cmdline:
    """This process's argv area, rewritable in place as ``setproctitle`` does (no capability needed)."""

    def __init__(self) -> None:
        self.start, end = _arg_area()
        self.size = end - self.start

    def fits(self, argv: list[str]) -> bool:
        return len(_pack(argv)) < self.size  # the last byte stays NUL: /proc then reads argv, not a title

    def set(self, argv: list[str]) -> None:
        data = _pack(argv)
        ctypes.memmove(self.start, data + b"\0" * (self.size - len(data)), self.size)


def _pack(argv: list[str]) -> bytes:
    return b"".join(os.fsencode(a) + b"\0" for a in argv)


def serve(own_cmdline: list[str]) -> None:
    """Serve spawn requests on stdin until EOF; ``own_cmdline`` is what ``ps`` shows for the server."""
    gc.disable()  # no collection moves or frees objects the shims are to share
    server = _Server(os.dup2(0, _CONTROL_FD, inheritable=False))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    if server.cmdline.fits(own_cmdline):
        server.cmdline.set(own_cmdline)
    gc.freeze()
    server.run()


def _strings(args: dict[str, object], key: str) -> list[str]:
    value = args.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and "\0" not in a for a in value):
        raise ValueError(f"{key} must be a list of strings")
    return value


class _Server:
    def __init__(self, control: int) -> None:
        self.control = control
        self.cmdline = Cmdline()

    def run(self) -> None:
        decoder = Decoder()
        os.write(self.control, encode(reply(1, {"pid": os.getpid(), "room": self.cmdline.size})))
        while data := os.read(self.control, 65536):
            try:
                messages = decoder.feed(data)
            except ProtocolError:
                return
            for message in messages:
                try:
                    rid, op, args = parse_request(message)
                except ProtocolError:
                    return
                os.write(self.control, encode(self.handle(rid, op, args)))

    def handle(self, rid: int, op: str, args: dict[str, object]) -> dict[str, object]:
        if op != "spawn":
            return failure(rid, "unimplemented", f"unknown operation {op!r}")
        try:
            shown, shim_args = _strings(args, "cmdline"), _strings(args, "args")
        except ValueError as e:
            return failure(rid, "invalid_argument", str(e))
        if not self.cmdline.fits(shown):
            return failure(rid, "failed_precondition", f"a command line of {len(_pack(shown))} bytes does not fit")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            self._child(w, shown, shim_args)
        os.close(w)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            lines = b"".join(chunks).decode(errors="replace").strip().splitlines()
            return failure(rid, "unavailable", lines[-1] if lines else f"exit status {status}")
        return reply(rid, {"pid": pid})

    def _child(self, errors: int, shown: list[str], shim_args: list[str]) -> None:
        """The intermediate child: become the shim's parent as a fresh interpreter would, and never return."""
        code = 1
        try:
            os.close(self.control)
            os.dup2(errors, 2)  # failures reach the server; the shim itself moves stderr to its log
            os.close(errors)
            self.cmdline.set(shown)
            gc.enable()
            sys.argv = shown
            _main.main(shim_args)  # returns only in the shim proper, once it stopped serving
            code = 0
        except SystemExit as e:
            if isinstance(e.code, str):
                sys.stderr.write(e.code + "\n")
            code = e.code if isinstance(e.code, int) else 1
        except BaseException as e:
            sys.excepthook(type(e), e, e.__traceback__)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
