"""Pull and push against Debian's real docker-registry, with pyctr (in the daemon) and with containerd's ctr."""

from __future__ import annotations

import json
from pathlib import Path

from pycontainerd import platforms
from pycontainerd.client import Client, RegistryOptions
from pycontainerd.images import walk
from pycontainerd.transfer import Progress
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.containerd import Containerd
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image, oci_layout_tar

from .support import ctr, pyctr, raw_manifest, seed, two_platforms


def blobs(address: str, namespace: str = "default") -> set[str]:
    with Client(address, namespace=namespace) as c:
        return {i.digest for i in c.content.walk()}


def test_pull_fetches_this_platform_only(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    img = two_platforms()
    seed(registry, img, "test/busybox:1", tmp_path)
    ref = f"{registry.host}/test/busybox:1"

    out = pyctr(d, "images", "pull", ref)
    assert out.stdout.split() == [ref, img.digest]
    assert "layer-sha256:" in out.stderr and "complete" in out.stderr  # progress, as plain lines
    amd, arm = img.images
    have = blobs(d.address)
    assert set(amd.blobs) <= have
    arm_only = set(arm.blobs) - set(amd.blobs)
    # arm64's manifest and config come too (all metadata, as ctr pulls), its own layer does not.
    arm_layers = {str(layer["digest"]) for layer in arm.manifest["layers"]}  # type: ignore[union-attr]
    assert arm_only - arm_layers <= have
    assert not (arm_only & arm_layers & have)
    with Client(d.address) as c:
        record = c.images.get(ref)
        assert record.target.digest == img.digest
        index = c.content.info(img.digest)
        # Keyed by host name without the port, as containerd writes it.
        assert index.labels["containerd.io/distribution.source.127.0.0.1"] == "test/busybox"
        assert index.labels["containerd.io/gc.ref.content.m.0"] == amd.digest
        assert c.leases.list() == []  # the pull's temporary lease is gone
        assert c.content.list_statuses() == []
        # GC keeps exactly what the image references.
        c.leases.delete(c.leases.create("gc-now").id, sync=True)
        assert blobs(d.address) == have
        assert walk.check(c.content, record.target, platforms.default_matcher()).available

    pyctr(d, "images", "pull", "-q", "--all-platforms", ref)
    assert set(img.blobs) <= blobs(d.address)


def test_push_round_trips_bytes_and_mounts(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    img = two_platforms()
    seed(registry, img, "src/busybox:1", tmp_path)
    src = f"{registry.host}/src/busybox:1"
    pyctr(d, "images", "pull", "-q", "--all-platforms", src)
    dst = f"{registry.host}/dst/busybox:2"
    out = pyctr(d, "images", "push", dst, src)
    assert "mounted" in out.stderr  # same registry: the layers were mounted from src, not uploaded
    assert raw_manifest(registry, "dst/busybox:2") == img.index_bytes

    # A Docker schema2 image, imported from an archive, pushed byte for byte.
    docker = image([busybox_files()], docker=True)
    archive = tmp_path / "docker.tar"
    archive.write_bytes(oci_layout_tar(docker, "example.com/dock/app:1"))
    pyctr(d, "images", "import", str(archive))
    pyctr(d, "images", "push", "-q", f"{registry.host}/dock/app:1", "example.com/dock/app:1")
    assert raw_manifest(registry, "dock/app:1") == docker.manifest_bytes
    # And pulled back into another namespace with the same digest.
    out = pyctr(d, "-n", "other", "images", "pull", "-q", f"{registry.host}/dock/app:1")
    assert out.stdout.split()[1] == docker.digest


def test_ctr_against_pycontainerd(pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path) -> None:
    """containerd's own client, doing the fetch and push itself through pycontainerd's Content API."""
    d = pycontainerd_daemon
    img = two_platforms()
    seed(registry, img, "ctr/busybox:1", tmp_path)
    ref = f"{registry.host}/ctr/busybox:1"
    ctr(d.address, "content", "fetch", "--plain-http", ref)
    assert set(img.images[0].blobs) | {img.digest} == blobs(d.address)  # this host's platform
    assert "complete (3/3)" in pyctr(d, "images", "check").stdout
    arm = pyctr(d, "images", "check", "--platform", "linux/arm64", ok=False)
    assert arm.returncode == 1 and "missing (0/1)" in arm.stdout, arm.stdout
    ctr(d.address, "content", "fetch", "--plain-http", "--all-platforms", ref)
    assert set(img.blobs) == blobs(d.address)
    assert ref in ctr(d.address, "images", "ls", "-q").stdout
    check = ctr(d.address, "images", "check")
    # Availability, then whether it is unpacked, which ctr asks the Snapshots service (it is not yet).
    assert "complete (3/3)" in check.stdout, check.stdout
    assert "false" in check.stdout.splitlines()[1].split(), check.stdout
    ctr(d.address, "images", "push", "--plain-http", f"{registry.host}/ctr/pushed:1", ref)
    assert raw_manifest(registry, "ctr/pushed:1") == img.index_bytes


def test_client_side_pull_against_both_daemons(
    pycontainerd_daemon: PycontainerdDaemon, containerd: Containerd, registry: Registry, tmp_path: Path
) -> None:
    """The same client code, pulling through the Content API, against pycontainerd and a real containerd."""
    img = two_platforms()
    seed(registry, img, "both/busybox:1", tmp_path)
    ref = f"{registry.host}/both/busybox:1"
    for address, local in ((pycontainerd_daemon.address, True), (containerd.address, False)):
        events: list[Progress] = []
        with Client(address) as c:
            record = c.pull(ref, progress=events.append, local=local)
            assert record.target.digest == img.digest
            assert set(img.images[0].blobs) <= {i.digest for i in c.content.walk()}
            assert any(e.event == "complete" for e in events)
            # The gc labels hold the image together on either daemon.
            labels = c.content.info(img.digest).labels
            assert labels["containerd.io/gc.ref.content.m.0"] == img.images[0].digest
            c.pull(ref, all_platforms=True, local=local)
            c.push(f"{registry.host}/both/back-{int(local)}:1", ref, registry=RegistryOptions(), local=local)
            manifest = json.loads(raw_manifest(registry, f"both/back-{int(local)}:1"))
            assert manifest["mediaType"] == img.media_type


def test_chunked_upload_and_resolve_by_digest(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    """Large blobs go up in PATCH chunks; the registry checks the whole at the end."""
    import os

    from pycontainerd.remotes.docker import DockerResolver, HostOptions
    from pycontainerd.transfer import PushOptions, push

    d = pycontainerd_daemon
    img = image([{"data/random.bin": os.urandom(1 << 20)}])
    archive = tmp_path / "big.tar"
    archive.write_bytes(oci_layout_tar(img, "example.com/big/blob:1"))
    pyctr(d, "images", "import", str(archive))
    resolver = DockerResolver(HostOptions(chunk_size=100_000))
    with Client(d.address) as c:
        target = c.images.get("example.com/big/blob:1").target
        push(resolver, f"{faulty_proxy.host}/big/blob:1", c.content, target, PushOptions())
        patches = [p for m, p, _ in faulty_proxy.faults.seen if m == "PATCH"]
        assert len(patches) >= 10  # a 1 MiB layer in 100 kB chunks
        name, desc = resolver.resolve(f"{registry.host}/big/blob@{img.digest}")
        assert (name, desc.digest, desc.size) == (
            f"{registry.host}/big/blob@{img.digest}",
            img.digest,
            len(img.manifest_bytes),
        )
    assert raw_manifest(registry, "big/blob:1") == img.manifest_bytes
    # Pulled back, every blob checks out against its digest.
    out = pyctr(d, "-n", "back", "images", "pull", "-q", f"{registry.host}/big/blob:1")
    assert out.stdout.split()[1] == img.digest
