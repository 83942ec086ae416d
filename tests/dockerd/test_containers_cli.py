"""The real docker CLI runs containers through pydockerd: run, logs, stop, ps, inspect, rm, and their errors.

pydockerd runs over a real pycontainerd, whose shims drive runc on
overlayfs; each test ends by checking that what it removed left nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from pydockerd.containers._spec import BRIDGE_WARNING
from tests.dockerd._containers_support import (
    assert_clean,
    bb_image,  # noqa: F401 - the fixture ``bb``
    remove_cgroups,
    wait_for,
)
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.daemon import PycontainerdDaemon


@pytest.fixture(autouse=True)
def _cgroups() -> Iterator[None]:
    yield
    remove_cgroups()


def test_run_rm_output_and_exit_code(pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str) -> None:
    r = pydockerd.docker("run", "--rm", bb, "echo", "hi")
    assert r.stdout == "hi\n"
    r = pydockerd.docker("run", "--rm", bb, "sh", "-c", "echo out; echo err >&2; exit 3", ok=False)
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert r.stderr == f"WARNING: {BRIDGE_WARNING}\nerr\n"  # the create answer's warning, as the CLI shows it
    assert pydockerd.docker("ps", "-aq").stdout == ""
    assert_clean(pydockerd, pycontainerd_daemon, [])


def test_run_detached_logs_stop_rm(pydockerd: Pydockerd, pycontainerd_daemon: PycontainerdDaemon, bb: str) -> None:
    script = "trap 'echo bye; exit 143' TERM; echo started; while true; do sleep 0.1; done"
    id = pydockerd.docker("run", "-d", "--name", "web", bb, "sh", "-c", script).stdout.strip()
    assert len(id) == 64
    wait_for(lambda: "started" in pydockerd.docker("logs", "web").stdout, what="output")
    rows = pydockerd.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Status}}").stdout.split("\n")
    assert rows[0].startswith(f"{id[:12]} web {bb} Up ")
    [doc] = json.loads(pydockerd.docker("inspect", "web").stdout)
    assert doc["Id"] == id
    assert doc["Name"] == "/web"
    assert doc["State"]["Status"] == "running"
    assert doc["State"]["Pid"] > 0
    assert doc["Path"] == "sh"
    assert doc["Args"] == ["-c", script]
    assert doc["Config"]["Image"] == bb
    assert doc["Config"]["Labels"] == {"from": "image"}
    assert doc["Image"].startswith("sha256:")

    r = pydockerd.docker("run", "--name", "web", bb, "true", ok=False)
    assert r.returncode == 125
    assert (
        f'Conflict. The container name "/web" is already in use by container "{id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    ) in r.stderr
    r = pydockerd.docker("rm", "web", ok=False)
    assert 'cannot remove container "/web": container is running' in r.stderr

    t0 = time.monotonic()
    assert pydockerd.docker("stop", "web").stdout.strip() == "web"
    assert time.monotonic() - t0 < 5
    assert pydockerd.docker("logs", "web").stdout == "started\nbye\n"
    assert pydockerd.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web").stdout.split() == [
        "exited",
        "143",
    ]
    assert pydockerd.docker("ps", "-q").stdout == ""
    assert pydockerd.docker("ps", "-aq").stdout.strip() == id[:12]
    pydockerd.docker("rm", "web")
    assert pydockerd.docker("ps", "-aq").stdout == ""
    assert_clean(pydockerd, pycontainerd_daemon, [id])
