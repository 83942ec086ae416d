"""20 parallel pulls of images that share layers: each blob fetched once, each layer unpacked once.

Twenty images share one base layer; groups of five share a middle layer;
each has a small top layer of its own.  They are pulled at once through a
proxy that logs every request to the real registry behind it, first in the
daemon (the Transfer service, as pyctr pulls), then in the clients with
Debian's ``ctr`` (Content.Write, Snapshots and Diff from the client).  Every
blob must be fetched once (concurrent writers of one ingest ref wait for it),
every image complete and unpacked, and the snapshots of shared layers shared.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pycontainerd.api.events import snapshot_pb2
from pycontainerd.client import Client, RegistryOptions
from pycontainerd.images.identity import chain_ids
from pycontainerd.remotes.docker import DockerResolver
from pycontainerd.snapshots import UNPACK_KEY_PREFIX
from tests.distribution.support import assert_clean, ctr, pyctr
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import CONFIG, LAYER, MANIFEST, Image, busybox_files, layer_tar, sha
from tests.reliability.soak import record, scale
from tests.remotes.support import push_image

PULLS = 20


def _image(layers: list[tuple[bytes, str]]) -> Image:
    """An image of already compressed layers ``(gzip bytes, diff id)``, laid out as :func:`tests.ocibuild.image`'s."""
    img = Image()
    cfg = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]}}
    config = json.dumps(cfg, sort_keys=True).encode()
    img.manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": img.add(config), "size": len(config)},
        "layers": [{"mediaType": LAYER, "digest": img.add(gz), "size": len(gz)} for gz, _ in layers],
    }
    img.platform = {"os": "linux", "architecture": "amd64"}
    img.add(img.manifest_bytes)
    return img


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    raw = layer_tar(files)
    return gzip.compress(raw, compresslevel=1, mtime=0), sha(raw)


