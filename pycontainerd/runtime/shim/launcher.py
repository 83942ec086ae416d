"""The task manager's view of our shim: ``pycontainerd.tasks.manager``'s Launcher and Shim protocols.

:class:`ShimClient` speaks in dicts and records; the manager wants
containerd's protobuf payloads for events and statistics.  This adapter
converts, and acknowledges each event once the manager has taken it (the
next iteration), so an event is lost neither by a daemon crash nor twice
after one is handled.  ``/tasks/create`` and ``/tasks/delete`` are
acknowledged but not passed on: the manager publishes those itself.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ...api.cgroups.v1 import metrics_pb2 as v1
from ...api.cgroups.v2 import metrics_pb2 as v2
from ...api.events import task_pb2 as ev
from ...mount import Mount
from ...tasks import IO, Exit, Process
from ...tasks.manager import Launcher, Shim, ShimEvent
from .client import ShimClient, cleanup
from .spawn import ForkServer

__all__ = ["ShimLauncher", "TaskShim", "to_event", "to_metrics"]

_MANAGER_PUBLISHES = frozenset({"/tasks/create", "/tasks/delete"})


def _ts(ns: int) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def to_event(e: Mapping[str, Any]) -> ShimEvent | None:
    """containerd's message for a shim event; None for a topic without one."""
    topic, cid = e["topic"], e["container_id"]
    msg: Message
    if topic == "/tasks/exit":
        msg = ev.TaskExit(
            container_id=cid, id=e["id"], pid=e["pid"], exit_status=e["exit_status"], exited_at=_ts(e["exited_at"])
        )
    elif topic == "/tasks/delete":
        msg = ev.TaskDelete(
            container_id=cid, id=e["id"], pid=e["pid"], exit_status=e["exit_status"], exited_at=_ts(e["exited_at"])
        )
    elif topic == "/tasks/start":
        msg = ev.TaskStart(container_id=cid, pid=e["pid"])
    elif topic == "/tasks/oom":
        msg = ev.TaskOOM(container_id=cid)
    elif topic == "/tasks/exec-added":
        msg = ev.TaskExecAdded(container_id=cid, exec_id=e["exec_id"])
    elif topic == "/tasks/exec-started":
        msg = ev.TaskExecStarted(container_id=cid, exec_id=e["exec_id"], pid=e["pid"])
    elif topic == "/tasks/paused":
        msg = ev.TaskPaused(container_id=cid)
    elif topic == "/tasks/resumed":
        msg = ev.TaskResumed(container_id=cid)
    elif topic == "/tasks/create":
        io = e["io"]
        msg = ev.TaskCreate(
            container_id=cid,
            bundle=e["bundle"],
            io=ev.TaskIO(stdin=io["stdin"], stdout=io["stdout"], stderr=io["stderr"], terminal=io["terminal"]),
            pid=e["pid"],
        )
    else:
        return None
    return ShimEvent(topic, msg)


def to_metrics(stats: Mapping[str, Any]) -> Message:
    """containerd's cgroups v1 or v2 ``Metrics`` from the shim's stats."""
    target: Message = v2.Metrics() if stats.get("version") == 2 else v1.Metrics()
    return json_format.ParseDict(stats.get("metrics", {}), target, ignore_unknown_fields=True)


class TaskShim:
    """A :class:`ShimClient` as the task manager's ``Shim``."""

    def __init__(self, client: ShimClient) -> None:
        self.client = client

    async def create(
        self,
        *,
        rootfs: Sequence[Mount],
        io: IO,
        binary: str,
        runtime_root: str,
        options: Mapping[str, bool],
        timeout: float,
    ) -> int:
        return await self.client.create(
            rootfs=rootfs, io=io, binary=binary, runtime_root=runtime_root, options=options, runtime_timeout=timeout
        )

    async def start(self, exec_id: str) -> int:
        return await self.client.start(exec_id)

    async def exec(self, exec_id: str, process: Mapping[str, Any], io: IO) -> None:
        await self.client.exec(exec_id, process, io)

    async def kill(self, exec_id: str, signal: int, all: bool) -> None:
        await self.client.kill(exec_id, signal, all)

    async def delete(self, exec_id: str) -> Exit:
        return await self.client.delete(exec_id)

    async def state(self, exec_id: str) -> Process:
        return await self.client.state(exec_id)

    async def wait(self, exec_id: str) -> Exit:
        return await self.client.wait(exec_id)

    async def pids(self) -> list[tuple[int, str]]:
        return await self.client.pids()

    async def pause(self) -> None:
        await self.client.pause()

    async def resume(self) -> None:
        await self.client.resume()

    async def resize_pty(self, exec_id: str, width: int, height: int) -> None:
        await self.client.resize_pty(exec_id, width, height)

    async def close_io(self, exec_id: str) -> None:
        await self.client.close_io(exec_id)

    async def update(self, resources: Mapping[str, Any]) -> None:
        await self.client.update(resources)

    async def stats(self) -> Message:
        return to_metrics(await self.client.stats())

    async def events(self) -> AsyncIterator[ShimEvent]:
        async for e in self.client.events():
            converted = None if e["topic"] in _MANAGER_PUBLISHES else to_event(e)
            if converted is not None:
                yield converted
            await self.client.ack(e["seq"])

    async def abandon(self) -> None:
        try:
            os.kill(self.client.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            await self.client.close()

    async def shutdown(self) -> None:
        """Ask the shim to exit (it does once the task is deleted) and drop the connection."""
        try:
            await self.client.shutdown()
        finally:
            await self.client.close()


class ShimLauncher:
    """The task manager's ``Launcher``: our shim, started, found again, or cleaned up after.

    Shims are forked from one fork server the launcher starts with the first
    task (see :mod:`.spawn`); ``forks=False`` starts each from scratch.
    """

    def __init__(self, *, forks: bool = True) -> None:
        self.forkserver = ForkServer() if forks else None

    async def start(self, bundle: Path, namespace: str, id: str) -> TaskShim:
        return TaskShim(await ShimClient.spawn(bundle, namespace, id, forkserver=self.forkserver))

    async def close(self) -> None:
        """Stop the fork server; the shims carry on."""
        if self.forkserver is not None:
            await self.forkserver.close()

    async def connect(self, bundle: Path) -> TaskShim:
        return TaskShim(await ShimClient.connect(bundle))

    async def cleanup(self, bundle: Path, runtime_root: str) -> Exit:
        return await cleanup(bundle, runtime_root)


if TYPE_CHECKING:  # mypy holds the adapter to the manager's protocols
    _launcher: Launcher = ShimLauncher()
    _shim: Shim = TaskShim(ShimClient.__new__(ShimClient))
