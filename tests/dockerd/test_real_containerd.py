"""pydockerd in remote mode over Debian's containerd (1.6): the same CLI flows as over pycontainerd.

The flows are the other modules' own tests, re-collected here with this
module's fixtures, so ``pydockerd`` is a pydockerd over a fresh real
containerd and ``pycontainerd_daemon`` that containerd.  What differs from
pycontainerd: containerd 1.6 has no Transfer service, so pulls and pushes
run in pydockerd (the client's fallback, over the Content and Images APIs);
its snapshotter is ``overlayfs`` and its garbage collector its own; its
shims are ``containerd-shim-runc-v2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.client import Client
from tests.dockerd._containers_support import assert_clean, bb_image, remove_cgroups, wait_for
from tests.dockerd._engines import ContainerdSide, pydockerd_over_containerd, real_containerd_side
from tests.dockerd.conftest import Pydockerd
from tests.dockerd.test_build import test_multistage_build_and_cache, test_scratch_add_archive_and_dockerfile_path
from tests.dockerd.test_cli import (
    test_cli_errors,
    test_pull_images_inspect_tag_rmi,
    test_pull_platform,
    test_version_and_info,
)
from tests.dockerd.test_commit import test_commit_snapshot
from tests.dockerd.test_commit_cli import test_commit_then_run, test_dockerpy_commit
from tests.dockerd.test_containers_cli import (
    test_bad_input as test_containers_bad_input,
)
from tests.dockerd.test_containers_cli import (
    test_exec,
    test_lifecycle_commands,
    test_logs_follow_and_options,
    test_ps_filters,
    test_records_survive_a_pydockerd_restart,
    test_run_detached_logs_stop_rm,
    test_run_interactive_terminal,
    test_run_rm_output_and_exit_code,
    test_settings_reach_the_container,
    test_stdin_piped,
)
from tests.dockerd.test_containers_dockerpy import (
    test_attach_socket_frames_and_stdin,
    test_events_and_wait_conditions,
    test_exec_api,
    test_run_wait_logs_remove,
)
from tests.dockerd.test_cp import test_cp_both_ways, test_cp_stays_inside_the_root, test_dockerpy_archive
from tests.dockerd.test_df import test_container_prune, test_system_df
from tests.dockerd.test_dockerpy import test_image_flows
from tests.dockerd.test_images_archive import test_load_what_skopeo_writes, test_save_format, test_save_rmi_load
from tests.dockerd.test_images_platform import test_platforms
from tests.dockerd.test_images_prune import test_cli_prune
from tests.dockerd.test_images_push import test_cli_push_then_skopeo, test_push_partial_multi_platform
from tests.fixtures._proc import command_lines
from tests.fixtures._shims import mounts_under

__all__ = [  # the shared flows, run here over the real containerd
    "bb_image",
    "pydockerd_over_containerd",
    "real_containerd_side",
    "test_attach_socket_frames_and_stdin",
    "test_cli_errors",
    "test_cli_prune",
    "test_cli_push_then_skopeo",
    "test_commit_snapshot",
    "test_commit_then_run",
    "test_container_prune",
    "test_containers_bad_input",
    "test_cp_both_ways",
    "test_cp_stays_inside_the_root",
    "test_dockerpy_archive",
    "test_dockerpy_commit",
    "test_events_and_wait_conditions",
    "test_exec",
    "test_exec_api",
    "test_image_flows",
    "test_lifecycle_commands",
    "test_load_what_skopeo_writes",
    "test_logs_follow_and_options",
    "test_multistage_build_and_cache",
    "test_platforms",
    "test_ps_filters",
    "test_pull_images_inspect_tag_rmi",
    "test_pull_platform",
    "test_push_partial_multi_platform",
    "test_records_survive_a_pydockerd_restart",
    "test_run_detached_logs_stop_rm",
    "test_run_interactive_terminal",
    "test_run_rm_output_and_exit_code",
    "test_run_wait_logs_remove",
    "test_save_format",
    "test_save_rmi_load",
    "test_scratch_add_archive_and_dockerfile_path",
    "test_settings_reach_the_container",
    "test_stdin_piped",
    "test_system_df",
    "test_version_and_info",
]


@pytest.fixture(autouse=True)
def _cgroups() -> Iterator[None]:
    yield
    remove_cgroups()


def test_the_containerd_is_debians(pydockerd: Pydockerd, pycontainerd_daemon: ContainerdSide) -> None:
    """The flows above do run over containerd 1.6: no Transfer service, overlayfs, runc v2 shims."""
    with Client(pycontainerd_daemon.address) as c:
        version, _ = c.version()
        assert version.startswith("1.6")
        assert c.plugins(["id==transfer"]) == []
    info = pydockerd.docker("info", "--format", "{{.Driver}} {{.Containerd.Address}}").stdout.split()
    assert info == ["overlayfs", pycontainerd_daemon.address]


def shims_of(address: str) -> list[int]:
    """Pids of the containerd's ``containerd-shim-runc-v2`` processes (they name its socket)."""
    return [pid for pid, argv in command_lines() if argv[0].endswith("containerd-shim-runc-v2") and address in argv]


def test_nothing_left_behind(pydockerd: Pydockerd, pycontainerd_daemon: ContainerdSide, bb: str) -> None:
    """What the shared clean-up check looks for with pycontainerd's shims, here with containerd's."""
    side = pycontainerd_daemon
    assert pydockerd.docker("run", "--rm", bb, "echo", "hi").stdout == "hi\n"
    id = pydockerd.docker("run", "-d", bb, "sleep", "1000").stdout.strip()
    assert len(shims_of(side.address)) == 1
    pydockerd.docker("rm", "-f", id)
    wait_for(lambda: not shims_of(side.address), 10.0, "shims to exit")
    assert [m for m in mounts_under(side.base) if m.endswith("/rootfs")] == []
    assert not (Path("/run/containerd/runc") / "moby" / id).exists()
    assert_clean(pydockerd, side, [id])  # type: ignore[arg-type]


def test_restart_adopts_running_container(pydockerd: Pydockerd, pycontainerd_daemon: ContainerdSide, bb: str) -> None:
    """pydockerd restarts over a containerd that kept running: the container is found again, its output read."""
    script = "trap 'echo bye; exit 143' TERM; echo started; while true; do sleep 0.1; done"
    id = pydockerd.docker("run", "-d", "--name", "keep", bb, "sh", "-c", script).stdout.strip()
    wait_for(lambda: "started" in pydockerd.docker("logs", "keep").stdout, what="output")
    pid = pydockerd.docker("inspect", "-f", "{{.State.Pid}}", "keep").stdout.strip()
    pydockerd.stop()
    pydockerd.start()
    assert pydockerd.docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "keep").stdout.split() == [
        "running",
        pid,
    ]
    assert pydockerd.docker("stop", "keep").stdout.strip() == "keep"
    assert pydockerd.docker("inspect", "-f", "{{.State.ExitCode}}", "keep").stdout.strip() == "143"
    assert pydockerd.docker("logs", "keep").stdout == "started\nbye\n"
    pydockerd.docker("rm", "keep")
    assert_clean(pydockerd, pycontainerd_daemon, [id])  # type: ignore[arg-type]
