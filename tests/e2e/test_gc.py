"""Garbage collection seen from containerd's own ctr and the Python client, on a running daemon."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

from pycontainerd.client import Client
from pycontainerd.content import write_blob
from pycontainerd.images import Descriptor, Image
from tests.fixtures.daemon import PycontainerdDaemon

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def ctr(d: PycontainerdDaemon, *args: str) -> str:
    r = subprocess.run(["ctr", "-a", d.address, *args], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def on_disk(d: PycontainerdDaemon) -> set[str]:
    top = d.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    return {"sha256:" + n for n in os.listdir(top)} if top.exists() else set()


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_image_keeps_its_blobs_and_sync_delete_frees_them(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    with Client(d.address) as c, c.lease(sync=True) as leased:
        layer = write_blob(leased.content, "layer", b"layer bytes" * 100)
        config = write_blob(leased.content, "config", b'{"architecture":"amd64"}')
        body = json.dumps({"config": config, "layers": [layer]}).encode()
        manifest = write_blob(
            leased.content,
            "manifest",
            body,
            labels={"containerd.io/gc.ref.content.config": config, "containerd.io/gc.ref.content.l.0": layer},
        )
        orphan = write_blob(leased.content, "orphan", b"nobody needs me")
        leased.images.create(Image("example.com/app:1", Descriptor(MANIFEST, manifest, len(body))))
    # The lease is gone (deleted synchronously): only what the image references is left.
    assert on_disk(d) == {layer, config, manifest}
    assert orphan not in ctr(d, "content", "ls", "-q")
    assert "example.com/app:1" in ctr(d, "images", "ls", "-q")
    ctr(d, "images", "rm", "--sync", "example.com/app:1")
    assert on_disk(d) == set()
    assert ctr(d, "content", "ls", "-q").strip() == ""


def test_ctr_ingest_without_a_root_is_collected(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    subprocess.run(["ctr", "-a", d.address, "content", "ingest", "r"], input=b"transient", check=True, timeout=60)
    # ctr held a lease while writing and deleted it after; the collector then removes the blob, as containerd's does.
    deadline = time.monotonic() + 30  # the collector spaces runs by pause_threshold: slower under load
    while on_disk(d) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert on_disk(d) == set()


def test_gc_root_label_set_by_ctr_keeps_content(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    with Client(d.address) as c:
        with c.lease(sync=True) as leased:
            kept = write_blob(leased.content, "kept", b"keep me")
            child = write_blob(leased.content, "child", b"child of kept")
            ctr(d, "content", "label", kept, "containerd.io/gc.root=yes", f"containerd.io/gc.ref.content={child}")
        assert on_disk(d) == {kept, child}
        ctr(d, "content", "label", kept, "containerd.io/gc.root=")  # an empty value removes it
        c.leases.delete(c.leases.create("trigger").id, sync=True)
        assert on_disk(d) == set()


def test_expired_lease_stops_protecting(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    out = ctr(d, "leases", "create", "--expires", "1s")
    lease_id = out.split()[0]
    with Client(d.address) as c:
        dgst = write_blob(c.with_lease(lease_id).content, "short", b"short lived")
        assert dgst in on_disk(d)
        time.sleep(1.2)
        c.leases.delete(c.leases.create("trigger").id, sync=True)
        assert dgst not in on_disk(d)
        assert lease_id not in ctr(d, "leases", "ls")


def test_namespaces_share_blobs_but_not_records(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    data = b"shared between namespaces"
    with Client(d.address) as c:
        a, b = c.with_namespace("team-a"), c.with_namespace("team-b")
        with a.lease(sync=True) as la:
            dgst = write_blob(la.content, "x", data)
            la.images.create(Image("img", Descriptor(MANIFEST, dgst, len(data))))
        assert ctr(d, "-n", "team-b", "content", "ls", "-q").strip() == ""
        assert ctr(d, "-n", "team-b", "images", "ls", "-q").strip() == ""
        with b.lease(sync=True) as lb:
            assert write_blob(lb.content, "y", data, expected=sha(data)) == dgst
            lb.images.create(Image("img", Descriptor(MANIFEST, dgst, len(data))))
        ctr(d, "-n", "team-a", "images", "rm", "--sync", "img")
        assert dgst in on_disk(d)
        assert ctr(d, "-n", "team-a", "content", "ls", "-q").strip() == ""
        ctr(d, "-n", "team-b", "images", "rm", "--sync", "img")
        assert dgst not in on_disk(d)
