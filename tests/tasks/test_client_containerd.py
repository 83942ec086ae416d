"""pycontainerd's client runs a task on the real containerd: create, attach, start, wait, delete.

This is the compatibility check for the client half of the runtime API —
containerd (with its own shim and runc) is the reference the same calls
must work against.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from pathlib import Path

import pytest

from pycontainerd import errors
from pycontainerd.api import typeurl
from pycontainerd.api.cgroups.v1 import metrics_pb2 as cg1
from pycontainerd.client import Attached, Client, new_fifo_set
from pycontainerd.tasks import Exit, Status
from tests.tasks.conftest import make_container

CTR = "/usr/bin/ctr"
NS = "tasktest"
REF = "example.com/test/busybox:1"

pytestmark = pytest.mark.containerd


def _cleanup(c: Client, id: str) -> None:
    for step in (
        lambda: c.tasks.kill(id, signal.SIGKILL, all=True),
        lambda: c.tasks.delete(id),
        lambda: c.containers.delete(id),
        lambda: c.snapshotter("overlayfs").remove(id),
    ):
        try:
            step()
        except errors.ContainerdError:
            pass


def test_run_a_task_to_completion(client: tuple[Client, str, Path]) -> None:
    c, top, runc_root = client
    id = "echo1"
    mounts = make_container(c, top, id, ["/bin/busybox", "sh", "-c", "echo out; echo err >&2; exit 7"], runc_root)
    fifos = new_fifo_set(id, stdin=False)
    out, err = io.BytesIO(), io.BytesIO()
    attached = Attached(fifos, None, out, err)
    try:
        pid = c.tasks.create(id, rootfs=mounts, io=fifos.io)  # type: ignore[arg-type]
        assert pid > 0
        assert c.tasks.get(id).status is Status.CREATED
        exited: list[Exit] = []
        waiter = threading.Thread(target=lambda: exited.append(c.tasks.wait(id)))
        waiter.start()
        assert c.tasks.start(id) == pid
        waiter.join(30)
        assert exited and exited[0].status == 7 and exited[0].exited_at is not None
        assert attached.wait(10)
        assert out.getvalue() == b"out\n" and err.getvalue() == b"err\n"
        proc = c.tasks.get(id)
        assert proc.status is Status.STOPPED and proc.exit_status == 7 and proc.pid == pid
        assert [t.id for t in c.tasks.list()] == [id]  # containerd leaves container_id empty in List
        gone = c.tasks.delete(id)
        assert gone.status == 7 and gone.pid == pid
        with pytest.raises(errors.NotFound):
            c.tasks.get(id)
    finally:
        attached.close()
        _cleanup(c, id)


def test_exec_kill_and_refusals(client: tuple[Client, str, Path]) -> None:
    c, top, runc_root = client
    id = "sleeper"
    mounts = make_container(c, top, id, ["/bin/busybox", "sleep", "600"], runc_root)
    try:
        c.tasks.create(id, rootfs=mounts)  # type: ignore[arg-type]
        c.tasks.start(id)
        # containerd 1.6 says so with code UNKNOWN (the shim's error loses its class); pycontainerd with
        # FAILED_PRECONDITION: both say why.
        with pytest.raises(errors.ContainerdError, match="running"):
            c.tasks.delete(id)
        with pytest.raises(errors.ContainerdError, match="already exists"):
            c.tasks.create(id, rootfs=mounts)  # type: ignore[arg-type]
        fifos = new_fifo_set(id + "-x", stdin=False)
        out = io.BytesIO()
        attached = Attached(fifos, None, out, io.BytesIO())
        try:
            process = {"args": ["/bin/busybox", "echo", "from exec"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
            c.tasks.exec(id, "x1", process, io=fifos.io)
            c.tasks.start(id, "x1")
            assert c.tasks.wait(id, "x1").status == 0
            assert attached.wait(10) and out.getvalue() == b"from exec\n"
            c.tasks.delete_process(id, "x1")
        finally:
            attached.close()
        pids = c.tasks.pids(id)
        assert len(pids) == 1 and pids[0][0] == c.tasks.get(id).pid
        c.tasks.pause(id)
        assert c.tasks.get(id).status is Status.PAUSED
        c.tasks.resume(id)
        c.tasks.update(id, {"memory": {"limit": 96 << 20}, "pids": {"limit": 42}})
        [(mid, data)] = c.tasks.metrics([id])
        stats = typeurl.unpack(data, cg1.Metrics)
        assert mid == id and stats.memory.usage.limit == 96 << 20 and stats.pids.limit == 42
        # The init is pid 1 of its namespace: SIGTERM without a handler is ignored there, SIGKILL is not.
        c.tasks.kill(id, signal.SIGKILL)
        assert c.tasks.wait(id).status == 128 + signal.SIGKILL
        c.tasks.delete(id)
    finally:
        _cleanup(c, id)
    with pytest.raises(errors.NotFound):
        c.tasks.create("no-such-container")
    assert os.path.isdir("/proc")  # the test ran on this machine's kernel, not a mock
