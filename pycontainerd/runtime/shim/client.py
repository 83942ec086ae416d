"""The daemon's side of a shim: start it, find it again, drive it — asyncio.

::

    shim = await ShimClient.spawn(bundle, "default", "web")   # or: await ShimClient.connect(bundle)
    pid = await shim.create(rootfs=mounts, io=IO(stdout=fifo), binary="runc", runtime_root=root)
    await shim.start()
    async for ev in shim.events():      # {"seq", "topic", "container_id", ...}
        ...
        await shim.ack(ev["seq"])

One unix-socket connection carries every call and the event stream; the
wire format is :mod:`.protocol` (length-prefixed JSON, replies matched by
id, so ``wait`` can block while other calls go on).  The shim's errors
arrive as the :mod:`pycontainerd.errors` class of their code; a lost
connection fails every call in flight with ``Unavailable``.

Event topics and fields (containerd's task events, times in UTC
nanoseconds): ``/tasks/create`` (bundle, rootfs, io, pid),
``/tasks/start`` (pid), ``/tasks/exec-added`` (exec_id),
``/tasks/exec-started`` (exec_id, pid), ``/tasks/paused``,
``/tasks/resumed``, ``/tasks/oom``, ``/tasks/exit`` (id, pid, exit_status,
exited_at) and ``/tasks/delete`` (id, pid, exit_status, exited_at); every
event has ``seq``, ``topic`` and ``container_id``.

:func:`cleanup` is what containerd's ``shim delete`` does for a task whose
shim died: force-delete runc's container, unmount the rootfs, report the
task killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import (
    AlreadyExists,
    ContainerdError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    Unavailable,
    Unknown,
    quote,
)
from ...mount import Mount, unmount_all
from ...tasks import IO, NO_IO, Exit, Process, Status
from . import protocol
from .spawn import ForkServer, shim_args, start_shim

__all__ = ["SOCKET_DIR", "ShimClient", "cleanup", "socket_path"]

SOCKET_DIR = Path("/run/pycontainerd/s")
"""Where sockets go when ``<bundle>/shim.sock`` would not fit in sun_path (108 bytes)."""
_SOCKET_ROOM = 90
"""Longest in-bundle socket path: leaves room for the ``.cN`` console sockets beside it."""
KILLED = 128 + 9

_ERRORS: dict[str, type[ContainerdError]] = {
    "already_exists": AlreadyExists,
    "deadline_exceeded": DeadlineExceeded,
    "failed_precondition": FailedPrecondition,
    "invalid_argument": InvalidArgument,
    "not_found": NotFound,
    "unavailable": Unavailable,
    "unimplemented": NotImplementedYet,
    "unknown": Unknown,
}
_STATUS = {
    "created": Status.CREATED,
    "running": Status.RUNNING,
    "paused": Status.PAUSED,
    "pausing": Status.PAUSING,
    "stopped": Status.STOPPED,
}


def socket_path(bundle: Path) -> str:
    """The shim's socket: in the bundle when the path is short enough, else a hash under SOCKET_DIR."""
    local = str(bundle / "shim.sock")
    if len(local.encode()) <= _SOCKET_ROOM:
        return local
    return str(SOCKET_DIR / (hashlib.sha256(str(bundle).encode()).hexdigest()[:32] + ".sock"))


def _address(bundle: Path) -> str:
    try:
        text = (bundle / "address").read_text().strip()
    except FileNotFoundError:
        raise Unavailable(f"bundle {bundle}: no shim address (the shim never started or has exited)") from None
    return text.removeprefix("unix://")


def _time(ns: int) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns else None


def _exit(result: Mapping[str, Any]) -> Exit:
    return Exit(int(result["exit_status"]), _time(int(result["exited_at"])), int(result["pid"]))


def _io(io: IO) -> dict[str, Any]:
    return {"stdin": io.stdin, "stdout": io.stdout, "stderr": io.stderr, "terminal": io.terminal}


