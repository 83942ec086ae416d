"""What the runtime fault and load suites share: a daemon holding busybox, ctr and pyctr, and a leak census.

A container leaves traces in many places; :meth:`RuntimeEnv.leaks` looks in
every one of them and names what it finds, so a test can assert an empty
list and a soak run can count problems:

* shims whose bundle lies under the daemon's directory, and container
  processes (anything whose cgroup lies under the test's namespace);
* mounts under the daemon's directory (``/proc/self/mountinfo``);
* cgroups under ``/<namespace>`` in every v1 controller and the unified
  hierarchy;
* FIFOs: in ctr's (``/run/containerd/fifo``) and pyctr's
  (``/run/pycontainerd/fifo``) directories named after our containers, and
  any under the daemon's directory;
* bundles in the daemon's task state, runc state under its runc root;
* containers, tasks, snapshots beyond the image's own, and leases.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pycontainerd.client import FIFO_ROOT
from tests.fixtures._shims import mounts_under, shims_under
from tests.fixtures.daemon import PycontainerdDaemon
from tests.ocibuild import busybox_files, image, oci_layout_tar

CTR = "/usr/bin/ctr"
CTR_FIFO_ROOT = Path("/run/containerd/fifo")
REF = "example.com/test/busybox:1"
BB = "/bin/busybox"
TASK_STATE = "io.containerd.runtime.v2.task"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class RuntimeEnv:
    """One pycontainerd daemon with the busybox image in namespace ``ns``."""

    daemon: PycontainerdDaemon
    ns: str
    ids: set[str] = field(default_factory=set)
    """Every container id a test used: FIFOs named after them are looked for."""
    _old_fifo_dirs: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Detached ``ctr run -d`` keeps its FIFO directory for good (ctr cannot know when the task ends):
        # what earlier runs left there is not ours.
        self._old_fifo_dirs = set(self._fifo_dirs())

    @property
    def base(self) -> Path:
        return self.daemon.base

    def import_image(self, tmp: Path) -> None:
        archive = tmp / "busybox.tar"
        archive.write_bytes(oci_layout_tar(image([busybox_files()]), REF))
        self.ok("images", "import", str(archive))

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [CTR, "-a", self.daemon.address, "-n", self.ns, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def pyctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", self.daemon.address, "-n", self.ns, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> str:
        r = self.ctr(*args)
        assert r.returncode == 0, f"ctr {' '.join(args)}: {r.stderr.decode()}\n{self.daemon.log()[-3000:]}"
        return r.stdout.decode()

    def tasks(self) -> dict[str, tuple[int, str]]:
        rows = self.ok("tasks", "ls").splitlines()[1:]
        return {id: (int(pid), status) for id, pid, status in (row.split() for row in rows)}

    # -- the census --------------------------------------------------------

    def leaks(self, image_snapshots: Iterable[str] = ()) -> list[str]:
        """Everything a container left behind; waits a little for shims that exit on their own."""
        deadline = time.monotonic() + 5
        while (shims_under(self.base) or self.container_pids()) and time.monotonic() < deadline:
            time.sleep(0.02)
        found = [f"shim {pid} of {bundle}" for pid, bundle in shims_under(self.base)]
        found += [f"container process {pid}: {cmd}" for pid, cmd in self.container_pids()]
        found += [f"mount {m}" for m in mounts_under(self.base)]
        found += [f"cgroup {d}" for d in self.cgroups()]
        found += [f"fifo {p}" for p in self.fifos()]
        bundles = self.daemon.state / TASK_STATE / self.ns
        if bundles.exists():
            found += [f"bundle {p}" for p in bundles.iterdir()]
        runc = self.daemon.state / "runc" / self.ns
        if runc.exists():
            found += [f"runc state {p}" for p in runc.iterdir()]
        if self.daemon.running:
            found += [f"container {c}" for c in self.ok("containers", "ls", "-q").split()]
            found += [f"task {t}" for t in self.tasks()]
            keep = set(image_snapshots)
            snaps = [line.split()[0] for line in self.ok("snapshots", "ls").splitlines()[1:]]
            found += [f"snapshot {s}" for s in snaps if s not in keep]
            found += [f"lease {row.split()[0]}" for row in self.ok("leases", "ls").splitlines()[1:]]
        return found

    def snapshots(self) -> list[str]:
        return [line.split()[0] for line in self.ok("snapshots", "ls").splitlines()[1:]]

    def container_pids(self) -> list[tuple[int, str]]:
        """Processes in a cgroup under ``/<ns>/`` (every container's, as the specs place them)."""
        marker = f":/{self.ns}/"
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                cgroups = Path(f"/proc/{entry}/cgroup").read_text()
                if marker in cgroups and alive(int(entry)):
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    out.append((int(entry), cmd))
        return out

    def cgroups(self) -> list[Path]:
        return [p for p in [*CGROUP_ROOT.glob(f"{self.ns}/*"), *CGROUP_ROOT.glob(f"*/{self.ns}/*")] if p.is_dir()]

    def _fifo_dirs(self) -> list[str]:
        out = []
        for root in (CTR_FIFO_ROOT, FIFO_ROOT):
            with contextlib.suppress(OSError):
                out += [str(d) for d in root.iterdir()]
        return out

    def fifos(self) -> list[str]:
        found = []
        for d in self._fifo_dirs():
            if d in self._old_fifo_dirs:
                continue
            with contextlib.suppress(OSError):
                names = [os.path.basename(d), *os.listdir(d)] if os.path.isdir(d) else [os.path.basename(d)]
                if any(n.startswith(f"{id}-") for n in names for id in self.ids):
                    found.append(d)
        for dirpath, _, files in os.walk(self.base):
            for f in files:
                with contextlib.suppress(OSError):
                    if stat.S_ISFIFO(os.lstat(os.path.join(dirpath, f)).st_mode):
                        found.append(os.path.join(dirpath, f))
        return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def one_line(stderr: bytes) -> bool:
    """A CLI's error as one line: exactly one newline, at the end, and no traceback."""
    return stderr.count(b"\n") == 1 and stderr.endswith(b"\n") and b"Traceback" not in stderr
