"""Real shims, real runc/crun, real bind mounts: bundles made here, and everything they leave taken down.

Every test gets a :class:`Harness`; whatever a test started — shims,
containers, rootfs mounts, cgroups — is removed in teardown even when the
test failed, and teardown then checks that nothing of it is left in
/proc/mounts or the process table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycontainerd.mount import Mount, unmount_all
from pycontainerd.runtime.shim.client import ShimClient
from pycontainerd.tasks import IO

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "echo", "sleep", "cat", "stty", "tail", "head", "dd", "true", "false", "ls", "env", "wc", "yes"]
CGROUP_PARENT = f"pyctd-rt-{os.getpid()}"
MB = 1 << 20


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rootfs holding busybox and its applets, shared read-only by every container of the session."""
    root = tmp_path_factory.mktemp("busybox-rootfs")
    _fill_rootfs(root)
    return root


def _fill_rootfs(root: Path) -> None:
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc"):
        (root / d).mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")


@pytest.fixture(scope="session")
def runc_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private runc --root for the session; its parent cgroups go at the end."""
    root = tmp_path_factory.mktemp("runc-root")
    yield root
    for parent in [Path("/sys/fs/cgroup") / CGROUP_PARENT, *Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}")]:
        for d in sorted((p for p in parent.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()


def spec(
    id: str,
    args: list[str],
    *,
    terminal: bool = False,
    pid_namespace: bool = True,
    memory: int | None = None,
) -> dict[str, Any]:
    """A minimal OCI spec: own namespaces, /proc, /dev and /sys, read-only root."""
    namespaces = ["ipc", "uts", "mount", "network", *(["pid"] if pid_namespace else [])]
    linux: dict[str, Any] = {
        "cgroupsPath": f"/{CGROUP_PARENT}/{id}",
        "namespaces": [{"type": t} for t in namespaces],
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
    }
    if memory is not None:
        linux["resources"] = {"memory": {"limit": memory, "swap": memory}}
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: ["CAP_KILL", "CAP_CHOWN"] for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "shimtest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "ro"]},
        ],
        "linux": linux,
    }


def process(args: list[str], *, terminal: bool = False) -> dict[str, Any]:
    """An OCI process for exec."""
    return {"terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": args, "env": ["PATH=/bin"], "cwd": "/"}


class Fifos:
    """A client's FIFO set, opened as containerd's clients do before create (never blocking)."""

    def __init__(self, dir: Path, *, stdin: bool = False, stderr: bool = True) -> None:
        dir.mkdir(exist_ok=True)
        self.paths = {name: str(dir / name) for name in ("stdin",) * stdin + ("stdout",) + ("stderr",) * stderr}
        for p in self.paths.values():
            os.mkfifo(p, 0o600)
        # The read sides: O_NONBLOCK needs no writer; the stdin writer: O_RDWR needs no reader.
        self.out = os.open(self.paths["stdout"], os.O_RDONLY | os.O_NONBLOCK)
        self.err = os.open(self.paths["stderr"], os.O_RDONLY | os.O_NONBLOCK) if stderr else -1
        self.stdin = os.open(self.paths["stdin"], os.O_RDWR) if stdin else -1

    def io(self, terminal: bool = False) -> IO:
        return IO(self.paths.get("stdin", ""), self.paths["stdout"], self.paths.get("stderr", ""), terminal)

    def write(self, data: bytes) -> None:
        os.write(self.stdin, data)

    def close_stdin(self) -> None:
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1

    def read_until(self, fd: int, needle: bytes, timeout: float = 10.0) -> bytes:
        """What ``fd`` yields until ``needle`` appears (or EOF, or the timeout)."""
        data = b""
        deadline = time.monotonic() + timeout
        while needle not in data and time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not chunk:
                break
            data += chunk
        return data

    def read_all(self, fd: int, timeout: float = 10.0) -> bytes:
        """Everything until every writer closed the FIFO."""
        return self.read_until(fd, b"\x00never\x00", timeout)

    def close(self) -> None:
        self.close_stdin()
        for fd in (self.out, self.err):
            if fd >= 0:
                os.close(fd)
        self.out = self.err = -1


class Harness:
    """Starts shims for one test and tracks everything to take down."""

    def __init__(self, tmp_path: Path, runc_root: Path, busybox_root: Path) -> None:
        self.tmp_path = tmp_path
        self.runc_root = runc_root
        self.busybox_root = busybox_root
        self.bundles: list[tuple[Path, str, str]] = []  # bundle, id, runtime binary
        self.shim_pids: set[int] = set()
        self.fifos: list[Fifos] = []
        self.tag = uuid.uuid4().hex[:8]

    def bundle(self, name: str, args: list[str], *, runtime: str = "runc", **spec_kw: Any) -> tuple[Path, str]:
        """A bundle with config.json and an empty rootfs directory; (path, container id)."""
        id = f"{name}-{self.tag}"
        bundle = self.tmp_path / id
        (bundle / "rootfs").mkdir(parents=True)
        (bundle / "config.json").write_text(json.dumps(spec(id, args, **spec_kw)))
        self.bundles.append((bundle, id, runtime))
        return bundle, id

    def rootfs(self) -> list[Mount]:
        return [Mount("bind", str(self.busybox_root), ("rbind", "ro"))]

    def fifo_set(self, name: str, **kw: Any) -> Fifos:
        f = Fifos(self.tmp_path / f"fifo-{name}", **kw)
        self.fifos.append(f)
        return f

    async def spawn(self, bundle: Path, id: str) -> ShimClient:
        client = await ShimClient.spawn(bundle, "shimtest", id)
        self.shim_pids.add(client.pid)
        return client

    async def run(
        self,
        name: str,
        args: list[str],
        *,
        io: IO | None = None,
        start: bool = True,
        runtime: str = "runc",
        **spec_kw: Any,
    ) -> tuple[ShimClient, str]:
        """Spawn a shim, create (rootfs bind-mounted) and optionally start; (client, container id)."""
        bundle, id = self.bundle(name, args, runtime=runtime, **spec_kw)
        client = await self.spawn(bundle, id)
        await client.create(rootfs=self.rootfs(), io=io or IO(), binary=runtime, runtime_root=str(self.runc_root))
        if start:
            await client.start()
        return client, id

    def teardown(self) -> list[str]:
        """Take everything down; the problems found (things that had to be killed are not problems)."""
        for fifo in self.fifos:
            fifo.close()
        for pid in self.shim_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        problems = []
        for bundle, id, runtime in self.bundles:
            subprocess.run(
                [runtime, "--root", str(self.runc_root), "delete", "--force", id], capture_output=True, check=False
            )
            with contextlib.suppress(Exception):
                unmount_all(bundle / "rootfs")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in self.shim_pids):
            time.sleep(0.02)
        problems += [f"shim {p} still running" for p in self.shim_pids if _alive(p)]
        with open("/proc/mounts") as f:
            mounts = f.read()
        problems += [f"{bundle} still has mounts" for bundle, _, _ in self.bundles if str(bundle) in mounts]
        for pid in _pids():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if self.tag.encode() in cmdline and _alive(pid):
                    problems.append(f"process {pid} ({cmdline!r}) survived")
        for _, id, _ in self.bundles:
            for d in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}/{id}"):
                with contextlib.suppress(OSError):
                    d.rmdir()
                if d.exists():
                    problems.append(f"cgroup {d} left")
        return problems


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for some reaper."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def harness(tmp_path: Path, runc_root: Path, busybox_root: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, runc_root, busybox_root)
    yield h
    problems = h.teardown()
    assert not problems, problems


def run(coro: Any) -> Any:
    """Run a test's scenario; a hung one fails in 30 s rather than stalling the suite."""
    return asyncio.run(asyncio.wait_for(coro, 30))
