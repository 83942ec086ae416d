"""Tasks over gRPC: create, start, signal, wait for and delete a container's processes."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import any_pb2

from ..api.convert import any_to_pb, mount_to_pb, time_or_none
from ..api.runtime.runc.options import oci_pb2 as runc_pb
from ..api.services.tasks.v1 import tasks_pb2 as pb
from ..api.services.tasks.v1 import tasks_pb2_grpc
from ..api.types.task import task_pb2
from ..containers import TypedValue
from ..mount import Mount
from ..tasks import IO, NO_IO, Exit, Process, Status
from ._rpc import Connection

__all__ = ["PROCESS_TYPE_URL", "RESOURCES_TYPE_URL", "TaskService", "process_from_pb"]

PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"


def process_from_pb(m: task_pb2.Process) -> Process:
    return Process(
        container_id=m.container_id,
        id=m.id,
        pid=m.pid,
        status=Status(m.status) if m.status in Status._value2member_map_ else Status.UNKNOWN,
        io=IO(m.stdin, m.stdout, m.stderr, m.terminal),
        exit_status=m.exit_status,
        exited_at=time_or_none(m.exited_at),
    )


def _json_any(url: str, value: Mapping[str, Any]) -> any_pb2.Any:
    return any_pb2.Any(type_url=url, value=json.dumps(value, separators=(",", ":")).encode())


class TaskService:
    """The tasks of one namespace of a remote daemon (containerd's Tasks service)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(tasks_pb2_grpc.TasksStub)

    def create(
        self,
        container_id: str,
        *,
        rootfs: Sequence[Mount] = (),
        io: IO = NO_IO,
        options: TypedValue | None = None,
        runtime_path: str = "",
    ) -> int:
        """Create the task (its init process, not yet started); returns the init's pid."""
        req = pb.CreateTaskRequest(
            container_id=container_id,
            rootfs=[mount_to_pb(m) for m in rootfs],
            stdin=io.stdin,
            stdout=io.stdout,
            stderr=io.stderr,
            terminal=io.terminal,
            runtime_path=runtime_path,
        )
        if options is not None:
            req.options.CopyFrom(any_to_pb(options))
        return int(self._conn.unary(self._stub.Create, req).pid)

    def start(self, container_id: str, exec_id: str = "") -> int:
        return int(self._conn.unary(self._stub.Start, pb.StartRequest(container_id=container_id, exec_id=exec_id)).pid)

    def wait(self, container_id: str, exec_id: str = "") -> Exit:
        """Block until the process exits (no deadline); its exit status and time."""
        resp = self._conn.unary(
            self._stub.Wait, pb.WaitRequest(container_id=container_id, exec_id=exec_id), endless=True
        )
        return Exit(resp.exit_status, time_or_none(resp.exited_at))

    def kill(self, container_id: str, signal: int, *, exec_id: str = "", all: bool = False) -> None:
        req = pb.KillRequest(container_id=container_id, exec_id=exec_id, signal=signal, all=all)
        self._conn.unary(self._stub.Kill, req)

    def delete(self, container_id: str) -> Exit:
        """Delete a stopped (or never started) task; FailedPrecondition while it runs."""
        resp = self._conn.unary(self._stub.Delete, pb.DeleteTaskRequest(container_id=container_id))
        return Exit(resp.exit_status, time_or_none(resp.exited_at), resp.pid)

    def delete_process(self, container_id: str, exec_id: str) -> Exit:
        req = pb.DeleteProcessRequest(container_id=container_id, exec_id=exec_id)
        resp = self._conn.unary(self._stub.DeleteProcess, req)
        return Exit(resp.exit_status, time_or_none(resp.exited_at), resp.pid)

    def get(self, container_id: str, exec_id: str = "") -> Process:
        resp = self._conn.unary(self._stub.Get, pb.GetRequest(container_id=container_id, exec_id=exec_id))
        return process_from_pb(resp.process)

    def list(self) -> builtins.list[Process]:
        return [process_from_pb(p) for p in self._conn.unary(self._stub.List, pb.ListTasksRequest()).tasks]

    def exec(self, container_id: str, exec_id: str, process: Mapping[str, Any], io: IO = NO_IO) -> None:
        """Add process ``exec_id`` (an OCI Process object) to the task; start it with :meth:`start`."""
        req = pb.ExecProcessRequest(
            container_id=container_id,
            exec_id=exec_id,
            stdin=io.stdin,
            stdout=io.stdout,
            stderr=io.stderr,
            terminal=io.terminal,
            spec=_json_any(PROCESS_TYPE_URL, process),
        )
        self._conn.unary(self._stub.Exec, req)

    def pids(self, container_id: str) -> builtins.list[tuple[int, str]]:
        """The container's processes: (pid, exec id or "" for processes the runtime did not start)."""
        resp = self._conn.unary(self._stub.ListPids, pb.ListPidsRequest(container_id=container_id))
        out: builtins.list[tuple[int, str]] = []
        for p in resp.processes:
            exec_id = ""
            if p.HasField("info") and p.info.type_url.endswith("containerd.runc.v1.ProcessDetails"):
                details = runc_pb.ProcessDetails()
                details.ParseFromString(p.info.value)
                exec_id = details.exec_id
            out.append((p.pid, exec_id))
        return out

    def pause(self, container_id: str) -> None:
        self._conn.unary(self._stub.Pause, pb.PauseTaskRequest(container_id=container_id))

    def resume(self, container_id: str) -> None:
        self._conn.unary(self._stub.Resume, pb.ResumeTaskRequest(container_id=container_id))

    def close_io(self, container_id: str, exec_id: str = "", *, stdin: bool = True) -> None:
        req = pb.CloseIORequest(container_id=container_id, exec_id=exec_id, stdin=stdin)
        self._conn.unary(self._stub.CloseIO, req)

    def resize_pty(self, container_id: str, width: int, height: int, exec_id: str = "") -> None:
        req = pb.ResizePtyRequest(container_id=container_id, exec_id=exec_id, width=width, height=height)
        self._conn.unary(self._stub.ResizePty, req)

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Change the task's cgroup limits (an OCI LinuxResources object)."""
        req = pb.UpdateTaskRequest(container_id=container_id, resources=_json_any(RESOURCES_TYPE_URL, resources))
        self._conn.unary(self._stub.Update, req)

    def metrics(self, container_ids: Sequence[str] = ()) -> builtins.list[tuple[str, any_pb2.Any]]:
        """(container id, cgroup statistics as the runtime's protobuf Any) per task."""
        filters = [f"id=={c}" for c in container_ids]
        resp = self._conn.unary(self._stub.Metrics, pb.MetricsRequest(filters=filters))
        return [(m.id, m.data) for m in resp.metrics]
