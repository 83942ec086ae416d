"""The snapshotter suite through the Snapshots gRPC service: the proxy against a running pycontainerd.

One daemon serves the module; each test works in a namespace of its own,
which is as fresh as a new snapshotter for everything the suite checks.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import errors
from pycontainerd.client import Client
from pycontainerd.snapshots import Snapshotter
from pycontainerd.snapshots.proxy import ProxySnapshotter
from tests.conformance.snapshots import SnapshotterSuite
from tests.fixtures.daemon import PycontainerdDaemon

_names = itertools.count()


@pytest.fixture(scope="module")
def daemon() -> Iterator[PycontainerdDaemon]:
    base = Path(tempfile.mkdtemp(prefix="pcd-snap-"))
    d = PycontainerdDaemon(base).start()
    try:
        yield d
    finally:
        try:
            d.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def client(daemon: PycontainerdDaemon) -> Iterator[Client]:
    """A client in a fresh namespace, under a lease: the daemon's collector removes unreferenced snapshots."""
    with Client(daemon.address, namespace=f"t{next(_names)}") as c:
        c.leases.create("suite")
        yield c.with_lease("suite")


class TestProxyOverlay(SnapshotterSuite):
    @pytest.fixture
    def snapshotter(self, client: Client) -> Snapshotter:
        return client.snapshotter("overlayfs")


class TestProxyNative(SnapshotterSuite):
    COPIES_PARENTS = True

    @pytest.fixture
    def snapshotter(self, client: Client) -> Snapshotter:
        return client.snapshotter("native")


def test_unknown_or_missing_snapshotter(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument, match="not loaded"):
        client.snapshotter("zfs").prepare("k")
    with pytest.raises(errors.InvalidArgument, match="snapshotter argument missing"):
        list(ProxySnapshotter(client.connection, "").walk())
    assert client.snapshotter("").name == "overlayfs"  # the client's empty name means the daemon's default


def test_namespaces_do_not_see_each_other(daemon: PycontainerdDaemon) -> None:
    with Client(daemon.address, namespace="ns-a") as ca, Client(daemon.address, namespace="ns-b") as cb:
        ca.leases.create("l")
        cb.leases.create("l")
        a, b = ca.with_lease("l"), cb.with_lease("l")
        a.snapshotter().prepare("same")
        b.snapshotter().prepare("same")
        a.snapshotter().commit("c", "same")
        assert [i.name for i in a.snapshotter().walk()] == ["c"]
        assert [i.name for i in b.snapshotter().walk()] == ["same"]
        with pytest.raises(errors.NotFound):
            b.snapshotter().stat("c")
