"""The Diff service through its proxy and through ctr: compare a container's changes into a layer, apply it back."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from pycontainerd import errors
from pycontainerd.client import Client
from pycontainerd.content import write_blob
from pycontainerd.diff.proxy import ProxyDiffer
from pycontainerd.images import Descriptor
from pycontainerd.mount import Mount, mounted
from tests.diff.treecmp import snapshot_tree
from tests.fixtures.daemon import PycontainerdDaemon

ROOT = {"containerd.io/gc.root": "test"}


def layer(entries: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:  # type: ignore[assignment]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return gzip.compress(buf.getvalue(), mtime=0)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def client(pycontainerd_daemon: PycontainerdDaemon) -> Client:
    c = Client(pycontainerd_daemon.address)
    c.leases.create("t")
    return c.with_lease("t")


def base_snapshot(client: Client) -> str:
    blob = layer({"etc/motd": b"hello\n", "etc/gone": b"x\n", "usr/keep": b"k\n"})
    digest = write_blob(client.content, "base", blob)
    sn = client.snapshotter("overlayfs")
    mounts = sn.prepare("base-a", "", ROOT)
    ProxyDiffer(client.connection).apply(
        Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, len(blob)), mounts
    )
    sn.commit("base", "base-a", ROOT)
    return "base"


def test_compare_then_apply_round_trips(client: Client) -> None:
    sn = client.snapshotter("overlayfs")
    differ = ProxyDiffer(client.connection)
    base = base_snapshot(client)
    upper = sn.prepare("work", base, ROOT)
    with mounted(upper) as root:
        (root / "etc/motd").write_text("changed\n")
        (root / "etc/gone").unlink()
        (root / "new").mkdir()
        (root / "new/file").write_bytes(b"\0" * 70000)
        os.symlink("../etc/motd", root / "new/link")
        expected = snapshot_tree(root)
    lower = sn.view("base-view", base, ROOT)
    desc = differ.compare(lower, upper, labels={"purpose": "test"})
    assert desc.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    info = client.content.info(desc.digest)
    assert info.labels["purpose"] == "test"
    assert info.labels["containerd.io/uncompressed"].startswith("sha256:")
    # The same change, read from two full trees (no overlay shortcut), is the same layer.
    with mounted(lower) as lo, mounted(upper) as hi:
        copy = [Mount("bind", str(hi), ("ro", "rbind"))]
        again = differ.compare([Mount("bind", str(lo), ("ro", "rbind"))], copy)
    assert again.digest == desc.digest
    # Applied onto a fresh snapshot of the same parent, it gives the same tree.
    fresh = sn.prepare("replay", base, ROOT)
    applied = differ.apply(desc, fresh)
    assert applied.digest == info.labels["containerd.io/uncompressed"]
    with mounted(fresh) as root:
        assert snapshot_tree(root) == expected


def test_apply_refuses_bad_input(client: Client, tmp_path: Path) -> None:
    sn = client.snapshotter("overlayfs")
    differ = ProxyDiffer(client.connection)
    mounts = sn.prepare("target", "", ROOT)
    good = layer({"f": b"x"})
    digest = write_blob(client.content, "good", good)
    with pytest.raises(errors.InvalidArgument, match="media type"):
        differ.apply(Descriptor("application/vnd.example.unknown", digest, len(good)), mounts)
    with pytest.raises(errors.NotFound):
        differ.apply(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", sha(b"nope"), 4), mounts)
    with pytest.raises(errors.InvalidArgument, match="not supported"):
        differ.apply(
            Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, len(good)), [Mount("nfs", "x:/y")]
        )
    outside = tmp_path / "outside"
    outside.mkdir()
    evil_entry = tarfile.TarInfo(f"../../../../../../../..{outside}/pwned")
    evil = layer({}, [evil_entry])
    evil_digest = write_blob(client.content, "evil", evil)
    with pytest.raises(errors.InvalidArgument):
        differ.apply(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", evil_digest, len(evil)), mounts)
    assert list(outside.iterdir()) == []
    with pytest.raises(errors.InvalidArgument, match="media type"):
        differ.compare([], mounts, media_type="application/x-unknown")


def test_ctr_snapshots_diff(pycontainerd_daemon: PycontainerdDaemon, client: Client) -> None:
    """`ctr snapshots diff` asks the Diff service to compare an active snapshot with its parent."""
    sn = client.snapshotter("overlayfs")
    base = base_snapshot(client)
    upper = sn.prepare("ctr-work", base, ROOT)
    with mounted(upper) as root:
        (root / "added").write_text("by test\n")
    # ctr writes the new layer blob to stdout, reading it back through the Content API.
    done = subprocess.run(
        ["ctr", "-a", pycontainerd_daemon.address, "snapshots", "diff", "ctr-work"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(done.stdout))) as tar:
        assert tar.getnames() == ["added"]
    # ctr held the new blob only by a lease it dropped on exit, so the collector may have taken it by now.
