"""Debian's real ``ctr`` (containerd 1.6) against pycontainerd: the wire contract, as users meet it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator

import pytest

from pycontainerd import __version__
from pycontainerd.api.services.content.v1 import content_pb2 as cpb
from pycontainerd.api.services.images.v1 import images_pb2 as ipb
from pycontainerd.api.services.leases.v1 import leases_pb2 as lpb
from pycontainerd.api.types import descriptor_pb2
from tests.daemon.conftest import Stubs, channel_to, md
from tests.daemon.test_services import PLUGINS
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon

CTR = "/usr/bin/ctr"

pytestmark = [
    pytest.mark.containerd,
]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Ctr:
    def __init__(self, daemon: PycontainerdDaemon) -> None:
        self.address = daemon.address

    def run(
        self, *args: str, input: bytes | None = None, namespace: str = "default"
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [CTR, "--address", self.address, "--namespace", namespace, *args],
            input=input,
            capture_output=True,
            timeout=120,
            check=False,
        )

    def __call__(self, *args: str, input: bytes | None = None, namespace: str = "default") -> str:
        res = self.run(*args, input=input, namespace=namespace)
        assert res.returncode == 0, res.stderr.decode()
        return res.stdout.decode()

    def fails(self, *args: str) -> str:
        res = self.run(*args)
        assert res.returncode != 0
        return res.stderr.decode()


# ctr cannot ingest under a lease, so what it writes is garbage until labelled; the
# collection containerd (and pycontainerd) run 100 ms after start would take it.
NO_STARTUP_GC = 'version = 2\n[plugins."io.containerd.gc.v1.scheduler"]\nstartup_delay = "1h"\n'


@pytest.fixture
def daemon(pycontainerd_daemon_factory: DaemonFactory) -> PycontainerdDaemon:
    return pycontainerd_daemon_factory(config=NO_STARTUP_GC)


@pytest.fixture
def ctr(daemon: PycontainerdDaemon) -> Ctr:
    return Ctr(daemon)


@pytest.fixture
def stubs(daemon: PycontainerdDaemon) -> Iterator[Stubs]:
    with channel_to(daemon.address) as ch:
        yield Stubs(ch)


def rows(out: str) -> list[list[str]]:
    """ctr's tables without the header, split on whitespace."""
    return [line.split() for line in out.splitlines()[1:] if line.strip()]


def test_version(ctr: Ctr) -> None:
    out = ctr("version")
    server = out.split("Server:")[1]
    assert f"Version:  {__version__}" in server
    assert "UUID: " in server


def test_plugins_ls(ctr: Ctr) -> None:
    assert [(r[0], r[1], r[2], r[3]) for r in rows(ctr("plugins", "ls"))] == [(t, i, "-", "ok") for t, i in PLUGINS]
    assert ctr("plugins", "ls", "-q").split() == [i for _, i in PLUGINS]
    assert [r[1] for r in rows(ctr("plugins", "ls", "type==io.containerd.gc.v1"))] == ["scheduler"]
    detailed = ctr("plugins", "ls", "-d", "id==sqlite")
    assert "io.containerd.metadata.v1" in detailed and "meta.db" in detailed


def test_namespaces(ctr: Ctr) -> None:
    ctr("namespaces", "create", "tenant", "a=1", "b=2")
    assert ["tenant", "a=1,b=2"] in rows(ctr("namespaces", "ls"))
    ctr("namespaces", "label", "tenant", "b=", "c=3")
    assert ["tenant", "a=1,c=3"] in rows(ctr("namespaces", "ls"))
    assert "tenant" in ctr("namespaces", "ls", "-q").split()
    assert "already exists" in ctr.fails("namespaces", "create", "tenant")
    assert ctr("namespaces", "rm", "tenant").strip() == "tenant"
    assert "tenant" not in ctr("namespaces", "ls", "-q").split()


