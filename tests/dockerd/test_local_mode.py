"""pydockerd in local mode: pycontainerd's services inside pydockerd's process, no containerd daemon beside it.

The docker CLI pulls, runs and removes through it; the embedded containerd
keeps the images across a restart of pydockerd, ``ctr`` inspects them on
the embedded socket, and a container left running when pydockerd stops is
found again (its shim reconnected) at the next start, after a crash too.  The shared flows of
the other modules run here too, re-collected with this module's fixtures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distribution.support import seed
from tests.dockerd._containers_support import (
    assert_clean,
    bb_image,  # noqa: F401 - the fixture ``bb``
    busybox_image,
    remove_cgroups,
    wait_for,
)
from tests.dockerd._engines import ContainerdSide, LocalPydockerd, local_pydockerd, local_side
from tests.dockerd.test_build import test_multistage_build_and_cache
from tests.dockerd.test_cli import test_pull_images_inspect_tag_rmi, test_version_and_info
from tests.dockerd.test_commit import test_commit_snapshot
from tests.dockerd.test_containers_cli import (
    test_exec,
    test_records_survive_a_pydockerd_restart,
    test_run_detached_logs_stop_rm,
)
from tests.dockerd.test_containers_dockerpy import test_run_wait_logs_remove
from tests.dockerd.test_images_archive import test_save_rmi_load
from tests.dockerd.test_images_push import test_cli_push_then_skopeo
from tests.fixtures._proc import command_lines
from tests.fixtures._shims import shims_under
from tests.fixtures.registry import Registry

__all__ = [  # the shared flows, run here in local mode
    "local_pydockerd",
    "local_side",
    "test_cli_push_then_skopeo",
    "test_commit_snapshot",
    "test_exec",
    "test_multistage_build_and_cache",
    "test_pull_images_inspect_tag_rmi",
    "test_records_survive_a_pydockerd_restart",
    "test_run_detached_logs_stop_rm",
    "test_run_wait_logs_remove",
    "test_save_rmi_load",
    "test_version_and_info",
]

CTR = "/usr/bin/ctr"
NS = "moby"


@pytest.fixture(autouse=True)
def _cgroups() -> Iterator[None]:
    yield
    remove_cgroups()


def ctr(d: LocalPydockerd, *args: str) -> str:
    argv = [CTR, "-a", d.containerd, "-n", NS, *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def containerd_daemons_under(base: Path) -> list[int]:
    """Processes other than pydockerd and its shims that use ``base``: a containerd would be one."""
    prefix = str(base)
    pids = []
    for pid, argv in command_lines():
        if any(prefix in a for a in argv) and not any("pydockerd" in a or "runtime.shim" in a for a in argv):
            pids.append(pid)
    return pids


def test_pull_run_restart_rmi(pydockerd: LocalPydockerd, pycontainerd_daemon: ContainerdSide, registry: Registry,
                              tmp_path: Path) -> None:  # fmt: skip
    img = busybox_image()
    seed(registry, img, "local/bb:1", tmp_path)
    ref = f"{registry.host}/local/bb:1"
    config_digest = str(img.manifest["config"]["digest"])  # type: ignore[index]
    assert containerd_daemons_under(pydockerd.base) == []
    info = json.loads(pydockerd.docker("info", "--format", "{{json .}}").stdout)
    assert info["Containerd"]["Address"] == pydockerd.containerd

    assert "Pull complete" in pydockerd.docker("pull", ref).stdout
    rows = pydockerd.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
    assert rows == [f"{ref} {config_digest[7:19]}"]
    r = pydockerd.docker("run", "--rm", ref, "sh", "-c", "echo hello; exit 3", ok=False)
    assert (r.returncode, r.stdout) == (3, "hello\n")
    assert pydockerd.docker("ps", "-aq").stdout == ""
    assert ctr(pydockerd, "images", "ls", "-q").split() == [ref]
    assert ctr(pydockerd, "containers", "ls", "-q") == ""

    pydockerd.stop()
    assert not os.path.exists(pydockerd.socket)
    assert not os.path.exists(pydockerd.containerd)  # the embedded server went with pydockerd
    pydockerd.start()
    rows = pydockerd.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
    assert rows == [f"{ref} {config_digest[7:19]}"]
    assert ctr(pydockerd, "images", "ls", "-q").split() == [ref]
    assert pydockerd.docker("run", "--rm", ref, "echo", "again").stdout == "again\n"

    out = pydockerd.docker("rmi", ref).stdout
    assert f"Untagged: {ref}" in out and f"Deleted: {config_digest}" in out
    assert ctr(pydockerd, "images", "ls", "-q") == ""
    assert pydockerd.docker("images", "-q").stdout == ""
    assert_clean(pydockerd, pycontainerd_daemon, [])  # type: ignore[arg-type]


def test_running_container_survives_restart(pydockerd: LocalPydockerd, pycontainerd_daemon: ContainerdSide,
                                            bb: str) -> None:  # fmt: skip
    script = "trap 'echo bye; exit 143' TERM; echo started; while true; do sleep 0.1; done"
    id = pydockerd.docker("run", "-d", "--name", "keep", bb, "sh", "-c", script).stdout.strip()
    wait_for(lambda: "started" in pydockerd.docker("logs", "keep").stdout, what="output")
    pid = int(pydockerd.docker("inspect", "-f", "{{.State.Pid}}", "keep").stdout)

    pydockerd.stop()
    [(shim, _)] = shims_under(pydockerd.base)  # the shim and its container carry on without pydockerd
    os.kill(shim, 0)
    os.kill(pid, 0)
    pydockerd.start()

    assert pydockerd.docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "keep").stdout.split() == [
        "running",
        str(pid),
    ]
    assert ctr(pydockerd, "tasks", "ls").split()[3:6] == [id, str(pid), "RUNNING"]
    assert pydockerd.docker("exec", "keep", "echo", "inside").stdout == "inside\n"

    assert pydockerd.proc is not None
    pydockerd.proc.kill()  # a crash: no clean-up of either socket, the root lock dropped by the kernel
    pydockerd.proc.wait()
    os.kill(shim, 0)
    pydockerd.start()
    assert pydockerd.docker("inspect", "-f", "{{.State.Status}}", "keep").stdout.strip() == "running"
    assert pydockerd.docker("stop", "keep").stdout.strip() == "keep"
    assert pydockerd.docker("inspect", "-f", "{{.State.ExitCode}}", "keep").stdout.strip() == "143"
    assert pydockerd.docker("logs", "keep").stdout == "started\nbye\n"
    pydockerd.docker("rm", "keep")
    assert_clean(pydockerd, pycontainerd_daemon, [id])  # type: ignore[arg-type]


def test_start_errors(pydockerd: LocalPydockerd) -> None:
    """A second pydockerd on the same data root, or a relative root: one line on stderr, exit 1, nothing touched."""
    base = pydockerd.base
    second = [sys.executable, "-m", "pydockerd", "-H", f"unix://{base}/second.sock",
              "--data-root", str(base / "root"), "--exec-root", str(base / "run2")]  # fmt: skip
    r = subprocess.run(second, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("pydockerd: ") and "another daemon is using root" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (base / "second.sock").exists()
    assert pydockerd.answers()

    r = subprocess.run(
        [*second[:5], "--data-root", "relative/root"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (r.returncode, r.stderr.strip()) == (1, "pydockerd: --data-root relative/root: want an absolute path")
