"""Specs we generate, run for real by runc and crun: the process, the filesystem and the limits are what we asked.

Each test builds a bundle whose rootfs holds Debian's static busybox and
runs it with ``<runtime> run`` (no terminal, output captured), under a
private state root and a cgroup named after a fresh namespace, both removed
afterwards.  Inside, /sys/fs/cgroup is mounted (a ``cgroup`` mount, as the
CRI plugin adds) so the container can read its own limits.

This host has hybrid cgroups (v1 controllers, and a v2 hierarchy holding
hugetlb).  runc uses the v1 controllers; crun 1.8 refuses hybrid mode when
the v2 hierarchy has any controller, so crun runs in a private mount
namespace with the v2 hierarchy unmounted, where it sees plain cgroup v1.
The host's mounts are untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycontainerd.oci import (
    DEFAULT_CAPABILITIES,
    Spec,
    generate,
    spec_to_json,
    with_default_unix_devices,
    with_env,
    with_hostname,
    with_image_config,
    with_memory_limit,
    with_mounts,
    with_pids_limit,
    with_process_args,
    with_process_cwd,
    with_readonly_rootfs,
    with_user,
)
from pycontainerd.oci.caps import capability_bitmap
from pycontainerd.oci.spec import SpecOpt

from .conftest import make_rootfs

BUSYBOX = "/bin/busybox"
RUNTIMES = {"runc": "/usr/sbin/runc", "crun": "/usr/bin/crun"}
CGROUP_ROOT = Path("/sys/fs/cgroup")
APPLETS = ("sh", "id", "cat", "echo", "hostname", "touch", "sleep", "grep", "dd", "pwd")
CGROUP_MOUNT: dict[str, Any] = {
    "destination": "/sys/fs/cgroup",
    "type": "cgroup",
    "source": "cgroup",
    "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
}
RUN_TIMEOUT = 30


def _v2_has_controllers() -> bool:
    try:
        return bool((CGROUP_ROOT / "unified" / "cgroup.controllers").read_text().strip())
    except OSError:
        return False


@dataclass
class Runtime:
    name: str
    binary: str
    state: Path
    namespace: str

    def argv(self, *args: str) -> list[str]:
        cmd = [self.binary, "--root", str(self.state), *args]
        if self.name == "crun" and _v2_has_controllers():
            script = 'umount /sys/fs/cgroup/unified && exec "$@"'
            return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *cmd]
        return cmd

    def run(self, bundle: Path, spec: Spec) -> subprocess.CompletedProcess[str]:
        """``<runtime> run`` the bundle with ``spec`` as its config.json; deleted afterwards whatever happens."""
        (bundle / "config.json").write_bytes(spec_to_json(spec))
        id = bundle.name
        try:
            return subprocess.run(
                self.argv("run", "--bundle", str(bundle), id),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        finally:
            subprocess.run(self.argv("delete", "--force", id), capture_output=True, timeout=RUN_TIMEOUT, check=False)


def _remove_cgroups(name: str) -> None:
    """Remove the cgroup ``/<name>`` and everything below it from every hierarchy (they hold no process by now)."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    name: str = request.param
    binary = RUNTIMES[name]
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not installed: `make test` installs it first")
    state = Path(tempfile.mkdtemp(prefix=f"oci-{name}-"))  # short: runtimes put sockets in their state
    rt = Runtime(name, binary, state, f"ocitest-{uuid.uuid4().hex[:12]}")
    try:
        yield rt
    finally:
        shutil.rmtree(state, ignore_errors=True)
        _remove_cgroups(rt.namespace)


def make_bundle(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A bundle directory named ``name`` (the container id) with a busybox rootfs; (bundle, rootfs)."""
    bundle = tmp_path / name
    rootfs = make_rootfs(bundle / "rootfs")
    (rootfs / "bin").mkdir()
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    os.chmod(rootfs / "bin" / "busybox", 0o755)
    for applet in APPLETS:
        os.symlink("busybox", rootfs / "bin" / applet)
    for d in ("proc", "dev", "sys", "tmp", "scratch"):
        (rootfs / d).mkdir()
    # runtimes give a tmpfs the mode of the directory it is mounted on
    os.chmod(rootfs / "scratch", 0o1777)
    return bundle, rootfs


def container_id(runtime: Runtime, what: str) -> str:
    return f"{what}-{runtime.name}-{uuid.uuid4().hex[:8]}"


def spec_for(runtime: Runtime, bundle: Path, *opts: SpecOpt) -> Spec:
    return generate(runtime.namespace, bundle.name, with_default_unix_devices(), with_mounts([CGROUP_MOUNT]), *opts)


PROCESS_SCRIPT = """
id
hostname
pwd
echo "FOO=$FOO"
grep -E '^(NoNewPrivs|CapBnd|CapEff):' /proc/self/status
if touch /written 2>/dev/null; then echo root=writable; else echo root=readonly; fi
echo data > /scratch/f && cat /scratch/f
cat /sys/fs/cgroup/memory/memory.limit_in_bytes
cat /sys/fs/cgroup/pids/pids.max
exit 7
"""


def test_process_filesystem_and_limits(runtime: Runtime, tmp_path: Path) -> None:
    bundle, _ = make_bundle(tmp_path, container_id(runtime, "proc"))
    spec = spec_for(
        runtime,
        bundle,
        with_process_args("/bin/sh", "-c", PROCESS_SCRIPT),
        with_env(["PATH=/bin", "FOO=bar baz"]),
        with_user("1000:1000"),
        with_process_cwd("/scratch"),
        with_hostname("boxy"),
        with_readonly_rootfs(),
        with_mounts(["type=tmpfs,src=tmpfs,dst=/scratch,options=nosuid:nodev:size=1m"]),
        with_memory_limit(32 << 20),
        with_pids_limit(32),
    )
    assert "terminal" not in spec["process"]
    r = runtime.run(bundle, spec)
    assert r.returncode == 7, r.stderr
    lines = r.stdout.splitlines()
    assert re.match(r"uid=1000\b.* gid=1000\b", lines[0]), lines
    bounding = capability_bitmap(DEFAULT_CAPABILITIES)
    assert lines[1:] == [
        "boxy",
        "/scratch",
        "FOO=bar baz",
        "CapEff:\t0000000000000000",  # a non-root user keeps no capability
        f"CapBnd:\t{bounding:016x}",
        "NoNewPrivs:\t1",
        "root=readonly",
        "data",
        str(32 << 20),
        "32",
    ], r.stdout + r.stderr


def test_image_user_and_groups(runtime: Runtime, tmp_path: Path) -> None:
    bundle, rootfs = make_bundle(tmp_path, container_id(runtime, "img"))
    config = {
        "Env": ["PATH=/bin", "GREETING=hello"],
        "Cmd": ["/bin/sh", "-c", 'id -u; id -g; id -G; echo "$GREETING"; pwd'],
        "WorkingDir": "/tmp",
        "User": "app",
    }
    r = runtime.run(bundle, spec_for(runtime, bundle, with_image_config(config, rootfs=rootfs)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1000", "1000", "1000 10 2000", "hello", "/tmp"]


def test_memory_limit_kills(runtime: Runtime, tmp_path: Path) -> None:
    """64 MiB of buffer in a 32 MiB container with no swap: the kernel kills dd, the shell reports it."""
    bundle, _ = make_bundle(tmp_path, container_id(runtime, "oom"))
    script = "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?; exit 0"
    spec = spec_for(runtime, bundle, with_process_args("/bin/sh", "-c", script), with_memory_limit(32 << 20))
    r = runtime.run(bundle, spec)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "dd=137", r.stdout + r.stderr  # 128 + SIGKILL


def test_pids_limit_stops_a_fork_bomb(runtime: Runtime, tmp_path: Path) -> None:
    bundle, _ = make_bundle(tmp_path, container_id(runtime, "pids"))
    script = "n=0; while [ $n -lt 50 ]; do sleep 30 & n=$((n+1)); echo $n; done; echo all-started"
    spec = spec_for(runtime, bundle, with_process_args("/bin/sh", "-c", script), with_pids_limit(8))
    r = runtime.run(bundle, spec)
    started = r.stdout.split()
    assert "all-started" not in started, r.stdout
    assert r.returncode != 0
    assert "fork" in r.stderr, r.stderr
    assert len(started) == 7  # the shell is the eighth
