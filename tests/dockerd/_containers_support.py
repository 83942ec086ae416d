"""What the container tests share: a busybox image with its applets linked, pulled into pydockerd, and checks
that a removed container left nothing behind (no shim, mount, bundle, cgroup, snapshot, record).
"""

from __future__ import annotations

import fcntl
import gzip
import io
import json
import os
import pty
import select
import struct
import subprocess
import tarfile
import termios
import time
from pathlib import Path

import pytest

from pycontainerd.client import Client
from tests.distribution.support import seed
from tests.dockerd.conftest import DOCKER, Pydockerd
from tests.fixtures._shims import mounts_under, shims_under
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import BUSYBOX, CONFIG, LAYER, MANIFEST, Image, sha

NS = "moby"
APPLETS = (
    "sh", "echo", "cat", "ls", "sleep", "ps", "hostname", "id", "env", "pwd", "true", "false", "mount",
    "grep", "head", "printf", "wc", "tty", "stty", "kill", "mkdir", "touch", "test", "seq", "date", "yes",
)  # fmt: skip
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n"
ROWS, COLUMNS = 30, 100  # the terminal's size, which the CLI passes on
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "tmp", "root", "home", "home/app"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        data = Path(BUSYBOX).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
        for name, body in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def busybox_image(config: dict[str, object] | None = None) -> Image:
    """One layer: busybox, its common applets as links, root and app (1000) users."""
    img = Image()
    raw = _layer()
    gz = gzip.compress(raw, mtime=0)
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": config if config is not None else {"Cmd": ["sh"], "Env": [PATH_ENV], "Labels": {"from": "image"}},
        "rootfs": {"type": "layers", "diff_ids": [sha(raw)]},
    }
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    img.manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": img.add(cfg_bytes), "size": len(cfg_bytes)},
        "layers": [{"mediaType": LAYER, "digest": img.add(gz), "size": len(gz)}],
    }
    img.platform = {"os": "linux", "architecture": "amd64"}
    img.add(img.manifest_bytes)
    return img


@pytest.fixture(name="bb")
def bb_image(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> str:
    """The reference of the busybox image, pulled into pydockerd."""
    seed(registry, busybox_image(), "test/bb:1", tmp_path)
    ref = f"{registry.host}/test/bb:1"
    pydockerd.docker("pull", ref)
    return ref


def wait_for(predicate: object, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def assert_clean(d: Pydockerd, daemon: PycontainerdDaemon, ids: list[str]) -> None:
    """Nothing of the removed containers ``ids`` is left, in containerd, on the host or in pydockerd's root."""
    wait_for(lambda: not shims_under(daemon.base), 5.0, "shims to exit")
    assert [m for m in mounts_under(daemon.base) if "/rootfs" in m] == []
    bundles = daemon.state / "io.containerd.runtime.v2.task" / NS
    assert not bundles.exists() or [p.name for p in bundles.iterdir() if p.name in ids] == []
    for id in ids:
        assert [p for p in _cgroup_parents() if (p / id).exists()] == []
    with Client(daemon.address, namespace=NS) as c:
        assert [x.id for x in c.containers.list() if x.id in ids] == []
        assert [t.id for t in c.tasks.list() if t.id in ids] == []
        assert [s.name for s in c.snapshotter().walk() if s.name in ids] == []
    root = d.base / "root" / "containers"
    assert not root.exists() or [p.name for p in root.iterdir() if p.name in ids] == []
    assert "Traceback" not in d.log()


def _cgroup_parents() -> list[Path]:
    """``/moby`` of cgroup v2 and of each v1 controller (other tests' cgroups come and go beside them)."""
    root = Path("/sys/fs/cgroup")
    return [root / NS, *(root / c / NS for c in os.listdir(root))]


def remove_cgroups() -> None:
    """runc removes each container's cgroup, not the ``/moby`` parent: removed when empty."""
    for parent in _cgroup_parents():
        try:
            parent.rmdir()
        except OSError:
            pass


class Terminal:
    """The docker CLI on a pseudo-terminal, as a user at a keyboard runs it."""

    def __init__(self, d: Pydockerd, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.cli_config), TERM="xterm")
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.proc = subprocess.Popen(
            [DOCKER, *args], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.output = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, needle: bytes, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} not seen; got {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self.output += chunk
        assert needle in self.output, self.output
        return self.output

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass
