"""Unpacking overlaps the fetch: a layer is applied while later layers still download, and failures leave nothing.

The last layer comes through the faulty proxy slowly (random bytes, which
gzip cannot shrink), so the first layers are fetched, verified and unpacked
long before it ends; the test watches the daemon's snapshots and ingests
while ``pyctr images pull`` runs, in the daemon (Transfer service) and in
the client (``--local``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.errors import NotFound
from pycontainerd.mount import option_value
from pycontainerd.snapshots import Kind
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import Image, busybox_files, image, sha

from ..distribution.support import seed

SLOW_BYTES = 1 << 20
SLOW_RATE = 128 << 10  # the last layer takes about 8 s


def slow_last_layer() -> Image:
    return image([busybox_files(), {"etc/motd": b"middle\n"}, {"data/random.bin": os.urandom(SLOW_BYTES)}])


def layers_of(img: Image) -> list[str]:
    return [str(d["digest"]) for d in img.manifest["layers"]]  # type: ignore[attr-defined]


def diff_ids_of(img: Image) -> list[str]:
    config = json.loads(img.blobs[str(img.manifest["config"]["digest"])])  # type: ignore[index]
    return list(config["rootfs"]["diff_ids"])


def with_wrong_first_diff_id(img: Image) -> Image:
    """The same layers, but a config that names a diff id the first layer does not have."""
    config = json.loads(img.blobs[str(img.manifest["config"]["digest"])])  # type: ignore[index]
    config["rootfs"]["diff_ids"][0] = sha(b"not this layer")
    raw = json.dumps(config, sort_keys=True).encode()
    bad = Image(blobs={d: b for d, b in img.blobs.items() if d in layers_of(img)}, platform=dict(img.platform))
    bad.manifest = {**img.manifest, "config": {**img.manifest["config"], "digest": bad.add(raw), "size": len(raw)}}  # type: ignore[dict-item]
    bad.add(bad.manifest_bytes)
    return bad


def start_pull(d: PycontainerdDaemon, ref: str, local: bool) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", d.address, "images", "pull", "-q"]
    return subprocess.Popen(
        [*argv, *(["--local"] if local else []), ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def committed(c: Client, name: str) -> bool:
    try:
        return c.snapshotter("overlayfs").stat(name).kind == Kind.COMMITTED
    except NotFound:
        return False


def stored(c: Client, digest: str) -> bool:
    try:
        c.content.info(digest)
    except NotFound:
        return False
    return True


def wait_for_first_snapshot(c: Client, puller: subprocess.Popen[str], chain: str, last_layer: str) -> None:
    """Wait until the bottom layer's snapshot is committed; the last layer must still be downloading then."""
    deadline = time.monotonic() + 30
    while not committed(c, chain):
        assert puller.poll() is None, puller.communicate()
        assert time.monotonic() < deadline, "the first layer was never unpacked"
        time.sleep(0.05)
    assert not stored(c, last_layer), "the last layer was fetched before the first was unpacked"
    assert [s.ref for s in c.content.list_statuses()] == [f"layer-{last_layer}"]


def assert_nothing_left(address: str) -> None:
    """No image, lease or active snapshot; after a collection, no snapshot, blob or ingest either.

    A canceled download's ingest stays until then, for a pull to resume.
    """
    with Client(address) as c:
        sn = c.snapshotter("overlayfs")
        assert c.images.list() == []
        assert c.leases.list() == []
        assert [i.name for i in sn.walk() if i.kind != Kind.COMMITTED] == []
        c.leases.delete(c.leases.create("gc-now").id, sync=True)
        assert list(sn.walk()) == []
        assert list(c.content.walk()) == []
        assert c.content.list_statuses() == []


@pytest.mark.parametrize("local", [False, True], ids=["server-side", "client-side"])
def test_first_layer_is_unpacked_while_the_last_downloads(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path, local: bool
) -> None:
    d = pycontainerd_daemon
    img = slow_last_layer()
    seed(registry, img, "overlap/slow:1", tmp_path)
    last = layers_of(img)[-1]
    faulty_proxy.faults.slow_on, faulty_proxy.faults.slow_rate = f"/blobs/{last}", SLOW_RATE
    ref = f"{faulty_proxy.host}/overlap/slow:1"
    puller = start_pull(d, ref, local)
    try:
        with Client(d.address) as c:
            wait_for_first_snapshot(c, puller, diff_ids_of(img)[0], last)
            out, err = puller.communicate(timeout=60)
            assert puller.returncode == 0, err
            assert out.split() == [ref, img.digest]
            # The same end as unpacking after the fetch: every chain committed, the labels set.
            chains = [i.name for i in c.snapshotter("overlayfs").walk() if i.kind == Kind.COMMITTED]
            assert len(chains) == 3
            for layer, diff_id in zip(layers_of(img), diff_ids_of(img), strict=True):
                assert c.content.info(layer).labels["containerd.io/uncompressed"] == diff_id
            config = c.content.info(str(img.manifest["config"]["digest"]))  # type: ignore[index]
            assert config.labels["containerd.io/gc.ref.snapshot.overlayfs"] in chains
            assert c.leases.list() == []
    finally:
        puller.kill()
        puller.wait()


@pytest.mark.parametrize("local", [False, True], ids=["server-side", "client-side"])
def test_fetch_failing_after_layers_were_unpacked_leaves_nothing(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path, local: bool
) -> None:
    d = pycontainerd_daemon
    img = slow_last_layer()
    seed(registry, img, "overlap/corrupt:1", tmp_path)
    last = layers_of(img)[-1]
    faulty_proxy.faults.slow_on, faulty_proxy.faults.slow_rate = f"/blobs/{last}", SLOW_RATE * 4
    faulty_proxy.faults.corrupt_on = f"/blobs/{last}"
    puller = start_pull(d, f"{faulty_proxy.host}/overlap/corrupt:1", local)
    try:
        with Client(d.address) as c:
            wait_for_first_snapshot(c, puller, diff_ids_of(img)[0], last)
        _, err = puller.communicate(timeout=60)
    finally:
        puller.kill()
        puller.wait()
    assert puller.returncode == 1
    assert "does not match its digest" in err and last in err, err
    assert_nothing_left(d.address)


def test_unpack_failure_stops_the_fetch_and_leaves_nothing(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    img = with_wrong_first_diff_id(slow_last_layer())
    seed(registry, img, "overlap/baddiff:1", tmp_path)
    last = layers_of(img)[-1]
    faulty_proxy.faults.slow_on, faulty_proxy.faults.slow_rate = f"/blobs/{last}", SLOW_RATE
    started = time.monotonic()
    puller = start_pull(d, f"{faulty_proxy.host}/overlap/baddiff:1", False)
    try:
        _, err = puller.communicate(timeout=60)
    finally:
        puller.kill()
        puller.wait()
    took = time.monotonic() - started
    assert puller.returncode == 1
    assert "diff id" in err and layers_of(img)[0] in err, err
    assert took < SLOW_BYTES / SLOW_RATE * 0.75, f"the fetch went on for {took:.1f} s after the unpack failed"
    assert_nothing_left(d.address)


def test_a_layer_is_applied_while_it_downloads(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    """One slow layer: its first files are in the snapshot before its last bytes arrive (server-side pull)."""
    d = pycontainerd_daemon
    # The apply reads the layer a mebibyte at a time: four of them, at 512 KiB/s, leave time to look.
    img = image([{"aaa/first.txt": b"early\n", "zzz/random.bin": os.urandom(4 * SLOW_BYTES)}])
    seed(registry, img, "overlap/one:1", tmp_path)
    [layer] = layers_of(img)
    faulty_proxy.faults.slow_on, faulty_proxy.faults.slow_rate = f"/blobs/{layer}", 4 * SLOW_RATE
    ref = f"{faulty_proxy.host}/overlap/one:1"
    puller = start_pull(d, ref, False)
    try:
        with Client(d.address) as c:
            sn = c.snapshotter("overlayfs")
            deadline = time.monotonic() + 30
            seen = None
            while seen is None:
                assert puller.poll() is None, puller.communicate()
                assert time.monotonic() < deadline, "nothing of the layer was applied before its download ended"
                for info in sn.walk():
                    if info.kind == Kind.ACTIVE:
                        [m] = sn.mounts(info.name)
                        root = Path(m.source if m.type == "bind" else option_value(m.options, "upperdir") or "")
                        if (root / "aaa" / "first.txt").exists():
                            seen = root
                time.sleep(0.02)
            assert (seen / "aaa" / "first.txt").read_bytes() == b"early\n"
            [status] = c.content.list_statuses()
            assert status.ref == f"layer-{layer}" and status.offset < status.total
            assert not stored(c, layer)
            out, err = puller.communicate(timeout=60)
            assert puller.returncode == 0, err
            assert out.split() == [ref, img.digest]
            [chain] = [i.name for i in sn.walk()]
            assert chain == diff_ids_of(img)[0]
            assert c.content.info(layer).labels["containerd.io/uncompressed"] == diff_ids_of(img)[0]
    finally:
        puller.kill()
        puller.wait()


def test_a_corrupt_download_applied_as_it_came_reports_the_digest(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    """The one layer's last byte is wrong: the error is the download's, and nothing is kept."""
    d = pycontainerd_daemon
    img = image([{"aaa/first.txt": b"early\n", "zzz/random.bin": os.urandom(SLOW_BYTES // 4)}])
    seed(registry, img, "overlap/onebad:1", tmp_path)
    [layer] = layers_of(img)
    faulty_proxy.faults.slow_on, faulty_proxy.faults.slow_rate = f"/blobs/{layer}", SLOW_RATE
    faulty_proxy.faults.corrupt_on = f"/blobs/{layer}"
    puller = start_pull(d, f"{faulty_proxy.host}/overlap/onebad:1", False)
    try:
        _, err = puller.communicate(timeout=60)
    finally:
        puller.kill()
        puller.wait()
    assert puller.returncode == 1
    assert "does not match its digest" in err and layer in err, err
    assert_nothing_left(d.address)
