"""SIGKILL the daemon at random points of pull, unpack, snapshot commit, image delete and GC; nothing may rot.

After each kill, ``pyctr check`` runs on the root as the crash left it (the
daemon stopped): only leftovers the daemon removes itself when it starts
again may be there (see ``support.HEALED_AT_START``), never a record that
names something missing or a blob that does not match its digest.  Then the
daemon starts again on the same root, the interrupted operation is repeated
to completion and its result checked.  What a killed pull or unpack leaves
under its lease (ingests, active snapshots) is kept, as containerd keeps it,
until the lease expires, and is reused by the repeat.  At the end every
image and lease is removed and collected: ``pyctr check`` must then be
clean, and the root must hold no blob, ingest or snapshot directory at all.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.errors import NotFound
from tests.distribution.support import seed
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.reliability.soak import record, scale

from .support import (
    SEED,
    KillStats,
    assert_clean,
    assert_only_healed,
    kill_during,
    layered_image,
    pyctr,
    pyctr_argv,
    store_is_empty,
    timed,
)

IMAGES = 3
POINTS = {
    "pull": scale(3, 30),
    "unpack": scale(2, 20),
    "snapshot commit": scale(2, 20),
    "image delete": scale(2, 15),
    "garbage collection": scale(2, 15),
}
COMMIT_CHAIN = 40


@pytest.fixture(scope="module")
def refs() -> Iterator[list[str]]:
    """Three seven-layer images in a registry of the module's own, sharing their busybox layer."""
    registry = Registry("plain").start()
    tmp = Path(tempfile.mkdtemp(prefix="pcd-crash-"))
    try:
        names = []
        for n in range(IMAGES):
            seed(registry, layered_image(n), f"crash/img{n}:1", tmp)
            names.append(f"{registry.host}/crash/img{n}:1")
        yield names
    finally:
        registry.stop()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


@pytest.fixture
def daemon(pycontainerd_daemon_factory: DaemonFactory) -> PycontainerdDaemon:
    return pycontainerd_daemon_factory()


def _rng(op: str) -> random.Random:
    return random.Random(f"{SEED}-{op}")


def collect_everything(d: PycontainerdDaemon) -> None:
    """Remove every image and lease, then wait for the collector."""
    with Client(d.address) as c:
        for img in c.images.list():
            c.images.delete(img.name)
        for lease in c.leases.list():
            c.leases.delete(lease.id)
        held = c.leases.create("final-collection")
        c.leases.delete(held.id, sync=True)


def finish(d: PycontainerdDaemon, op: str, stats: KillStats) -> None:
    collect_everything(d)
    d.stop()
    assert_clean(d, f"{op}: at the end")
    assert store_is_empty(d) == [], f"{op} (seed {SEED}): left after collecting everything"
    record(
        area="crash consistency",
        tried=f"SIGKILL of the daemon during {op}",
        count=stats.points,
        held="pyctr check clean after restart; operation repeated to completion; nothing left once collected",
        problems=0,
    )
    # Most kills must land inside the operation, or the test proves little.
    assert stats.interrupted * 2 >= stats.points, f"{op}: only {stats.interrupted} of {stats.points} interrupted"


def assert_unpacked(d: PycontainerdDaemon, ref: str) -> None:
    out = pyctr(d, "images", "unpack", ref).stdout
    assert "0 of 7 layers unpacked now" in out, f"seed {SEED}: {out}"


def restart_after_kill(d: PycontainerdDaemon, context: str, stats: KillStats) -> None:
    stats.leftovers += len(assert_only_healed(d, context))
    d.start()


def timeout_for(op: str) -> int:
    return 60 + 30 * POINTS[op]


@pytest.mark.timeout(timeout_for("pull"))
def test_kill_during_pull(daemon: PycontainerdDaemon, refs: list[str]) -> None:
    d, rnd, stats = daemon, _rng("pull"), KillStats()
    took = timed(pyctr_argv(d, "images", "pull", "-q", refs[0]))
    collect_everything(d)
    for i in range(POINTS["pull"]):
        ref = refs[i % IMAGES]
        local = ["--local"] if rnd.random() < 0.3 else []
        kill_during(d, pyctr_argv(d, "images", "pull", "-q", *local, ref), rnd.uniform(0.05, 0.95) * took, stats)
        restart_after_kill(d, f"pull {i} of {ref} {local}", stats)
        pyctr(d, "images", "pull", "-q", *local, ref)
        assert_unpacked(d, ref)
        collect_everything(d)
    finish(d, "pull", stats)


@pytest.mark.timeout(timeout_for("unpack"))
def test_kill_during_unpack(daemon: PycontainerdDaemon, refs: list[str]) -> None:
    d, rnd, stats = daemon, _rng("unpack"), KillStats()
    pyctr(d, "images", "pull", "-q", "--skip-unpack", refs[0])
    took = timed(pyctr_argv(d, "images", "unpack", refs[0]))
    collect_everything(d)
    for i in range(POINTS["unpack"]):
        ref = refs[i % IMAGES]
        pyctr(d, "images", "pull", "-q", "--skip-unpack", ref)
        kill_during(d, pyctr_argv(d, "images", "unpack", ref), rnd.uniform(0.05, 0.95) * took, stats)
        restart_after_kill(d, f"unpack {i} of {ref}", stats)
        pyctr(d, "images", "unpack", ref)
        assert_unpacked(d, ref)
        collect_everything(d)
    finish(d, "unpack", stats)


# A chain of committed snapshots made under a lease, resumable: names committed already are kept, an active
# snapshot a killed run left is removed and made again.  Prints "ok" once the whole chain is there.
_COMMITS = """
import sys
from pycontainerd.client import Client
from pycontainerd.errors import NotFound
address, n = sys.argv[1], int(sys.argv[2])
with Client(address) as c, c.lease() as leased:
    sn = leased.snapshotter("overlayfs")
    parent = ""
    for i in range(n):
        name, key = f"layer-{i}", f"work-{i}"
        try:
            sn.stat(name)
        except NotFound:
            try:
                sn.remove(key)
            except NotFound:
                pass
            sn.prepare(key, parent, {"step": str(i)})
            sn.commit(name, key, {"step": str(i)})
        parent = name
    for i in range(n):
        info = sn.stat(f"layer-{i}")
        assert info.kind.label == "Committed" and info.parent == (f"layer-{i - 1}" if i else ""), info
    print("ok")
"""


@pytest.mark.timeout(timeout_for("snapshot commit"))
def test_kill_during_snapshot_commits(daemon: PycontainerdDaemon) -> None:
    d, rnd, stats = daemon, _rng("commit"), KillStats()
    argv = [sys.executable, "-c", _COMMITS, d.address, str(COMMIT_CHAIN)]
    took = timed(argv)
    collect_everything(d)
    for i in range(POINTS["snapshot commit"]):
        kill_during(d, argv, rnd.uniform(0.2, 0.95) * took, stats)  # the first fifth is the client starting
        restart_after_kill(d, f"commit chain {i}", stats)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert r.stdout.strip() == "ok", f"seed {SEED}: {r.stderr}"
        collect_everything(d)
    finish(d, "snapshot commit", stats)


@pytest.mark.timeout(timeout_for("image delete"))
def test_kill_during_image_delete(daemon: PycontainerdDaemon, refs: list[str]) -> None:
    d, rnd, stats = daemon, _rng("delete"), KillStats()
    for ref in refs:
        pyctr(d, "images", "pull", "-q", ref)
    took = timed(pyctr_argv(d, "images", "rm", "--sync", *refs))
    for i in range(POINTS["image delete"]):
        for ref in refs:
            pyctr(d, "images", "pull", "-q", ref)
        kill_during(d, pyctr_argv(d, "images", "rm", "--sync", *refs), rnd.uniform(0.05, 0.95) * took, stats)
        restart_after_kill(d, f"image delete {i}", stats)
        left = pyctr(d, "images", "ls", "-q").stdout.split()
        if left:
            pyctr(d, "images", "rm", "--sync", *left)
        with Client(d.address) as c:
            assert c.images.list() == []
            assert list(c.content.walk()) == [], f"seed {SEED}: content left after the delete"
            assert list(c.snapshotter("overlayfs").walk()) == [], f"seed {SEED}: snapshots left after the delete"
    finish(d, "image delete", stats)


def _pull_under_lease(d: PycontainerdDaemon, refs: list[str]) -> str:
    """Pull and unpack every image under a lease of its own, then drop the image records: only the lease holds."""
    with Client(d.address) as c:
        lease = c.leases.create_expiring(timedelta(hours=1))
        leased = c.with_lease(lease.id)
        for ref in refs:
            leased.pull(ref, unpack=True)
        for img in c.images.list():
            c.images.delete(img.name)
    return lease.id


@pytest.mark.timeout(timeout_for("garbage collection"))
def test_kill_during_garbage_collection(daemon: PycontainerdDaemon, refs: list[str]) -> None:
    d, rnd, stats = daemon, _rng("gc"), KillStats()
    lease = _pull_under_lease(d, refs)
    took = timed(pyctr_argv(d, "leases", "rm", "--sync", lease))
    for i in range(POINTS["garbage collection"]):
        lease = _pull_under_lease(d, refs)
        kill_during(d, pyctr_argv(d, "leases", "rm", "--sync", lease), rnd.uniform(0.05, 0.95) * took, stats)
        restart_after_kill(d, f"collection {i}", stats)
        with Client(d.address) as c:
            try:
                c.leases.delete(lease, sync=True)
            except NotFound:
                collect_everything(d)
            assert list(c.content.walk()) == [], f"seed {SEED}: content left after the collection"
            assert list(c.snapshotter("overlayfs").walk()) == [], f"seed {SEED}: snapshots left after the collection"
    finish(d, "garbage collection", stats)