def test_content(ctr: Ctr) -> None:
    data = os.urandom(3 << 20) + b"tail"
    digest = sha(data)
    ctr("content", "ingest", "--expected-size", str(len(data)), "--expected-digest", digest, "blob", input=data)
    # Unreferenced content is collectable; a gc.root label keeps it, as in containerd.
    ctr("content", "label", digest, "containerd.io/gc.root=1", "x=y")
    listing = rows(ctr("content", "ls"))
    assert [r[0] for r in listing] == [digest]
    assert set(listing[0][-1].split(",")) == {"containerd.io/gc.root=1", "x=y"}  # in Go's map order
    assert ctr("content", "ls", "-q").split() == [digest]
    got = ctr.run("content", "get", digest)
    assert got.returncode == 0 and got.stdout == data
    ctr("content", "label", digest, "x=")
    assert "x=y" not in ctr("content", "ls")
    # Ingesting what is already there succeeds without a second copy.
    ctr("content", "ingest", "--expected-digest", digest, "again", input=data)
    assert ctr("content", "ls", "-q").split() == [digest]
    assert ctr("content", "rm", digest).strip() == digest
    assert ctr("content", "ls", "-q").split() == []
    assert "not found" in ctr.fails("content", "get", digest)


def test_content_ingest_checks_what_it_is_told(ctr: Ctr) -> None:
    err = ctr.run("content", "ingest", "--expected-size", "10", "short", input=b"abc").stderr.decode()
    assert "failed to read expected number of bytes" in err or "unexpected" in err
    res = ctr.run("content", "ingest", "--expected-digest", sha(b"other"), "wrong", input=b"data")
    assert res.returncode != 0 and b"unexpected commit digest" in res.stderr


def test_content_active(ctr: Ctr, stubs: Stubs) -> None:
    release = threading.Event()

    def held() -> Iterator[cpb.WriteContentRequest]:
        yield cpb.WriteContentRequest(action=cpb.WRITE, ref="in-flight", data=b"12345")
        release.wait(30)

    stream = stubs.content.Write(held(), metadata=md(namespace="default"))
    try:
        assert next(stream).offset == 5
        active = rows(ctr("content", "active"))
        assert [(r[0], r[1]) for r in active] == [("in-flight", "5B")]
    finally:
        release.set()
        list(stream)
    # The stream's end leaves the ingest resumable (ctr has no command to abort it).
    assert [r[0] for r in rows(ctr("content", "active"))] == ["in-flight"]


def test_leases(ctr: Ctr) -> None:
    assert ctr("leases", "create", "--id", "mine", "owner=me").strip() == "mine"
    generated = ctr("leases", "create", "-x", "0").strip()
    listing = {r[0]: r for r in rows(ctr("leases", "ls"))}
    assert set(listing) == {"mine", generated}
    assert any(cell.startswith("owner=me") or ",owner=me" in cell for cell in listing["mine"])
    assert sorted(ctr("leases", "ls", "-q").split()) == sorted(["mine", generated])
    assert ctr("leases", "rm", "--sync", "mine", generated).split() == ["mine", generated]
    assert ctr("leases", "ls", "-q").split() == []
    assert "not found" in ctr.fails("leases", "rm", "mine")


def test_images(ctr: Ctr, stubs: Stubs) -> None:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{sha(config)}","size":{len(config)}}},'
        '"layers":[]}'
    ).encode()
    lease = stubs.leases.Create(lpb.CreateRequest(id="build"), metadata=md("default")).lease.id
    for ref, blob, labels in [
        ("config", config, {}),
        ("manifest", manifest, {"containerd.io/gc.ref.content.config": sha(config)}),
    ]:
        req = cpb.WriteContentRequest(action=cpb.COMMIT, ref=ref, data=blob, labels=labels)
        list(stubs.content.Write(iter([req]), metadata=md("default", lease=lease)))
    target = descriptor_pb2.Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json", digest=sha(manifest), size=len(manifest)
    )
    stubs.images.Create(
        ipb.CreateImageRequest(image=ipb.Image(name="example.com/img:1", target=target)), metadata=md("default")
    )
    assert ctr("leases", "rm", "build").strip() == "build"
    listing = rows(ctr("images", "ls"))
    assert listing[0][:3] == ["example.com/img:1", target.media_type, target.digest]
    assert "linux/amd64" in listing[0]
    assert ctr("images", "ls", "-q").split() == ["example.com/img:1"]
    assert ctr("images", "label", "example.com/img:1", "stage=test").strip() == "stage=test"
    assert "stage=test" in rows(ctr("images", "ls"))[0]
    assert ctr("images", "ls", "-q", "labels.stage==test").split() == ["example.com/img:1"]
    assert ctr("images", "rm", "--sync", "example.com/img:1").strip() == "example.com/img:1"
    assert ctr("images", "ls", "-q").split() == []
    assert ctr("content", "ls", "-q").split() == []  # nothing held the blobs after the image went
