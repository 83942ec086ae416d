"""pycontainerd's client runs a task on the real containerd: create, attach, start, wait, delete.

This is the compatibility check for the client half of the runtime API —
containerd (with its own shim and runc) is the reference the same calls
must work against.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import errors
from pycontainerd.api.runtime.runc.options import oci_pb2 as runc_pb
from pycontainerd.client import Attached, Client, new_fifo_set
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.images.identity import chain_id
from pycontainerd.tasks import Exit, Status
from tests.fixtures.containerd import Containerd
from tests.ocibuild import busybox_files, image, oci_layout_tar
from tests.tasks.spec import remove_namespace_cgroups, spec_value

CTR = "/usr/bin/ctr"
NS = "tasktest"
REF = "example.com/test/busybox:1"

pytestmark = pytest.mark.containerd


@pytest.fixture
def client(containerd: Containerd, tmp_path: Path) -> Iterator[tuple[Client, str, Path]]:
    """A client in a namespace holding the busybox image, unpacked; yields it, the top chain id, runc's root."""
    img = image([busybox_files()])
    archive = tmp_path / "busybox.tar"
    archive.write_bytes(oci_layout_tar(img, REF))
    subprocess.run([CTR, "-a", containerd.address, "-n", NS, "images", "import", str(archive)], check=True)
    config = json.loads(img.blobs[img.manifest["config"]["digest"]])  # type: ignore[index]
    try:
        with Client(containerd.address, namespace=NS) as c:
            yield c, chain_id(config["rootfs"]["diff_ids"]), containerd.runc_root
    finally:
        remove_namespace_cgroups(NS)


def _container(c: Client, top: str, id: str, args: list[str], runc_root: Path) -> list[object]:
    # The record first: it holds the snapshot against the collector from the moment it exists.
    c.containers.create(
        Container(
            id=id,
            runtime=RuntimeInfo(
                "io.containerd.runc.v2",
                TypedValue("containerd.runc.v1.Options", runc_pb.Options(root=str(runc_root)).SerializeToString()),
            ),
            spec=spec_value(NS, id, args),
            snapshotter="overlayfs",
            snapshot_key=id,
        )
    )
    return list(c.snapshotter("overlayfs").prepare(id, top))


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
    mounts = _container(c, top, id, ["/bin/busybox", "sh", "-c", "echo out; echo err >&2; exit 7"], runc_root)
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
    mounts = _container(c, top, id, ["/bin/busybox", "sleep", "600"], runc_root)
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
        # The init is pid 1 of its namespace: SIGTERM without a handler is ignored there, SIGKILL is not.
        c.tasks.kill(id, signal.SIGKILL)
        assert c.tasks.wait(id).status == 128 + signal.SIGKILL
        c.tasks.delete(id)
    finally:
        _cleanup(c, id)
    with pytest.raises(errors.NotFound):
        c.tasks.create("no-such-container")
    assert os.path.isdir("/proc")  # the test ran on this machine's kernel, not a mock
