"""What the task tests share: a real containerd holding an unpacked busybox image, and container records."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycontainerd.api.runtime.runc.options import oci_pb2 as runc_pb
from pycontainerd.client import Client
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.images.identity import chain_id
from tests.fixtures.containerd import Containerd
from tests.fixtures.daemon import PycontainerdDaemon
from tests.ocibuild import busybox_files, image, oci_layout_tar
from tests.tasks.spec import remove_namespace_cgroups, spec_value

CTR = "/usr/bin/ctr"
NS = "tasktest"
REF = "example.com/test/busybox:1"


@dataclass(frozen=True)
class Runtime:
    """The daemon a task test runs against."""

    kind: str
    address: str
    runc_root: Path
    daemon: PycontainerdDaemon | None = None


@pytest.fixture(params=["containerd", "pycontainerd"])
def runtime_daemon(request: pytest.FixtureRequest) -> Runtime:
    """Each task test runs twice: against the real containerd (the reference) and against pycontainerd."""
    if request.param == "containerd":
        d: Containerd = request.getfixturevalue("containerd")
        return Runtime("containerd", d.address, d.runc_root)
    p: PycontainerdDaemon = request.getfixturevalue("pycontainerd_daemon")
    return Runtime("pycontainerd", p.address, p.runc_root, p)


@pytest.fixture
def client(runtime_daemon: Runtime, tmp_path: Path) -> Iterator[tuple[Client, str, Path]]:
    """A client in a namespace holding the busybox image, unpacked; yields it, the top chain id, runc's root."""
    img = image([busybox_files()])
    archive = tmp_path / "busybox.tar"
    archive.write_bytes(oci_layout_tar(img, REF))
    address = runtime_daemon.address
    subprocess.run([CTR, "-a", address, "-n", NS, "images", "import", str(archive)], check=True)
    config = json.loads(img.blobs[img.manifest["config"]["digest"]])  # type: ignore[index]
    try:
        with Client(address, namespace=NS) as c:
            yield c, chain_id(config["rootfs"]["diff_ids"]), runtime_daemon.runc_root
    finally:
        remove_namespace_cgroups(NS)


def make_container(c: Client, top: str, id: str, args: list[str], runc_root: Path) -> list[object]:
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
