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
from ._frames import STDOUT, encode_frame
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


class _Launched:
    """A started exec's stdio on pydockerd's side: FIFOs, the output queue, the stdin writer."""

    def __init__(self, fifos: Fifos | None) -> None:
        self.fifos = fifos
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        stdin_fd = fifos.take("stdin") if fifos is not None else -1
        self.stdin = StdinWriter(stdin_fd) if stdin_fd >= 0 else None
        self.reader = OutputReader(fifos, lambda stream, data: self.queue.put_nowait((stream, data)))
        self.finishing: asyncio.Future[None] | None = None

    def close(self) -> None:
        self.reader.close()
        if self.stdin is not None:
            self.stdin.close()
        if self.fifos is not None:
            self.fifos.close()


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
        spec = await svc.spec(record)
        framed = not (e.tty if tty is None else tty)  # the start's Tty says how output is sent, not the process's
        rootfs = f"/proc/{record.state.pid}/root"
        process = await svc.call(
            lambda: exec_process(spec, e.argv, env=e.env, tty=e.tty, user=e.user, cwd=e.workdir, rootfs=rootfs)
        )
        e.started = True
        if detach:
            launched = await self._launch(e, record.id, process, detach=True, console_size=console_size)
            if isinstance(launched, str):
                raise ContainerdError(launched)
            return None

        async def run(conn: Hijacked) -> None:
            """Started only now, after the head went out, so no output can arrive with it (as dockerd)."""
            launched = await self._launch(e, record.id, process, detach=False, console_size=console_size)
            try:
                if isinstance(launched, str):
                    prefix = "" if launched.startswith("OCI runtime") else "OCI runtime exec failed: "
                    text = f"{prefix}{launched}\r\n".encode()
                    await conn.write(encode_frame(STDOUT, text) if framed else text)
                    return
                await self._pump(e, record.id, launched, conn, framed)
            except ConnectionError:
                pass

        return run

    async def _launch(
        self, e: ExecRecord, container_id: str, process: dict[str, Any], *, detach: bool, console_size: tuple[int, int]
    ) -> _Launched | str:
        """Create and start the exec's process; the runtime's refusal as a message (its exit code recorded)."""
        svc = self.containers
        fifos = None
        if not detach and (e.attach_stdout or e.attach_stderr or e.attach_stdin):
            fifos = Fifos(svc.store.dir(container_id) / "io", stdin=e.attach_stdin, terminal=e.tty)
        launched = _Launched(fifos)
        tasks = svc.client.tasks
        try:
            await svc.call(lambda: tasks.exec(container_id, e.id, process, fifos.io if fifos is not None else NO_IO))
            h, w = console_size if any(console_size) else e.console_size
            if e.tty and h and w:
                with contextlib.suppress(ContainerdError):
                    await svc.call(lambda: tasks.resize_pty(container_id, w, h, exec_id=e.id))
            e.pid = await svc.call(tasks.start, container_id, e.id)
        except ContainerdError as err:
            launched.close()
            with contextlib.suppress(ContainerdError):
                await svc.call(tasks.delete_process, container_id, e.id)
            e.exit_code, e.running = 126 if "permission" in err.message.lower() else 127, False
            e.done.set()
            return err.message
        e.running = True
        record = svc.get(container_id)
        svc.publish(record, "exec_start: " + " ".join(e.argv), execID=e.id)
        waited = run_in_thread(lambda: tasks.wait(container_id, e.id))

        async def finish() -> None:
            code = 255
            with contextlib.suppress(ContainerdError, asyncio.CancelledError):
                exit_: Exit = await waited
                code = exit_.status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(launched.reader.done), EXIT_DRAIN)
            launched.close()
            with contextlib.suppress(ContainerdError):
                await svc.call(tasks.delete_process, container_id, e.id)
            e.exit_code, e.running = code, False
            svc.slot(record).execs.discard(e.id)
            svc.publish(record, "exec_die", execID=e.id, exitCode=str(code))
            launched.queue.put_nowait(None)
            e.done.set()

        launched.finishing = asyncio.ensure_future(finish())  # kept by launched
        return launched

    async def _pump(self, e: ExecRecord, container_id: str, launched: _Launched, conn: Hijacked, framed: bool) -> None:
        """Output to the connection until the process ended; the client's bytes to its stdin meanwhile."""
        svc = self.containers
        stdin = launched.stdin

        async def feed() -> None:
            if stdin is None:
                return
            while data := await conn.read():
                await stdin.write(data)
            stdin.close()
            with contextlib.suppress(ContainerdError):
                await svc.call(lambda: svc.client.tasks.close_io(container_id, e.id))

        feeder = asyncio.ensure_future(feed())
        try:
            while (item := await launched.queue.get()) is not None:
                stream, data = item
                if (stream == STDOUT and e.attach_stdout) or (stream != STDOUT and e.attach_stderr):
                    await conn.write(encode_frame(stream, data) if framed else data)
            if launched.finishing is not None:
                await asyncio.shield(launched.finishing)
            conn.close_write()
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder

    def forget_container(self, container_id: str) -> None:
        for id in [i for i, e in self.execs.items() if e.container_id == container_id]:
            del self.execs[id]
