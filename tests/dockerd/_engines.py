"""pydockerd's other ways to reach containerd, for tests: embedded (local mode) and over Debian's containerd.

The shared ``pydockerd`` fixture (conftest) runs pydockerd in remote mode
over a fresh pycontainerd.  A test module that wants another mode imports
one of the fixture pairs below under the names ``pydockerd`` and
``pycontainerd_daemon``; pytest then resolves the flows it re-collects
(imported test functions run with the fixtures of the module that imports
them) against that mode.  ``pycontainerd_daemon`` names whatever containerd
pydockerd is over, as a :class:`ContainerdSide`: where its state lies and
its socket, which is all the container tests' clean-up checks read.

Whatever a test does, teardown stops pydockerd (SIGTERM), then removes what
outlives it by design — shims and their containers, rootfs mounts — and the
directories.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dockerd.conftest import Pydockerd
from tests.fixtures._shims import private_dir
from tests.fixtures.containerd import Containerd

__all__ = [
    "ContainerdSide",
    "LocalPydockerd",
    "local_pydockerd",
    "local_side",
    "pydockerd_over_containerd",
    "real_containerd_side",
]


@dataclass(frozen=True)
class ContainerdSide:
    """The containerd a pydockerd is over: directory holding its files, state directory, socket."""

    base: Path
    state: Path
    address: str


class LocalPydockerd(Pydockerd):
    """pydockerd in local mode: pycontainerd's services in its own process, no containerd beside it.

    ``containerd`` is the embedded server's socket (``<exec-root>/containerd/containerd.sock``),
    known before the start, so that ``ctr -a`` and test clients reach the same daemon.
    """

    def __init__(self, base: Path) -> None:
        self.exec_root = base / "run"
        super().__init__(base, str(self.exec_root / "containerd" / "containerd.sock"))
        self.state = self.exec_root / "containerd" / "daemon"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "pydockerd", "-H", self.host, "--containerd", "embedded",
            "--data-root", str(self.base / "root"), "--exec-root", str(self.exec_root),
        ]  # fmt: skip


@pytest.fixture(name="pydockerd")
def local_pydockerd() -> Iterator[LocalPydockerd]:
    """pydockerd in local mode on a private directory (socket, data root, exec root)."""
    with private_dir("pddl-") as base:
        d = LocalPydockerd(base)
        try:
            yield d.start()
        finally:
            d.stop()


@pytest.fixture(name="pycontainerd_daemon")
def local_side(pydockerd: LocalPydockerd) -> ContainerdSide:
    """The embedded containerd of the local-mode ``pydockerd``."""
    return ContainerdSide(pydockerd.base, pydockerd.state, pydockerd.containerd)


@pytest.fixture(name="pydockerd")
def pydockerd_over_containerd(containerd: Containerd) -> Iterator[Pydockerd]:
    """pydockerd in remote mode over a fresh Debian containerd (the fixture's teardown reaps its shims)."""
    base = Path(tempfile.mkdtemp(prefix="pddc-"))
    d = Pydockerd(base, containerd.address)
    try:
        yield d.start()
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(name="pycontainerd_daemon")
def real_containerd_side(containerd: Containerd) -> ContainerdSide:
    """The real containerd under ``pydockerd_over_containerd``."""
    return ContainerdSide(containerd.root.parent, containerd.state, containerd.address)
