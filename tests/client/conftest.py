"""Fixtures of the client tests: every test runs against each daemon there is.

Real containerd always; pycontainerd's own daemon too once
``tests/fixtures/daemon.py`` provides ``pycontainerd_daemon``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pycontainerd.client import Client

DAEMONS = [pytest.param("containerd", marks=pytest.mark.containerd)]
if (Path(__file__).parent.parent / "fixtures" / "daemon.py").exists():
    DAEMONS.append(pytest.param("pycontainerd"))

NAMESPACE = "client-tests"


@pytest.fixture(params=DAEMONS)
def daemon_kind(request: pytest.FixtureRequest) -> str:
    """Which daemon the test runs against: ``containerd`` or ``pycontainerd``."""
    return str(request.param)


@pytest.fixture
def address(request: pytest.FixtureRequest, daemon_kind: str) -> str:
    """The socket of a freshly started daemon."""
    name = "containerd" if daemon_kind == "containerd" else "pycontainerd_daemon"
    return str(request.getfixturevalue(name).address)


@pytest.fixture
def client(address: str) -> Iterator[Client]:
    with Client(address, namespace=NAMESPACE, timeout=20) as c:
        yield c


@pytest.fixture
def leased(client: Client) -> Iterator[Client]:
    """A client whose writes a lease protects from the collector for the whole test."""
    with client.lease(expire=timedelta(hours=1)) as c:
        yield c