def _images(registry: Registry, n: int) -> dict[str, Image]:
    """``n`` images pushed to the registry, by repository; they share a base and, five by five, a middle layer."""
    base = _layer({**busybox_files(), "opt/base.bin": os.urandom(1 << 20)})
    middles = [_layer({"opt/middle.bin": os.urandom(256 << 10), "opt/group": b"%d\n" % g}) for g in range((n + 4) // 5)]
    out: dict[str, Image] = {}
    with DockerResolver() as r:
        for i in range(n):
            img = _image([base, middles[i // 5], _layer({"etc/me": b"image %d\n" % i})])
            repo = f"load/app{i}"
            push_image(r.pusher(f"{registry.host}/{repo}:1"), img, mount_from=("load/app0",) if i else ())
            out[repo] = img
    return out


def _blob_gets(proxy: FaultyProxy) -> collections.Counter[str]:
    with proxy.faults.lock:
        return collections.Counter(
            p.rsplit("/", 1)[-1] for m, p, _ in proxy.faults.seen if m == "GET" and "/blobs/sha256:" in p
        )


def _chains(images: dict[str, Image]) -> set[str]:
    out: set[str] = set()
    for img in images.values():
        config = json.loads(img.blobs[img.manifest["config"]["digest"]])  # type: ignore[index]
        out |= set(chain_ids(config["rootfs"]["diff_ids"]))
    return out


class _Prepares:
    """Counts the snapshots prepared to extract each chain id, from the Events service, until ``images`` are created."""

    def __init__(self, address: str, images: int) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.topics: collections.Counter[str] = collections.Counter()
        self._address = address
        self._images = images
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        with Client(address) as c:  # a subscription starts with its first read: publish until it hears us
            for _ in range(100):
                c.events.publish("/test/ready", snapshot_pb2.SnapshotPrepare(key="ready"))
                if self._ready.wait(0.1):
                    break
        assert self._ready.is_set()

    def _run(self) -> None:
        with Client(self._address) as c:
            stream = c.events.subscribe()
            created = 0
            for env in stream:
                self.topics[env.topic] += 1
                if env.topic == "/test/ready":
                    self._ready.set()
                elif env.topic == "/images/create":
                    created += 1
                    if created == self._images:
                        return
                elif env.topic == "/snapshot/prepare":
                    ev = snapshot_pb2.SnapshotPrepare.FromString(env.event.value)
                    if ev.key.startswith(UNPACK_KEY_PREFIX + "-"):
                        self.counts[ev.key.split(" ", 1)[1]] += 1

    def join(self) -> collections.Counter[str]:
        self._thread.join(30)
        assert not self._thread.is_alive(), self.topics
        return self.counts


def _check_pulled(d: PycontainerdDaemon, images: dict[str, Image], host: str) -> None:
    """Every image recorded with its digest, every layer in the store, one committed snapshot per chain id."""
    with Client(d.address) as c:
        recorded = {i.name: i.target.digest for i in c.images.list()}
        assert recorded == {f"{host}/{repo}:1": img.digest for repo, img in images.items()}
        blobs = {info.digest for info in c.content.walk()}
        assert blobs >= {b for img in images.values() for b in img.blobs}
        assert c.content.list_statuses() == []
    lines = pyctr(d, "snapshots", "ls").stdout.splitlines()[1:]
    committed = [line.split()[0] for line in lines if "Committed" in line]
    assert sorted(committed) == sorted(_chains(images)), lines
    assert not [line for line in lines if "Committed" not in line], lines  # no extract- snapshot left


def test_parallel_pulls_fetch_each_blob_once(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    images = _images(registry, PULLS)
    host = faulty_proxy.host
    problems = 0
    rounds = scale(1, 5)
    took: list[float] = []
    for _ in range(rounds):
        faulty_proxy.faults.seen.clear()
        watch = _Prepares(d.address, PULLS)

        def pull(repo: str) -> str:
            with Client(d.address) as c:
                return c.pull(f"{host}/{repo}:1", registry=RegistryOptions(plain_http=True), unpack=True).target.digest

        started = time.monotonic()
        with ThreadPoolExecutor(PULLS) as pool:
            got = dict(zip(images, pool.map(pull, images), strict=True))
        took.append(time.monotonic() - started)
        assert got == {repo: img.digest for repo, img in images.items()}
        prepares = watch.join()

        gets = _blob_gets(faulty_proxy)
        wanted = {b for img in images.values() for b in img.blobs if b != img.digest}  # configs and layers
        twice = {b: n for b, n in gets.items() if n != 1}
        assert set(gets) == wanted and not twice, twice
        assert set(prepares) == _chains(images) and all(n == 1 for n in prepares.values()), (prepares, watch.topics)
        _check_pulled(d, images, host)
        print(f"{PULLS} parallel pulls took {took[-1]:.1f} s")
        with Client(d.address) as c:
            for repo in images:
                c.images.delete(f"{host}/{repo}:1")
        assert_clean(d.address)
    record(
        "load",
        f"{PULLS} parallel pulls of overlapping images (Transfer service)",
        rounds * PULLS,
        "each blob fetched once, each layer unpacked once, all complete",
        problems,
    )


def test_parallel_ctr_pulls_fetch_each_blob_once(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    """ctr pulls in the client; containerd's ingest ref locking makes the second writer of a blob wait for the first."""
    d = pycontainerd_daemon
    n = scale(8, PULLS)
    images = _images(registry, n)
    host = faulty_proxy.host
    procs = [
        subprocess.Popen(
            ["ctr", "-a", d.address, "images", "pull", "--plain-http", f"{host}/{repo}:1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")},
        )
        for repo in images
    ]
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=180)
        finally:
            p.kill()
        if p.returncode:
            errors.append(err.decode(errors="replace")[-500:])
    assert not errors, errors
    gets = _blob_gets(faulty_proxy)
    twice = {b: c for b, c in gets.items() if c != 1}
    assert not twice, twice
    _check_pulled(d, images, host)
    assert ctr(d.address, "images", "check").returncode == 0
    record(
        "load", f"{n} parallel ctr pulls of overlapping images (client side)", n, "each blob fetched once, all unpacked"
    )
