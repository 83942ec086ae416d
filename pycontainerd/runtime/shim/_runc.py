"""runc's (and crun's: the same command line) commands, run to completion.

Commands run synchronously with ``posix_spawn``: each takes tens of
milliseconds, and the shim's loop is single-threaded on purpose, so no exit
of a container process can be reaped by the loop while a runc command is
in flight.  Exits that arrive meanwhile wait in the signal pipe.

``create`` and ``exec`` hand runc the process's stdio as its own fds 0-2
(runc passes them through to the container), so their error messages are
taken from runc's JSON log instead, as containerd does.

Every command runs in a process group of its own (as containerd's shim runs
runc) and has ``timeout`` seconds to finish: a runtime that hangs is killed
with its whole group and the command fails with :class:`RuntimeTimedOut`,
instead of stalling the shim for good.
"""

from __future__ import annotations

import os
import select
import time

from . import _cjson

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    import signal as _signal  # what the checker knows of _signal, the C half without the enums
    from collections.abc import Sequence
else:
    import _signal

__all__ = ["DEFAULT_TIMEOUT", "Runtime", "RuntimeFailed", "RuntimeTimedOut"]

DEFAULT_TIMEOUT = 120.0
"""Seconds a runtime command may take unless the daemon says otherwise."""

_RESET = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT, _signal.SIGHUP, _signal.SIGTERM, _signal.SIGCHLD)
"""Dispositions the shim changes and that its children must not inherit (SIG_IGN survives exec)."""


class RuntimeFailed(Exception):
    """runc exited non-zero; the message is runc's own error."""


class RuntimeTimedOut(RuntimeFailed):
    """runc did not finish in time and was killed, with its process group."""


class Runtime:
    def __init__(
        self, binary: str, root: str, log: str, *, systemd_cgroup: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.binary = binary or "runc"
        self.root = root
        self.log = log
        self.systemd_cgroup = systemd_cgroup
        self.timeout = timeout

    def _argv(self, args: Sequence[str]) -> list[str]:
        argv = [self.binary]
        if self.root:
            argv += ["--root", self.root]
        argv += ["--log", self.log, "--log-format", "json"]
        if self.systemd_cgroup:
            argv.append("--systemd-cgroup")
        return argv + list(args)

    def run(self, args: Sequence[str], stdio: tuple[int, int, int] | None = None) -> bytes:
        """Run a command and return its output (stdout and stderr); RuntimeFailed when it fails.

        With ``stdio`` the command's streams are those fds and the output is empty.
        """
        start = _size(self.log)
        r = w = -1
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            if stdio is None:
                r, w = os.pipe()
                stdio = (null, w, w)
            actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(stdio)]
            try:
                pid = os.posix_spawnp(
                    self.binary, self._argv(args), os.environ, file_actions=actions, setsigdef=_RESET, setpgroup=0
                )
            except OSError as e:
                raise RuntimeFailed(f"{self.binary}: {e.strerror}") from None
            if w >= 0:
                os.close(w)
                w = -1
            out, status = _finish(pid, r, time.monotonic() + self.timeout)
            if status is None:
                raise RuntimeTimedOut(f"{self.binary} {args[0]} did not finish within {self.timeout:g}s and was killed")
        finally:
            for fd in (r, w, null):
                if fd >= 0:
                    os.close(fd)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            message = _last_error(self.log, start) or out.decode(errors="replace").strip()
            raise RuntimeFailed(message or f"{self.binary} {args[0]} exited with status {code}")
        return out

    def create(
        self,
        id: str,
        bundle: str,
        pid_file: str,
        stdio: tuple[int, int, int],
        console_socket: str = "",
        *,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
    ) -> None:
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        if no_pivot:
            args.append("--no-pivot")
        if no_new_keyring:
            args.append("--no-new-keyring")
        self.run([*args, id], stdio)

    def exec(
        self, id: str, process_file: str, pid_file: str, stdio: tuple[int, int, int], console_socket: str = ""
    ) -> None:
        args = ["exec", "--detach", "--process", process_file, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        self.run([*args, id], stdio)

    def start(self, id: str) -> None:
        self.run(["start", id])

    def kill(self, id: str, signal: int, all: bool = False) -> None:
        self.run(["kill", *(["--all"] if all else []), id, str(signal)])

    def delete(self, id: str, force: bool = False) -> None:
        self.run(["delete", *(["--force"] if force else []), id])

    def pause(self, id: str) -> None:
        self.run(["pause", id])

    def resume(self, id: str) -> None:
        self.run(["resume", id])

    def update(self, id: str, resources_file: str) -> None:
        self.run(["update", "--resources", resources_file, id])

    def ps(self, id: str) -> list[int]:
        out = self.run(["ps", "--format", "json", id])
        start = out.find(b"[")  # anything before the list is a warning
        pids = _cjson.loads(out[start:]) if start >= 0 else []
        return [p for p in pids if isinstance(p, int)] if isinstance(pids, list) else []


def _finish(pid: int, r: int, deadline: float) -> tuple[bytes, int | None]:
    """Read ``r`` (unless -1) to its end and reap ``pid``; (output, wait status, or None when time ran out).

    A child still running at the deadline is killed with its process group
    and reaped.  One that exited while something it left behind still holds
    the pipe is not waited for any longer than the deadline.
    """
    chunks = []
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if r >= 0:
            poller.register(r, select.POLLIN)
        reading, exited = r >= 0, False
        while reading or not exited:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(max(1, int(left * 1000))):
                if fd == pidfd:
                    exited = True
                    poller.unregister(pidfd)
                elif chunk := os.read(r, 65536):
                    chunks.append(chunk)
                else:
                    reading = False
                    poller.unregister(r)
    finally:
        os.close(pidfd)
        if not exited:
            try:
                os.killpg(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks), status if exited else None


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _last_error(log: str, offset: int) -> str:
    """The last error runc logged since ``offset`` (its log is JSON lines: level, msg, time)."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            data = f.read(1 << 20)
    except OSError:
        return ""
    message = ""
    for line in data.splitlines():
        try:
            entry = _cjson.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal") and entry.get("msg"):
            message = str(entry["msg"])
    return message
