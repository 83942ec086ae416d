"""The daemon's task manager: one shim per task, bundles on disk, events forwarded, shims found again.

A task's bundle lives at ``<root>/<namespace>/<id>``: the runtime spec
(``config.json``) taken from the container record, and the ``rootfs``
directory the shim mounts the container's snapshot on.  The shim — a process
of its own that outlives the daemon — does the rest.  The manager only
starts shims, keeps a table of them, forwards what they report to the event
exchange, and at start-up reconnects to the shims of tasks that were running
when the daemon stopped (or cleans up after those that died meanwhile).

The shim itself is reached through the :class:`Shim` and :class:`Launcher`
protocols, so this module holds no process or socket code.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ..api.convert import mount_to_pb
from ..api.events import task_pb2 as ev
from ..api.runtime.runc.options import oci_pb2 as runc_pb
from ..containers import Container, TypedValue
from ..errors import (
    AlreadyExists,
    ContainerdError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    quote,
)
from ..events import Publisher
from ..identifiers import validate
from ..mount import Mount
from . import IO, Exit, Process

__all__ = [
    "DEFAULT_RUNTIME_TIMEOUT",
    "RUNC_RUNTIME",
    "Launcher",
    "RuncOptions",
    "Shim",
    "ShimEvent",
    "Task",
    "TaskManager",
    "runc_options",
]

log = logging.getLogger("pycontainerd.tasks")

RUNC_RUNTIME = "io.containerd.runc.v2"
_SPEC_SUFFIX = "/opencontainers/runtime-spec/1/Spec"
_OPTIONS_TYPE = "containerd.runc.v1.Options"


@dataclass(frozen=True)
class ShimEvent:
    """Something a shim reports: a topic and containerd's payload for it."""

    topic: str
    event: Message


class Shim(Protocol):
    """One task's shim, as the manager drives it."""

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
        """Mount the rootfs and create the task; every runtime command of the task gets ``timeout`` seconds."""
        ...

    async def start(self, exec_id: str) -> int: ...

    async def exec(self, exec_id: str, process: Mapping[str, Any], io: IO) -> None: ...

    async def kill(self, exec_id: str, signal: int, all: bool) -> None: ...

    async def delete(self, exec_id: str) -> Exit: ...

    async def state(self, exec_id: str) -> Process: ...

    async def wait(self, exec_id: str) -> Exit: ...

    async def pids(self) -> list[tuple[int, str]]: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def resize_pty(self, exec_id: str, width: int, height: int) -> None: ...

    async def close_io(self, exec_id: str) -> None: ...

    async def update(self, resources: Mapping[str, Any]) -> None: ...

    async def stats(self) -> Message: ...

    def events(self) -> AsyncIterator[ShimEvent]: ...

    async def shutdown(self) -> None: ...

    async def abandon(self) -> None:
        """Kill the shim (SIGKILL) and drop the connection: for a shim that stopped answering."""
        ...


class Launcher(Protocol):
    """Starts shims, finds running ones again, and cleans up after dead ones."""

    async def start(self, bundle: Path, namespace: str, id: str) -> Shim: ...

    async def connect(self, bundle: Path) -> Shim:
        """The shim of ``bundle``; Unavailable when it is gone."""
        ...

    async def cleanup(self, bundle: Path, runtime_root: str) -> Exit:
        """What a dead shim's task leaves: runc's container and the rootfs mount; how the task ended."""
        ...


@dataclass
class Task:
    namespace: str
    id: str
    bundle: Path
    shim: Shim
    runtime_root: str
    pid: int = 0
    deleted: bool = False
    forwarder: asyncio.Task[None] | None = field(default=None, repr=False)
    ended: asyncio.Future[Exit] = field(default_factory=lambda: asyncio.get_running_loop().create_future(), repr=False)
    """Set once the task's shim was lost and cleaned up after: how the task ended (killed, 137)."""