class ShimClient:
    """One connection to one shim.  Build it with :meth:`spawn` or :meth:`connect`."""

    def __init__(self, bundle: Path, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.bundle = bundle
        self.pid = 0
        """The shim process's pid."""
        self.info: dict[str, Any] = {}
        """What the shim said on connecting: version, pid, namespace, id, bundle, init (its state or None)."""
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribed = False
        self._lost: ContainerdError | None = None
        self._receiver = asyncio.get_running_loop().create_task(self._receive())

    # -- starting and finding shims ------------------------------------------

    @classmethod
    async def spawn(
        cls,
        bundle: Path,
        namespace: str,
        id: str,
        *,
        socket: str | None = None,
        python: str = sys.executable,
        timeout: float = 10.0,
        forkserver: ForkServer | None = None,
    ) -> ShimClient:
        """Start a shim for ``bundle`` (its own session, surviving us) and connect to it.

        With ``forkserver`` the shim is forked from it when it can be (see :mod:`.spawn`).
        """
        bundle = Path(bundle).resolve()
        args = shim_args(bundle, namespace, id, socket or socket_path(bundle))
        await start_shim(args, str(bundle), python=python, timeout=timeout, forkserver=forkserver)
        return await cls.connect(bundle, timeout=timeout)

    @classmethod
    async def connect(cls, bundle: Path, *, timeout: float = 10.0) -> ShimClient:
        """The running shim of ``bundle``; Unavailable when it is gone."""
        bundle = Path(bundle).resolve()
        path = _address(bundle)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
        except (OSError, TimeoutError) as e:
            raise Unavailable(f"shim of {bundle} at {path} is not running: {e}") from None
        client = cls(bundle, reader, writer)
        try:
            client.info = await asyncio.wait_for(client._call("connect"), timeout)
        except BaseException:
            await client.close()
            raise
        if client.info.get("version") != protocol.VERSION:
            await client.close()
            raise Unavailable(f"shim of {bundle} speaks protocol {client.info.get('version')}, not {protocol.VERSION}")
        client.pid = int(client.info["pid"])
        return client

    # -- the connection ----------------------------------------------------

    async def _receive(self) -> None:
        decoder = protocol.Decoder()
        reason: ContainerdError = Unavailable(f"shim of {self.bundle}: connection closed")
        try:
            while data := await self._reader.read(65536):
                for message in decoder.feed(data):
                    rid, result, error = protocol.parse_reply(message)
                    if rid == 0:
                        self._events.put_nowait(result)
                        continue
                    fut = self._pending.pop(rid, None)
                    if fut is None or fut.done():
                        continue
                    if error is not None:
                        fut.set_exception(_ERRORS[error[0]](error[1]))
                    else:
                        fut.set_result(result or {})
        except protocol.ProtocolError as e:
            reason = Unavailable(f"shim of {self.bundle}: {e}")
        except OSError as e:
            reason = Unavailable(f"shim of {self.bundle}: {e}")
        finally:
            self._lost = reason
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(reason)
            self._pending.clear()
            self._events.put_nowait(None)
            self._writer.close()

    async def _call(self, op: str, **args: Any) -> dict[str, Any]:
        if self._lost is not None:
            raise self._lost
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._writer.write(protocol.encode(protocol.request(rid, op, args)))
            await self._writer.drain()
        except protocol.ProtocolError as e:
            self._pending.pop(rid, None)
            raise InvalidArgument(f"{op}: {e}") from None
        except OSError as e:
            self._pending.pop(rid, None)
            raise Unavailable(f"shim of {self.bundle}: {e}") from None
        try:
            return await fut
        finally:
            self._pending.pop(rid, None)

    async def close(self) -> None:
        """Drop the connection; the shim carries on."""
        self._writer.close()
        self._receiver.cancel()
        with contextlib.suppress(BaseException):
            await self._receiver
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> ShimClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- operations --------------------------------------------------------

    async def create(
        self,
        *,
        rootfs: Sequence[Mount] = (),
        io: IO = NO_IO,
        binary: str = "runc",
        runtime_root: str = "",
        options: Mapping[str, Any] | None = None,
        runtime_timeout: float | None = None,
    ) -> int:
        """Mount ``rootfs`` on ``<bundle>/rootfs`` and ``runc create`` the task; its init's pid.

        ``options``: ``systemd_cgroup``, ``no_pivot_root``, ``no_new_keyring``
        (containerd's runc options of the same names).  ``runtime_timeout``:
        seconds each runtime command of this task may take before the shim
        kills it (DeadlineExceeded); the shim's default when None.
        """
        mounts = [{"type": m.type, "source": m.source, "options": list(m.options), "target": m.target} for m in rootfs]
        extra = {} if runtime_timeout is None else {"runtime_timeout": float(runtime_timeout)}
        result = await self._call(
            "create",
            rootfs=mounts,
            runtime=binary,
            runtime_root=runtime_root,
            options=dict(options or {}),
            **_io(io),
            **extra,
        )
        return int(result["pid"])

    async def start(self, exec_id: str = "") -> int:
        """Start the init (``runc start``) or a process added by :meth:`exec` (``runc exec``); its pid."""
        return int((await self._call("start", exec_id=exec_id))["pid"])

    async def exec(self, exec_id: str, process: Mapping[str, Any], io: IO = NO_IO) -> None:
        """Add a process (an OCI ``process`` object) to start later with ``start(exec_id)``."""
        await self._call("exec", exec_id=exec_id, spec=dict(process), **_io(io))

    async def kill(self, exec_id: str, signal: int, all: bool = False) -> None:
        await self._call("kill", exec_id=exec_id, signal=int(signal), all=all)

    async def delete(self, exec_id: str = "") -> Exit:
        """Forget a stopped process; for the init, also runc's container and the rootfs mount."""
        return _exit(await self._call("delete", exec_id=exec_id))

    async def state(self, exec_id: str = "") -> Process:
        s = await self._call("state", exec_id=exec_id)
        return Process(
            container_id=str(self.info.get("id", "")),
            id=s["id"],
            pid=int(s["pid"]),
            status=_STATUS.get(s["status"], Status.UNKNOWN),
            io=IO(s["stdin"], s["stdout"], s["stderr"], bool(s["terminal"])),
            exit_status=int(s["exit_status"]),
            exited_at=_time(int(s["exited_at"])),
        )

    async def wait(self, exec_id: str = "") -> Exit:
        """Block until the process exits; at once when it already has."""
        return _exit(await self._call("wait", exec_id=exec_id))

    async def pids(self) -> list[tuple[int, str]]:
        """(pid, exec id or "") of every process in the container."""
        result = await self._call("pids")
        return [(int(p["pid"]), str(p["exec_id"])) for p in result["processes"]]

    async def pause(self) -> None:
        await self._call("pause")

    async def resume(self) -> None:
        await self._call("resume")

    async def resize_pty(self, exec_id: str, width: int, height: int) -> None:
        await self._call("resize_pty", exec_id=exec_id, width=width, height=height)

    async def close_io(self, exec_id: str = "", stdin: bool = True) -> None:
        """Drop the shim's hold on the process's stdin: EOF once the client's writer is closed too."""
        await self._call("close_io", exec_id=exec_id, stdin=stdin)

    async def update(self, resources: Mapping[str, Any]) -> None:
        """``runc update`` with OCI ``linux.resources``."""
        await self._call("update", resources=dict(resources))

    async def stats(self) -> dict[str, Any]:
        """``{"version": 1 or 2, "metrics": {...}}``: containerd's cgroups v1/v2 Metrics as a dict."""
        return await self._call("stats")

    async def shutdown(self) -> bool:
        """Ask the shim to exit; it does (True) only once the task is deleted or was never created."""
        return bool((await self._call("shutdown"))["exiting"])

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The shim's events, starting with every one not yet acknowledged; Unavailable when the shim goes."""
        if not self._subscribed:
            self._subscribed = True
            await self._call("events")
        while True:
            ev = await self._events.get()
            if ev is None:
                self._events.put_nowait(None)
                raise self._lost or Unavailable(f"shim of {self.bundle}: connection closed")
            yield ev

    async def ack(self, seq: int) -> None:
        """Acknowledge events up to ``seq``: the shim will not send them again, to anyone."""
        await self._call("ack", seq=seq)


async def cleanup(bundle: Path, runtime_root: str = "") -> Exit:
    """After a shim died: ``runc delete --force``, unmount the rootfs, remove the address.

    The task is reported killed (128 + SIGKILL), as containerd's ``shim delete``.
    """
    bundle = Path(bundle).resolve()
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((bundle / "shim.json").read_text())
    id = str(state.get("id") or bundle.name)
    binary = str(state.get("runtime") or "runc")
    root = str(state.get("runtime_root") or runtime_root)
    pid = 0
    with contextlib.suppress(OSError, ValueError):
        pid = int((bundle / "init.pid").read_text().strip())
    argv = [binary, *(["--root", root] if root else []), *(["--systemd-cgroup"] if state.get("systemd_cgroup") else [])]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        "delete",
        "--force",
        id,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0 and "does not exist" not in text:
        raise Unknown(f"cleanup of {quote(id)}: {binary} delete --force failed: {text}")
    rootfs = bundle / "rootfs"
    if rootfs.is_dir():
        await asyncio.to_thread(unmount_all, rootfs)
    with contextlib.suppress(OSError, Unavailable):
        address = _address(bundle)
        if address and os.path.exists(address):
            os.unlink(address)
    with contextlib.suppress(OSError):
        (bundle / "address").unlink()
    return Exit(KILLED, datetime.now(UTC), pid)
