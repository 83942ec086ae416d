"""Fixtures of the client tests: every test runs against each daemon there is.

Real containerd always; pycontainerd's own daemon too once
``tests/fixtures/daemon.py`` exists.  A daemon serves a whole test module
(pycontainerd takes about a second to start) and each test works in a
namespace of its own, which isolates images, leases, content and ingests
just as well as a fresh root would.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pycontainerd.client import Client
from pycontainerd.errors import ContainerdError
from tests.fixtures.containerd import run_containerd

DAEMONS = [pytest.param("containerd", marks=pytest.mark.containerd), pytest.param("pycontainerd")]

_namespaces = itertools.count()


@pytest.fixture(scope="module", params=DAEMONS)
def daemon(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(kind, address) of a daemon started for the module."""
    if request.param == "containerd":
        with run_containerd() as ctrd:
            yield "containerd", ctrd.address
        return
    from tests.fixtures.daemon import PycontainerdDaemon

    base = Path(tempfile.mkdtemp(prefix="pcd-"))
    pcd = PycontainerdDaemon(base)
    try:
        pcd.start()
        yield "pycontainerd", pcd.address
    finally:
        try:
            pcd.stop()
        except Exception:
            pcd.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon_kind(daemon: tuple[str, str]) -> str:
    """Which daemon the test runs against: ``containerd`` or ``pycontainerd``."""
    return daemon[0]


@pytest.fixture
def address(daemon: tuple[str, str]) -> str:
    return daemon[1]


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"test-{next(_namespaces)}"


def _empty(c: Client) -> None:
    """Remove everything the test left in its namespace and have the collector sweep it.

    Namespaces alone do not isolate blobs in containerd: a writer whose
    expected digest is stored in any namespace starts from that blob.  So
    each test's blobs must be gone from the backend before the next begins.
    """
    for status in c.content.list_statuses():
        with contextlib.suppress(ContainerdError):
            c.content.abort(status.ref)
    for image in c.images.list():
        with contextlib.suppress(ContainerdError):
            c.images.delete(image.name)
    for info in list(c.content.walk()):
        with contextlib.suppress(ContainerdError):
            c.content.delete(info.digest)
    for lease in c.leases.list():
        with contextlib.suppress(ContainerdError):
            c.leases.delete(lease.id)
    # A synchronous lease delete runs the collector before it answers.
    c.leases.create("sweep")
    c.leases.delete("sweep", sync=True)


@pytest.fixture
def client(address: str, namespace: str) -> Iterator[Client]:
    with Client(address, namespace=namespace, timeout=20) as c:
        yield c
        _empty(c)


@pytest.fixture
def leased(client: Client) -> Iterator[Client]:
    """A client whose writes a lease protects from the collector for the whole test."""
    with client.lease(expire=timedelta(hours=1)) as c:
        yield c
