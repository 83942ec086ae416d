"""The Tasks gRPC service: containerd.services.tasks.v1 over the task manager and its shims."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp

from .. import filters
from ..api import typeurl
from ..api.convert import any_from_pb, mount_from_pb, timestamp
from ..api.runtime.runc.options import oci_pb2 as runc_pb
from ..api.services.tasks.v1 import tasks_pb2 as pb
from ..api.services.tasks.v1 import tasks_pb2_grpc as pb_grpc
from ..api.types import metrics_pb2
from ..api.types.task import task_pb2
from ..errors import InvalidArgument, NotFound, Unavailable, quote
from ..metadata import DB
from ..tasks import IO, Exit, Process
from ..tasks.manager import Task, TaskManager
from .rpc import guarded, namespace_of, offload

__all__ = ["TasksService"]

log = logging.getLogger("pycontainerd.tasks")

STATE_TIMEOUT = 2.0
"""Seconds List waits for one shim's answer, as containerd's ``io.containerd.timeout.task.state``."""

_PROCESS_SUFFIX = "/opencontainers/runtime-spec/1/Process"
_RESOURCES_SUFFIX = "/opencontainers/runtime-spec/1/LinuxResources"


def _process_pb(p: Process) -> task_pb2.Process:
    return task_pb2.Process(
        container_id=p.container_id,
        id=p.id,
        pid=p.pid,
        status=int(p.status),  # type: ignore[arg-type]
        stdin=p.io.stdin,
        stdout=p.io.stdout,
        stderr=p.io.stderr,
        terminal=p.io.terminal,
        exit_status=p.exit_status,
        exited_at=timestamp(p.exited_at),
    )


def _json_of(value: any_pb2.Any, suffix: str, what: str) -> dict[str, Any]:
    if not value.type_url.endswith(suffix):
        raise InvalidArgument(f"{what}: expected a {suffix.rsplit('/', 1)[-1]}, got {value.type_url or 'nothing'}")
    try:
        out = json.loads(value.value)
    except ValueError:
        raise InvalidArgument(f"{what}: not valid JSON") from None
    if not isinstance(out, dict):
        raise InvalidArgument(f"{what}: not a JSON object")
    return out


def _id_adaptor(id: str) -> filters.Adaptor:
    def get(path: Sequence[str]) -> str | None:
        return id if list(path) == ["id"] else None

    return get


def _exit_ts(e: Exit) -> Timestamp | None:
    return timestamp(e.exited_at)


class TasksService(pb_grpc.TasksServicer):
    def __init__(self, db: DB, manager: TaskManager) -> None:
        self._db = db
        self._tasks = manager

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_TasksServicer_to_server(guarded(self), server)

    def _task(self, context: grpc.aio.ServicerContext, container_id: str) -> Task:
        return self._tasks.get(namespace_of(context), container_id)

    async def Create(self, request: pb.CreateTaskRequest, context: grpc.aio.ServicerContext) -> pb.CreateTaskResponse:
        namespace = namespace_of(context)
        if request.HasField("checkpoint"):
            raise InvalidArgument("creating a task from a checkpoint is not supported")
        try:
            container = await offload(self._db.containers(namespace).get, request.container_id)
        except NotFound:
            raise NotFound(f"container {quote(request.container_id)}: not found") from None
        io = IO(request.stdin, request.stdout, request.stderr, request.terminal)
        options = any_from_pb(request.options) if request.HasField("options") else None
        task = await self._tasks.create(container, namespace, [mount_from_pb(m) for m in request.rootfs], io, options)
        return pb.CreateTaskResponse(container_id=task.id, pid=task.pid)

    async def Start(self, request: pb.StartRequest, context: grpc.aio.ServicerContext) -> pb.StartResponse:
        task = self._task(context, request.container_id)
        return pb.StartResponse(pid=await task.shim.start(request.exec_id))

    async def Delete(self, request: pb.DeleteTaskRequest, context: grpc.aio.ServicerContext) -> pb.DeleteResponse:
        e = await self._tasks.delete(namespace_of(context), request.container_id)
        return pb.DeleteResponse(id=request.container_id, pid=e.pid, exit_status=e.status, exited_at=_exit_ts(e))

    async def DeleteProcess(
        self, request: pb.DeleteProcessRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteResponse:
        if not request.exec_id:
            raise InvalidArgument("exec id must be set; delete the task itself with Delete")
        task = self._task(context, request.container_id)
        e = await task.shim.delete(request.exec_id)
        return pb.DeleteResponse(id=request.exec_id, pid=e.pid, exit_status=e.status, exited_at=_exit_ts(e))

    async def Get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext) -> pb.GetResponse:
        task = self._task(context, request.container_id)
        return pb.GetResponse(process=_process_pb(await task.shim.state(request.exec_id)))

    async def List(self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext) -> pb.ListTasksResponse:
        tasks = self._tasks.list(namespace_of(context))
        states = await asyncio.gather(*(self._state(t) for t in tasks))
        return pb.ListTasksResponse(tasks=[_process_pb(s) for s in states if s is not None])

    async def _state(self, task: Task) -> Process | None:
        """A task's state for List; None when it is gone, or its shim does not answer within STATE_TIMEOUT.

        One hung or dead shim must not hold up the listing of every other task
        (containerd bounds this call by ``io.containerd.timeout.task.state``, 2s).
        """
        try:
            return await asyncio.wait_for(task.shim.state(""), STATE_TIMEOUT)
        except NotFound:
            return None  # deleted meanwhile
        except (TimeoutError, Unavailable) as e:
            log.warning("task %s/%s: no state from its shim (%s); left out of the list", task.namespace, task.id, e)
            return None

    async def Kill(self, request: pb.KillRequest, context: grpc.aio.ServicerContext) -> Empty:
        task = self._task(context, request.container_id)
        if not 0 < request.signal < 65:
            raise InvalidArgument(f"signal {request.signal} is not a signal number")
        await task.shim.kill(request.exec_id, request.signal, request.all)
        return Empty()

    async def Exec(self, request: pb.ExecProcessRequest, context: grpc.aio.ServicerContext) -> Empty:
        task = self._task(context, request.container_id)
        if not request.exec_id:
            raise InvalidArgument("exec id must be set")
        process = _json_of(request.spec, _PROCESS_SUFFIX, "exec spec")
        io = IO(request.stdin, request.stdout, request.stderr, request.terminal)
        await task.shim.exec(request.exec_id, process, io)
        return Empty()

    async def ResizePty(self, request: pb.ResizePtyRequest, context: grpc.aio.ServicerContext) -> Empty:
        task = self._task(context, request.container_id)
        await task.shim.resize_pty(request.exec_id, request.width, request.height)
        return Empty()

    async def CloseIO(self, request: pb.CloseIORequest, context: grpc.aio.ServicerContext) -> Empty:
        task = self._task(context, request.container_id)
        if request.stdin:
            await task.shim.close_io(request.exec_id)
        return Empty()

    async def Pause(self, request: pb.PauseTaskRequest, context: grpc.aio.ServicerContext) -> Empty:
        await self._task(context, request.container_id).shim.pause()
        return Empty()

    async def Resume(self, request: pb.ResumeTaskRequest, context: grpc.aio.ServicerContext) -> Empty:
        await self._task(context, request.container_id).shim.resume()
        return Empty()

    async def ListPids(self, request: pb.ListPidsRequest, context: grpc.aio.ServicerContext) -> pb.ListPidsResponse:
        task = self._task(context, request.container_id)
        out = []
        for pid, exec_id in await task.shim.pids():
            info = task_pb2.ProcessInfo(pid=pid)
            if exec_id:
                info.info.CopyFrom(typeurl.pack(runc_pb.ProcessDetails(exec_id=exec_id)))
            out.append(info)
        return pb.ListPidsResponse(processes=out)

    async def Update(self, request: pb.UpdateTaskRequest, context: grpc.aio.ServicerContext) -> Empty:
        task = self._task(context, request.container_id)
        await task.shim.update(_json_of(request.resources, _RESOURCES_SUFFIX, "resources"))
        return Empty()

    async def Metrics(self, request: pb.MetricsRequest, context: grpc.aio.ServicerContext) -> pb.MetricsResponse:
        namespace = namespace_of(context)
        match = filters.parse(list(request.filters))
        out = []
        for task in self._tasks.list(namespace):
            if not match.match(_id_adaptor(task.id)):
                continue
            stats = await task.shim.stats()
            ts = Timestamp()
            ts.FromNanoseconds(time.time_ns())
            out.append(metrics_pb2.Metric(timestamp=ts, id=task.id, data=typeurl.pack(stats)))
        return pb.MetricsResponse(metrics=out)

    async def Wait(self, request: pb.WaitRequest, context: grpc.aio.ServicerContext) -> pb.WaitResponse:
        task = self._task(context, request.container_id)
        try:
            e = await task.shim.wait(request.exec_id)
        except Unavailable:
            # The shim died under the wait: its processes were killed with it; tell how once that is cleaned up.
            e = await self._tasks.ended(task)
        return pb.WaitResponse(exit_status=e.status, exited_at=_exit_ts(e))
