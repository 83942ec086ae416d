"""``docker exec``: more processes in a running container, each a containerd exec process of its task.

An exec is created (checked, recorded), then started once: attached — its
FIFOs copied to and from the hijacked connection — or detached with no
stdio.  Its exit code is recorded before the connection closes, so the
CLI's inspect right after the stream ends reads it.  Exec records live in
memory, as dockerd's do, and go with their container.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pycontainerd.errors import ContainerdError, InvalidArgument, NotFound
from pycontainerd.tasks import NO_IO, Exit

from .._errors import Conflict
from .._http import Hijacked
from ._config import _bool, _str, _strs
from ._frames import SYSTEMERR, encode_frame
from ._spec import exec_process
from ._stdio import EXIT_DRAIN, Fifos, OutputReader, StdinWriter, run_in_thread

if TYPE_CHECKING:
    from ._service import ContainerService

__all__ = ["ExecRecord", "ExecService"]


@dataclass
class ExecRecord:
    id: str
    container_id: str
    argv: list[str]
    tty: bool
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    env: list[str]
    user: str
    workdir: str
    detach_keys: str
    console_size: tuple[int, int] = (0, 0)
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def inspect(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": self.argv[0],
                "arguments": self.argv[1:],
                "privileged": False,
                "user": self.user,
            },
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        }


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.execs: dict[str, ExecRecord] = {}

    def get(self, id: str) -> ExecRecord:
        e = self.execs.get(id)
        if e is None:
            raise NotFound(f"No such exec instance: {id}")
        return e

    def create(self, ref: str, body: object) -> dict[str, str]:
        """``POST /containers/{id}/exec``: the exec's record; 409 unless the container runs."""
        if not isinstance(body, Mapping):
            raise InvalidArgument("exec config must be a JSON object")
        argv = _strs(body, "Cmd")
        if not argv:
            raise InvalidArgument("No exec command specified")
        size = body.get("ConsoleSize") or [0, 0]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
            raise InvalidArgument("ConsoleSize must be [height, width]")
        if _bool(body, "Privileged"):
            raise InvalidArgument("privileged exec is not supported")
        workdir = _str(body, "WorkingDir")
        if workdir and not workdir.startswith("/"):
            raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        record = self.containers.get(ref)
        record.state.check_running(record.id, "exec")
        e = ExecRecord(
            id=secrets.token_hex(32),
            container_id=record.id,
            argv=argv,
            tty=_bool(body, "Tty"),
            attach_stdin=_bool(body, "AttachStdin"),
            attach_stdout=_bool(body, "AttachStdout"),
            attach_stderr=_bool(body, "AttachStderr"),
            env=_strs(body, "Env") or [],
            user=_str(body, "User"),
            workdir=workdir,
            detach_keys=_str(body, "DetachKeys"),
            console_size=(size[0], size[1]),
        )
        self.execs[e.id] = e
        self.containers.slot(record).execs.add(e.id)
        self.containers.publish(record, "exec_create: " + " ".join(argv), execID=e.id)
        return {"Id": e.id}

    def inspect(self, id: str) -> dict[str, Any]:
        return self.get(id).inspect()

    async def resize(self, id: str, height: int, width: int) -> None:
        e = self.get(id)
        if not e.running:
            raise Conflict(f"Exec {id} is not running")
        await self.containers.call(
            lambda: self.containers.client.tasks.resize_pty(e.container_id, width, height, exec_id=e.id)
        )

    async def start(
        self, id: str, detach: bool, tty: bool | None, console_size: tuple[int, int]
    ) -> Callable[[Hijacked], Awaitable[None]] | None:
        """Start the exec: None when detached (it runs on), else the hijacked connection's handler."""
        e = self.get(id)
        if e.started:
            state = "is already running" if e.running else "has already run"
            raise Conflict(f"Error: Exec command {id} {state}")
        svc = self.containers
        record = svc.get(e.container_id)
        record.state.check_running(record.id, "exec")
        slot = svc.slot(record)
        if tty is not None:
            e.tty = tty
        rootfs = f"/proc/{record.state.pid}/root"
        process = await svc.call(
            lambda: exec_process(slot.spec, e.argv, env=e.env, tty=e.tty, user=e.user, cwd=e.workdir, rootfs=rootfs)
        )
        e.started = True
        fifos = None
        if not detach and (e.attach_stdout or e.attach_stderr or e.attach_stdin):
            fifos = Fifos(svc.store.dir(record.id) / "io", stdin=e.attach_stdin, terminal=e.tty)
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        stdin_fd = fifos.take("stdin") if fifos is not None else -1
        stdin = StdinWriter(stdin_fd) if stdin_fd >= 0 else None
        reader = OutputReader(fifos, lambda stream, data: queue.put_nowait((stream, data)))
        tasks = svc.client.tasks
        try:
            await svc.call(lambda: tasks.exec(record.id, e.id, process, fifos.io if fifos is not None else NO_IO))
            h, w = console_size if any(console_size) else e.console_size
            if e.tty and h and w:
                with contextlib.suppress(ContainerdError):
                    await svc.call(lambda: tasks.resize_pty(record.id, w, h, exec_id=e.id))
            e.pid = await svc.call(tasks.start, record.id, e.id)
        except ContainerdError as err:
            reader.close()
            if stdin is not None:
                stdin.close()
            if fifos is not None:
                fifos.close()
            with contextlib.suppress(ContainerdError):
                await svc.call(tasks.delete_process, record.id, e.id)
            e.exit_code, e.running = 126 if "permission" in err.message.lower() else 127, False
            e.done.set()
            if detach:
                raise
            message = err.message

            async def failed(conn: Hijacked) -> None:
                with contextlib.suppress(ConnectionError):
                    await conn.write(encode_frame(SYSTEMERR, message.encode()) if not e.tty else message.encode())

            return failed
        e.running = True
        svc.publish(record, "exec_start: " + " ".join(e.argv), execID=e.id)
        waited = run_in_thread(lambda: tasks.wait(record.id, e.id))

        async def finish() -> None:
            code = 255
            with contextlib.suppress(ContainerdError, asyncio.CancelledError):
                exit_: Exit = await waited
                code = exit_.status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader.done), EXIT_DRAIN)
            reader.close()
            if stdin is not None:
                stdin.close()
            with contextlib.suppress(ContainerdError):
                await svc.call(tasks.delete_process, record.id, e.id)
            if fifos is not None:
                fifos.close()
            e.exit_code, e.running = code, False
            svc.slot(record).execs.discard(e.id)
            svc.publish(record, "exec_die", execID=e.id, exitCode=str(code))
            queue.put_nowait(None)
            e.done.set()

        finishing = asyncio.ensure_future(finish())
        if detach:
            return None

        async def run(conn: Hijacked) -> None:
            async def feed() -> None:
                if stdin is None:
                    return
                while data := await conn.read():
                    await stdin.write(data)
                stdin.close()
                with contextlib.suppress(ContainerdError):
                    await svc.call(lambda: tasks.close_io(record.id, e.id))

            feeder = asyncio.ensure_future(feed())
            try:
                while (item := await queue.get()) is not None:
                    stream, data = item
                    if (stream == 1 and e.attach_stdout) or (stream == 2 and e.attach_stderr):
                        await conn.write(data if e.tty else encode_frame(stream, data))
                await asyncio.shield(finishing)
                conn.close_write()
            except ConnectionError:
                pass
            finally:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feeder

        return run

    def forget_container(self, container_id: str) -> None:
        for id in [i for i, e in self.execs.items() if e.container_id == container_id]:
            del self.execs[id]