@dataclass(frozen=True)
class RuncOptions:
    """What containerd.runc.v1.Options asks of the OCI runtime."""

    binary: str = "runc"
    root: str = ""
    """runc's state root; the task's namespace is added below it, as containerd does."""
    flags: Mapping[str, bool] = field(default_factory=dict)
    """``no_pivot_root``, ``no_new_keyring``, ``systemd_cgroup``: the shim's names for runc's flags."""


def runc_options(options: TypedValue | None) -> RuncOptions:
    """The runtime options of a task (the request's, else the container's); defaults when there are none."""
    if options is None or not options.type_url.endswith(_OPTIONS_TYPE):
        return RuncOptions()
    opts = runc_pb.Options()
    try:
        opts.ParseFromString(options.value)
    except Exception:
        raise InvalidArgument("runtime options: not a containerd.runc.v1.Options") from None
    binary = opts.binary_name or "runc"
    if shutil.which(binary) is None:
        raise FailedPrecondition(f"runtime binary {quote(binary)} is not installed")
    flags = {
        "no_pivot_root": opts.no_pivot_root,
        "no_new_keyring": opts.no_new_keyring,
        "systemd_cgroup": opts.systemd_cgroup,
    }
    return RuncOptions(binary, opts.root, {k: v for k, v in flags.items() if v})


DEFAULT_RUNTIME_TIMEOUT = 120.0
"""Seconds one runtime command (runc create, start, kill, delete...) may take before the shim kills it."""


CREATE_GRACE = 5.0
"""Seconds beyond its runtime commands' bounds that a shim has to answer create before it is killed."""


