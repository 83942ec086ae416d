"""Docker containers over containerd: create, start, stop, kill, pause, wait, remove — and their exits.

Each Docker container is a containerd container record (spec, snapshot,
runtime ``io.containerd.runc.v2``) in pydockerd's namespace plus a
:class:`~._store.Record` under the data root.  A start creates the task
with FIFOs pydockerd reads (see _stdio) and a thread that waits for its
exit; the exit is handled on the loop: output drained into the log, the
task deleted, the state saved, ``die`` published, waiters answered, an
auto-remove container removed.

The service lives on the event loop: records change only there, so no
locks; containerd calls (blocking gRPC) run in worker threads, and each
task's endless Wait in a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from pycontainerd import oci
from pycontainerd.client import Client
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.errors import ContainerdError, InvalidArgument, NotFound
from pycontainerd.images.identity import chain_id
from pycontainerd.mount import mounted
from pycontainerd.tasks import Exit, Status

from .._errors import Conflict
from .._events import EventLog
from .._images import ImageService, ImageView
from ._config import argv_of, check_config, check_host_config, merge_image_config, parse_host_config, valid_name
from ._exec import ExecService
from ._jsonlog import LogFile
from ._slot import Run, Slot
from ._spec import ETC_FILES, build_spec, etc_files, network_warning
from ._state import NotModified
from ._stdio import EXIT_DRAIN, Broadcast, Fifos, OutputReader, StdinWriter, run_in_thread
from ._store import Record, Store, new_id

__all__ = ["RUNTIME", "ContainerService", "make_dirs_in", "parse_signal"]

log = logging.getLogger("pydockerd")
T = TypeVar("T")

RUNTIME = "io.containerd.runc.v2"
DEFAULT_STOP_TIMEOUT = 10


class ContainerService:
    """Docker's container operations over one namespace of a containerd."""

    def __init__(
        self,
        client: Client,
        images: ImageService,
        events: EventLog,
        root: Path,
        *,
        snapshotter: str = "",
    ) -> None:
        self.client = client
        self.images = images
        self.events = events
        self.root = root
        self.store = Store(root)
        self._snapshotter = snapshotter
        self.slots: dict[str, Slot] = {}
        self.ncpu = os.cpu_count() or 1
        self.started_up = False
        self.execs = ExecService(self)
        self._background: set[asyncio.Future[None]] = set()

    # -- helpers ------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def get(self, ref: str) -> Record:
        return self.store.get(ref)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on its own, kept referenced until it ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def slot(self, record: Record) -> Slot:
        slot = self.slots.get(record.id)
        if slot is None:
            slot = self.slots[record.id] = Slot(LogFile(self.log_path(record.id)))
        return slot

    async def spec(self, record: Record) -> dict[str, Any]:
        """The container's OCI spec (kept once read: it does not change)."""
        slot = self.slot(record)
        if not slot.spec:
            c = await self.call(self.client.containers.get, record.id)
            slot.spec = oci.spec_from_json(c.spec.value) if c.spec is not None else {}
        return slot.spec

    def log_path(self, id: str) -> Path:
        return self.store.dir(id) / f"{id}-json.log"

    def paths(self, record: Record) -> dict[str, str]:
        d = self.store.dir(record.id)
        return {**{name: str(d / "etc" / name) for name in ETC_FILES}, "log": str(self.log_path(record.id))}

    def publish(self, record: Record, action: str, **extra: str) -> None:
        self.events.publish("container", action, record.id, record.event_attributes(**extra))

    def users_of(self, image_id: str) -> list[str]:
        """Ids of the containers made from image ``image_id`` (for image removal's 409); any thread may call."""
        return [r.id for r in list(self.store) if r.image_id == image_id]

    def counts(self) -> tuple[int, int, int, int]:
        """(all, running, paused, stopped), for /info."""
        records = list(self.store)
        running = sum(r.state.status == "running" for r in records)
        paused = sum(r.state.status == "paused" for r in records)
        return len(records), running, paused, len(records) - running - paused

    # -- start-up and shutdown ----------------------------------------------

    async def start_up(self) -> None:
        """Read the records back and catch up with containerd: tasks that ended meanwhile, tasks still running."""
        for record in self.store.load():
            slot = self.slot(record)
            if not record.state.running:
                continue
            try:
                task = await self.call(self.client.tasks.get, record.id)
            except NotFound:
                task = None
            if task is None or task.status in (Status.STOPPED, Status.UNKNOWN):
                code = 255
                if task is not None:
                    with contextlib.suppress(ContainerdError):
                        code = (await self.call(self.client.tasks.delete, record.id)).status
                record.state.exited(code, time.time_ns())
                self.store.save(record)
                continue
            if task.status is Status.PAUSED:
                record.state.status = "paused"
            fifos_dir = Path(task.io.stdout).parent if task.io.stdout else None
            found = fifos_dir is not None and fifos_dir.is_dir()
            fifos = Fifos.existing(fifos_dir, task.io.terminal) if fifos_dir is not None and found else None
            await self._adopt(record, slot, fifos)
        self.started_up = True

    async def shut_down(self) -> None:
        """Stop reading output; containers keep running and are adopted again at the next start."""
        for slot in self.slots.values():
            if slot.run is not None:
                slot.run.reader.close()
                if slot.run.stdin is not None:
                    slot.run.stdin.close()
            slot.output.close()
            slot.lines.close()

    # -- create -------------------------------------------------------------

    async def create(self, body: Any, name: str) -> dict[str, Any]:
        """``POST /containers/create``: the containerd record with its snapshot and spec, and Docker's record."""
        if body is None:
            raise InvalidArgument("Config cannot be empty in order to create a container")
        config = check_config(body)
        host_config = check_host_config(body.get("HostConfig") if isinstance(body, dict) else None, self.ncpu)
        settings = parse_host_config(host_config, self.ncpu)
        id = new_id()
        name = valid_name(name) if name else self.store.generate_name()
        self.store.reserve_name(name, id)  # before any await: a second create of the name is refused now
        try:
            view, _, _ = await self.call(self.images.resolve, config["Image"])
            inner = view.resolved.config.get("config")
            merged = merge_image_config(config, inner if isinstance(inner, dict) else {})
            argv_of(merged)
            hostname = config["Hostname"] or id[:12]
            if settings.network_mode == "host" and not config["Hostname"]:
                hostname = os.uname().nodename
            merged["Hostname"] = hostname
            record = Record(
                id=id,
                name=name,
                created_ns=time.time_ns(),
                image=config["Image"],
                image_id=view.id,
                image_record=view.record.name,
                config=merged,
                host_config=host_config,
                snapshotter=self._snapshotter or self.client.default_snapshotter(),
                warnings=network_warning(settings),
            )
            d = self.store.dir(id)
            (d / "etc").mkdir(parents=True, mode=0o755)
            for fname, text in etc_files(
                hostname, settings.network_mode == "host", _read("/etc/hosts"), _read("/etc/resolv.conf")
            ).items():
                (d / "etc" / fname).write_text(text)
            for m in settings.mounts:
                if m.type == "bind" and not os.path.exists(m.source):
                    if not m.create_source:
                        raise InvalidArgument(
                            f'invalid mount config for type "bind": bind source path does not exist: {m.source}'
                        )
                    os.makedirs(m.source, 0o755, exist_ok=True)  # as dockerd does for -v
            await self.call(self._make_container, record, view, settings)
            self.store.add(record)
        except BaseException:
            self.store.release_name(name, id)
            self.store.remove_dir(id)
            raise
        self.slot(record)
        self.publish(record, "create")
        return {"Id": id, "Warnings": record.warnings}

    def _make_container(self, record: Record, view: ImageView, settings: Any) -> None:
        """The snapshot (on the image's top layer, unpacked if need be) and the containerd record; a thread."""
        snapshotter = record.snapshotter
        rootfs_ids = view.resolved.config.get("rootfs")
        diff_ids = rootfs_ids.get("diff_ids") if isinstance(rootfs_ids, dict) else None
        parent = chain_id([str(d) for d in diff_ids]) if isinstance(diff_ids, list) else ""
        try:
            if parent:
                self.client.snapshotter(snapshotter).stat(parent)
        except NotFound:
            parent = self.client.unpack(view.record, platform=view.resolved.platform, snapshotter=snapshotter).chain_id
        with self.client.lease() as leased:
            sn = leased.snapshotter(snapshotter)
            mounts = sn.prepare(record.id, parent)
            try:
                with mounted(mounts) as rootfs:
                    workdir = str(record.config.get("WorkingDir") or "")
                    if workdir:
                        make_dirs_in(str(rootfs), workdir)
                    spec = build_spec(
                        self.client.namespace,
                        record.id,
                        record.config,
                        settings,
                        rootfs=str(rootfs),
                        hostname=str(record.config["Hostname"]),
                        etc_dir=str(self.store.dir(record.id) / "etc"),
                    )
                stop = record.config.get("StopSignal") or "SIGTERM"
                labels = {**record.config.get("Labels", {}), oci.STOP_SIGNAL_LABEL: stop}
                leased.containers.create(
                    Container(
                        id=record.id,
                        runtime=RuntimeInfo(RUNTIME),
                        spec=TypedValue(oci.SPEC_TYPE_URL, oci.spec_to_json(spec)),
                        labels=labels,
                        image=view.record.name,
                        snapshotter=snapshotter,
                        snapshot_key=record.id,
                    )
                )
            except BaseException:
                with contextlib.suppress(ContainerdError):
                    sn.remove(record.id)
                raise

    # -- start and exit -----------------------------------------------------

    async def start(self, ref: str) -> None:
        record = self.get(ref)
        slot = self.slot(record)
        if slot.removing:
            raise Conflict(f"container {record.id} is marked for removal and cannot be started")
        record.state.check_start(record.name)
        if slot.run is not None:  # exited, its exit still being handled
            await asyncio.shield(slot.run.exit)
        settings = parse_host_config(record.host_config, self.ncpu)
        tty = bool(record.config.get("Tty"))
        fifos = Fifos(self.store.dir(record.id) / "io", stdin=bool(record.config.get("OpenStdin")), terminal=tty)
        try:
            c = await self.call(self.client.containers.get, record.id)
            slot.spec = oci.spec_from_json(c.spec.value) if c.spec is not None else {}
            mounts = await self.call(self.client.snapshotter(c.snapshotter).mounts, c.snapshot_key)
            await self.call(lambda: self.client.tasks.create(record.id, rootfs=mounts, io=fifos.io))
        except ContainerdError as e:
            fifos.close()
            raise self._start_error(record, e) from None
        except BaseException:
            fifos.close()
            raise
        try:
            h, w = settings.console_size
            if tty and h and w:
                with contextlib.suppress(ContainerdError):
                    await self.call(lambda: self.client.tasks.resize_pty(record.id, w, h))
            pid = await self.call(self.client.tasks.start, record.id)
        except ContainerdError as e:
            with contextlib.suppress(ContainerdError):
                await self.call(self.client.tasks.delete, record.id)
            fifos.close()
            raise self._start_error(record, e) from None
        record.state.started(pid, time.time_ns())
        self.store.save(record)
        await self._adopt(record, slot, fifos)
        self.publish(record, "start")

    def _start_error(self, record: Record, e: ContainerdError) -> ContainerdError:
        """The runtime's refusal, recorded in the state as dockerd does (exit 127 for a missing program)."""
        text = e.message
        lowered = text.lower()
        code = 128
        if "not found" in lowered or "no such file" in lowered:
            code = 127
        elif "permission denied" in lowered:
            code = 126
        record.state.start_failed(text, code, time.time_ns())
        self.store.save(record)
        slot = self.slot(record)
        for fut in slot.exit_waiters:
            if not fut.done():
                fut.set_result(code)
        slot.exit_waiters = []
        slot.output.close()  # attachers waiting for this start are done
        slot.lines.close()
        slot.output, slot.lines = Broadcast(), Broadcast()
        if record.host_config.get("AutoRemove"):
            self.spawn(self._remove_quietly(record.id))
        if code != 128:
            return InvalidArgument(f"failed to create task for container: {text}")
        return e

    async def _adopt(self, record: Record, slot: Slot, fifos: Fifos | None) -> None:
        """Read a started task's output and wait for its exit."""
        stdin_fd = fifos.take("stdin") if fifos is not None else -1
        run = Run(fifos, OutputReader(fifos, slot.write), StdinWriter(stdin_fd) if stdin_fd >= 0 else None)
        slot.run = run
        slot.started.set()
        waited = run_in_thread(lambda: self.client.tasks.wait(record.id))
        waited.add_done_callback(lambda f: self.spawn(self._exited(record, slot, run, f)))

    async def _exited(self, record: Record, slot: Slot, run: Run, waited: asyncio.Future[Exit]) -> None:
        try:
            code = waited.result().status
        except NotFound:
            code = 255
        except ContainerdError as e:
            log.warning("container %s: waiting for its task: %s", record.short_id, e)
            code = 255
        except asyncio.CancelledError:
            return
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.reader.done), EXIT_DRAIN)
            run.reader.close()
            slot.flush()
            if run.stdin is not None:
                run.stdin.close()
            with contextlib.suppress(ContainerdError):
                await self.call(self.client.tasks.delete, record.id)
            if run.fifos is not None:
                run.fifos.close()
            slot.output.close()
            slot.lines.close()
            slot.output, slot.lines = Broadcast(), Broadcast()  # for whoever attaches before the next start
            slot.started.clear()
            record.state.exited(code, time.time_ns())
            slot.run = None
            if self.store.find(record.id) is not None:
                self.store.save(record)
            self.publish(record, "die", exitCode=str(code))
            for fut in slot.exit_waiters:
                if not fut.done():
                    fut.set_result(code)
            slot.exit_waiters = []
        finally:
            if not run.exit.done():
                run.exit.set_result(code)
        if record.host_config.get("AutoRemove") and not slot.removing:
            await self._remove_quietly(record.id)

    # -- wait ---------------------------------------------------------------

    async def wait(self, ref: str, condition: str) -> int:
        """The exit code once ``condition`` holds: not-running (now if not running), next-exit, removed."""
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        record = self.get(ref)
        slot = self.slot(record)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        if condition == "removed":
            slot.remove_waiters.append(fut)
        elif condition in ("", "not-running") and not record.state.running and slot.run is None:
            return record.state.exit_code
        else:
            slot.exit_waiters.append(fut)
        return await fut

    # -- signals ------------------------------------------------------------

    async def kill(self, ref: str, sig: str = "") -> None:
        record = self.get(ref)
        signum = parse_signal(sig) if sig else signal.SIGKILL
        if not record.state.running:
            raise Conflict(f"cannot kill container: {ref}: container {record.id} is not running")
        await self._signal(record, signum)

    async def _signal(self, record: Record, signum: int) -> None:
        try:
            await self.call(lambda: self.client.tasks.kill(record.id, signum))
        except NotFound:
            raise Conflict(f"cannot kill container: {record.id}: container is not running") from None
        self.publish(record, "kill", signal=str(signum))
        if record.state.status == "paused" and signum != signal.SIGKILL:
            with contextlib.suppress(ContainerdError):
                await self.call(self.client.tasks.resume, record.id)

    async def stop(self, ref: str, sig: str = "", timeout: int | None = None) -> None:
        """The stop signal, then SIGKILL once ``timeout`` seconds passed (negative: wait for ever)."""
        record = self.get(ref)
        slot = self.slot(record)
        if not record.state.running or slot.run is None:
            raise NotModified(f"container {ref} is already stopped")
        await self._stop(record, slot, sig, timeout)
        self.publish(record, "stop")

    async def _stop(self, record: Record, slot: Slot, sig: str, timeout: int | None) -> None:
        run = slot.run
        if run is None:
            return
        signum = parse_signal(sig or str(record.config.get("StopSignal") or "") or "SIGTERM")
        if timeout is None:
            stored = record.config.get("StopTimeout")
            timeout = stored if isinstance(stored, int) else DEFAULT_STOP_TIMEOUT
        run.stopping = True
        with contextlib.suppress(Conflict):
            await self._signal(record, signum)
        try:
            await asyncio.wait_for(asyncio.shield(run.exit), None if timeout < 0 else timeout)
            return
        except TimeoutError:
            pass
        with contextlib.suppress(Conflict):
            await self._signal(record, signal.SIGKILL)
        await asyncio.shield(run.exit)

    async def restart(self, ref: str, sig: str = "", timeout: int | None = None) -> None:
        record = self.get(ref)
        slot = self.slot(record)
        if record.state.running and slot.run is not None:
            await self._stop(record, slot, sig, timeout)
        await self.start(record.id)
        self.publish(record, "restart")

    async def pause(self, ref: str) -> None:
        record = self.get(ref)
        record.state.check_pause(record.id)
        await self.call(self.client.tasks.pause, record.id)
        record.state.status = "paused"
        self.store.save(record)
        self.publish(record, "pause")

    async def unpause(self, ref: str) -> None:
        record = self.get(ref)
        record.state.check_unpause(record.id)
        await self.call(self.client.tasks.resume, record.id)
        record.state.status = "running"
        self.store.save(record)
        self.publish(record, "unpause")

    # -- remove and rename --------------------------------------------------

    async def remove(self, ref: str, force: bool) -> None:
        """``DELETE /containers/{id}``: a running container only with ``force`` (killed first)."""
        record = self.get(ref)
        slot = self.slot(record)
        if slot.removing:
            raise Conflict(f"removal of container {record.short_id} is already in progress")
        if record.state.running and not force:
            raise Conflict(
                f'cannot remove container "{record.name}": container is running: '
                "stop the container before removing or force remove"
            )
        slot.removing = True
        try:
            run = slot.run
            if run is not None:
                if record.state.running:
                    with contextlib.suppress(Conflict, ContainerdError):
                        await self._signal(record, signal.SIGKILL)
                await asyncio.shield(run.exit)
            record.state.status = "removing"
            await self.call(self._delete_container, record)
        except BaseException:
            slot.removing = False
            if record.state.status == "removing":
                record.state.status = "exited"
            raise
        self.store.remove(record)
        self.slots.pop(record.id, None)
        self.execs.forget_container(record.id)
        slot.output.close()
        slot.lines.close()
        self.publish(record, "destroy")
        for fut in slot.remove_waiters + slot.exit_waiters:
            if not fut.done():
                fut.set_result(record.state.exit_code)

    async def _remove_quietly(self, id: str) -> None:
        try:
            await self.remove(id, force=True)
        except ContainerdError as e:
            log.warning("container %s: auto-remove: %s", id[:12], e)

    def _delete_container(self, record: Record) -> None:
        with contextlib.suppress(NotFound):
            task = self.client.tasks.get(record.id)
            if task.status not in (Status.STOPPED,):
                self.client.tasks.kill(record.id, signal.SIGKILL, all=True)
                self.client.tasks.wait(record.id)
            self.client.tasks.delete(record.id)
        with contextlib.suppress(NotFound):
            c = self.client.containers.get(record.id)
            self.client.containers.delete(record.id)
            with contextlib.suppress(NotFound):
                if c.snapshot_key:
                    self.client.snapshotter(c.snapshotter).remove(c.snapshot_key)

    async def rename(self, ref: str, new_name: str) -> None:
        record = self.get(ref)
        if not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        name = valid_name(new_name)
        if name == record.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        old = record.name
        self.store.reserve_name(name, record.id)
        record.name = name
        try:
            self.store.save(record)
        except BaseException:
            record.name = old
            self.store.release_name(name, record.id)
            raise
        self.store.release_name(old, record.id)
        self.publish(record, "rename", oldName=old)

    async def resize(self, ref: str, height: int, width: int) -> None:
        record = self.get(ref)
        if not record.state.running:
            raise Conflict(f"Container {record.id} is not running")
        await self.call(lambda: self.client.tasks.resize_pty(record.id, width, height))

    def remove_size(self, record: Record) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): the container's snapshot usage, and with the image's; a thread."""
        rw = 0
        with contextlib.suppress(ContainerdError):
            rw = self.client.snapshotter(record.snapshotter).usage(record.id).size
        image = 0
        with contextlib.suppress(ContainerdError):
            view, _, _ = self.images.resolve(record.image_id)
            image = view.resolved.size
        return rw, rw + image


def parse_signal(text: str) -> int:
    try:
        return oci.parse_signal(text)
    except InvalidArgument:
        raise InvalidArgument(f"Invalid signal: {text}") from None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read(1 << 20)
    except OSError:
        return ""


def make_dirs_in(root: str, path: str) -> None:
    """``mkdir -p`` of ``path`` inside ``root`` without following any symlink (the image is not trusted)."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in [p for p in path.split("/") if p and p != "."]:
            if part == "..":
                return
            try:
                new = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                new = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                return  # a symlink or a file: the runtime reports it, not us
            os.close(fd)
            fd = new
    finally:
        os.close(fd)