class TaskManager:
    def __init__(
        self,
        root: Path,
        publisher: Publisher,
        launcher: Launcher,
        runtime_root: Path,
        *,
        runtime_timeout: float = DEFAULT_RUNTIME_TIMEOUT,
    ) -> None:
        self.root = root
        self.runtime_timeout = runtime_timeout
        self._publisher = publisher
        self._launcher = launcher
        self._runtime_root = runtime_root
        self._tasks: dict[tuple[str, str], Task] = {}
        self._creating: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()

    # -- lookups -----------------------------------------------------------

    def get(self, namespace: str, id: str) -> Task:
        task = self._tasks.get((namespace, id))
        if task is None:
            raise NotFound(f"task {quote(id)}: not found")
        return task

    def list(self, namespace: str) -> builtins.list[Task]:
        return [t for (ns, _), t in sorted(self._tasks.items()) if ns == namespace]

    async def stats(self, timeout: float = 2.0) -> builtins.list[tuple[str, str, Message]]:
        """(namespace, id, cgroups Metrics message) of every task in every namespace, asked of all shims at once.

        A task without a cgroup, or whose shim does not answer within
        ``timeout`` (frozen, say), is left out rather than holding up the rest.
        """

        async def one(task: Task) -> tuple[str, str, Message] | None:
            try:
                return task.namespace, task.id, await asyncio.wait_for(task.shim.stats(), timeout)
            except (ContainerdError, TimeoutError) as e:
                log.debug("no statistics for task %s/%s: %s", task.namespace, task.id, e)
                return None

        live = [t for _, t in sorted(self._tasks.items()) if not t.deleted]
        return [r for r in await asyncio.gather(*(one(t) for t in live)) if r is not None]

    # -- lifecycle ---------------------------------------------------------

    async def create(
        self, container: Container, namespace: str, rootfs: Sequence[Mount], io: IO, options: TypedValue | None
    ) -> Task:
        """Write the bundle, start a shim and have it create the task; publishes /tasks/create."""
        validate("container id", container.id)
        if container.runtime.name != RUNC_RUNTIME:
            raise NotFound(f"runtime {quote(container.runtime.name)}: not supported (only {RUNC_RUNTIME})")
        runc = runc_options(options or container.runtime.options)
        spec = _spec_of(container)
        key = (namespace, container.id)
        # The key is reserved under the lock; the slow part (a shim and runc) runs outside it, so
        # creates of different tasks go on side by side.
        async with self._lock:
            if key in self._tasks or key in self._creating:
                raise AlreadyExists(f"task {quote(container.id)}: already exists")
            bundle = self.root / namespace / container.id
            if bundle.exists():
                raise AlreadyExists(f"task {quote(container.id)}: its bundle {bundle} already exists")
            self._creating.add(key)
        try:
            bundle.mkdir(parents=True, mode=0o711)
            runtime_root = str(Path(runc.root) / namespace) if runc.root else str(self._runtime_root / namespace)
            try:
                (bundle / "config.json").write_bytes(json.dumps(spec).encode())
                if rootfs:
                    (bundle / "rootfs").mkdir(mode=0o711)
                shim = await self._launcher.start(bundle, namespace, container.id)
                # The shim bounds each runtime command; a create may run two (create, then delete --force).
                bound = 2 * self.runtime_timeout + CREATE_GRACE
                try:
                    pid = await asyncio.wait_for(
                        shim.create(
                            rootfs=rootfs,
                            io=io,
                            binary=runc.binary,
                            runtime_root=runtime_root,
                            options=runc.flags,
                            timeout=self.runtime_timeout,
                        ),
                        bound,
                    )
                except TimeoutError:
                    log.error("task %s/%s: its shim did not answer create in %gs; killing it", namespace, key[1], bound)
                    await shim.abandon()
                    try:
                        await self._launcher.cleanup(bundle, runtime_root)
                    except Exception as e:
                        log.error("task %s/%s: cleanup failed: %s", namespace, key[1], e)
                    raise DeadlineExceeded(
                        f"task {quote(container.id)}: its shim did not answer create within {bound:g}s and was killed"
                    ) from None
                except BaseException:
                    with contextlib.suppress(Exception):
                        await shim.shutdown()
                    raise
            except BaseException:
                shutil.rmtree(bundle, ignore_errors=True)
                raise
            task = Task(namespace, container.id, bundle, shim, runtime_root, pid)
            self._tasks[key] = task
        finally:
            self._creating.discard(key)
        self._publish(
            namespace,
            "/tasks/create",
            ev.TaskCreate(
                container_id=container.id,
                bundle=str(bundle),
                rootfs=[mount_to_pb(m) for m in rootfs],
                io=ev.TaskIO(stdin=io.stdin, stdout=io.stdout, stderr=io.stderr, terminal=io.terminal),
                pid=pid,
            ),
        )
        task.forwarder = asyncio.create_task(self._forward(task))
        return task

    async def delete(self, namespace: str, id: str) -> Exit:
        """Delete a stopped task: the shim deletes runc's container and unmounts; the bundle goes."""
        task = self.get(namespace, id)
        exit_ = await task.shim.delete("")
        task.deleted = True
        async with self._lock:
            self._tasks.pop((namespace, id), None)
        with contextlib.suppress(Exception):
            await task.shim.shutdown()
        if task.forwarder is not None:
            task.forwarder.cancel()
        shutil.rmtree(task.bundle, ignore_errors=True)
        self._publish(
            namespace,
            "/tasks/delete",
            ev.TaskDelete(container_id=id, id=id, pid=exit_.pid, exit_status=exit_.status, exited_at=_ts(exit_)),
        )
        return exit_

    async def recover(self) -> None:
        """At start-up: reconnect to every bundle's shim, or clean up after the dead ones."""
        if not self.root.is_dir():
            return
        for ns_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for bundle in sorted(p for p in ns_dir.iterdir() if p.is_dir()):
                namespace, id = ns_dir.name, bundle.name
                try:
                    shim = await self._launcher.connect(bundle)
                except Exception as e:
                    log.warning("task %s/%s: shim gone (%s); cleaning up", namespace, id, e)
                    await self._clean_dead(namespace, id, bundle, str(self._runtime_root / namespace))
                    continue
                task = Task(namespace, id, bundle, shim, str(self._runtime_root / namespace))
                with contextlib.suppress(Exception):
                    task.pid = (await shim.state("")).pid
                self._tasks[(namespace, id)] = task
                task.forwarder = asyncio.create_task(self._forward(task))

    async def ended(self, task: Task, timeout: float = 30.0) -> Exit:
        """How a task whose shim was lost ended, once the cleanup after it is done.

        Raises Unavailable when the shim is not being cleaned up after (it is
        alive, or the cleanup failed) within ``timeout``.
        """
        try:
            return await asyncio.wait_for(asyncio.shield(task.ended), timeout)
        except TimeoutError:
            raise Unavailable(f"task {quote(task.id)}: its shim is unreachable") from None

    async def _clean_dead(self, namespace: str, id: str, bundle: Path, runtime_root: str) -> Exit | None:
        """What containerd does when a shim is gone: force-delete the container, report it killed and deleted."""
        try:
            exit_ = await self._launcher.cleanup(bundle, runtime_root)
        except Exception as e:
            log.error("task %s/%s: cleanup failed: %s", namespace, id, e)
            return None
        shutil.rmtree(bundle, ignore_errors=True)
        when = _ts(exit_)
        self._publish(
            namespace,
            "/tasks/exit",
            ev.TaskExit(container_id=id, id=id, pid=exit_.pid, exit_status=exit_.status, exited_at=when),
        )
        self._publish(
            namespace,
            "/tasks/delete",
            ev.TaskDelete(container_id=id, id=id, pid=exit_.pid, exit_status=exit_.status, exited_at=when),
        )
        return exit_

    async def startup(self) -> None:
        """The daemon's start-up hook: find the shims of the last run."""
        await self.recover()

    async def shutdown(self) -> None:
        """Stop forwarding; the shims keep running, to be found again by :meth:`recover`."""
        for task in self._tasks.values():
            if task.forwarder is not None:
                task.forwarder.cancel()

    # -- events ------------------------------------------------------------

    async def _forward(self, task: Task) -> None:
        try:
            async for e in task.shim.events():
                self._publish(task.namespace, e.topic, e.event)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if task.deleted:  # a deleted task's shim exits: its stream ends by design
                return
            log.warning("task %s/%s: lost its shim (%s); cleaning up", task.namespace, task.id, e)
            async with self._lock:
                if self._tasks.get((task.namespace, task.id)) is not task:
                    return
                del self._tasks[(task.namespace, task.id)]
            task.deleted = True
            exit_ = await self._clean_dead(task.namespace, task.id, task.bundle, task.runtime_root)
            if exit_ is None:
                task.ended.set_exception(Unavailable(f"task {quote(task.id)}: its shim died and cleanup failed"))
                task.ended.exception()  # retrieved: nobody may be waiting
            else:
                task.ended.set_result(exit_)

    def _publish(self, namespace: str, topic: str, event: Message) -> None:
        try:
            self._publisher.publish(namespace, topic, event)
        except Exception:
            log.exception("publishing %s", topic)


def _spec_of(container: Container) -> dict[str, Any]:
    spec = container.spec
    if spec is None or not spec.type_url.endswith(_SPEC_SUFFIX):
        raise InvalidArgument(f"container {quote(container.id)}: its spec is not an OCI runtime spec")
    try:
        value = json.loads(spec.value)
    except ValueError:
        raise InvalidArgument(f"container {quote(container.id)}: its spec is not valid JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("process"), dict):
        raise InvalidArgument(f"container {quote(container.id)}: its spec has no process")
    return value


def _ts(exit_: Exit) -> Timestamp:
    ts = Timestamp()
    if exit_.exited_at is not None:
        ts.FromDatetime(exit_.exited_at)
    return ts
