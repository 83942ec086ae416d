"""Containers through ``ctr``: one ``ctr run --rm``, the shims of running containers, many started at once.

The work the runtime benchmarks time, against one daemon at a time, all
through Debian's ``ctr`` so both daemons get the very same requests:

* :func:`run_rm` — ``ctr run --rm IMAGE ID /bin/busybox true``: container
  and snapshot made, task created (a shim started, ``runc create``),
  started, waited for, deleted, container removed;
* :func:`shim_memory` — RSS and PSS of each shim process serving a running
  container (containerd's ``containerd-shim-runc-v2``, pycontainerd's
  ``python … pycontainerd.runtime.shim``), the shim alone, not the container;
  pycontainerd's fork server, which every shim is forked from, is counted
  in, its share split among the shims;
* :func:`many_at_once` — ``ctr run -d`` of many containers in parallel,
  then ``ctr tasks rm -f`` and ``ctr containers rm`` of all of them in
  parallel.

The image is Debian's static busybox as a one-layer OCI image (built by
``tests/ocibuild.py``, imported with ``ctr images import``); it has no
applet links, hence ``/bin/busybox true``.  Everything runs in a namespace
of its own (its cgroups are ``/sys/fs/cgroup/<controller>/<namespace>/<id>``)
with runc's state under the daemon's private directory (``--runc-root``), so
nothing collides with another run on the machine; :func:`reap` takes down
whatever a failed run left — tasks, containers, shims, runc state, mounts,
cgroups.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import memory
from bench.daemons import CONTAINERD_NAME, CTR, Daemon
from bench.workloads import BenchmarkError, _ctr_env

NAMESPACE = f"bench-runtime-{os.getpid()}"
IMAGE = "bench.local/busybox:runtime"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CTR_TIMEOUT = 120.0
PYCONTAINERD_SHIM = b"pycontainerd.runtime.shim"
CONTAINERD_SHIM = "containerd-shim-runc-v2"


@dataclass(frozen=True)
class Site:
    """One daemon as the runtime benchmarks use it: its socket and a private runc root."""

    name: str
    address: str
    base: Path
    pid: int

    @classmethod
    def of(cls, daemon: Daemon) -> Site:
        return cls(daemon.name, daemon.address, daemon.base, daemon.pid)

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"


def ctr(site: Site, *args: str, timeout: float = CTR_TIMEOUT) -> float:
    """Run ``ctr -a ADDRESS -n NAMESPACE args`` with no output kept; its wall time.

    Raises :class:`BenchmarkError` when it exits non-zero.
    """
    argv = [str(CTR), "-a", site.address, "-n", NAMESPACE, *args]
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=_ctr_env(),
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-1000:]
        raise BenchmarkError(f"`ctr {' '.join(args)}` exited {done.returncode}: {err}")
    return elapsed


def build_image(dest: Path) -> Path:
    """Debian's busybox as an OCI image-layout tar tagged :data:`IMAGE`."""
    from tests import ocibuild

    path = dest / "busybox-oci.tar"
    path.write_bytes(ocibuild.oci_layout_tar(ocibuild.image([ocibuild.busybox_files()]), IMAGE))
    return path


def import_image(site: Site, tar: Path) -> None:
    ctr(site, "images", "import", str(tar))


def _run_args(site: Site) -> list[str]:
    return ["run", "--runc-root", str(site.runc_root)]


def run_rm(site: Site, id: str) -> float:
    """Seconds of one ``ctr run --rm IMAGE ID /bin/busybox true``."""
    return ctr(site, *_run_args(site), "--rm", IMAGE, id, "/bin/busybox", "true")


def start(site: Site, id: str) -> float:
    """``ctr run -d`` of a container sleeping until it is removed."""
    return ctr(site, *_run_args(site), "-d", "--null-io", IMAGE, id, "/bin/busybox", "sleep", "3600")


def remove(site: Site, id: str) -> float:
    """Kill and delete the task, then the container (and its snapshot)."""
    return ctr(site, "tasks", "rm", "-f", id) + ctr(site, "containers", "rm", id)


def _parallel(fn: Callable[[Site, str], float], site: Site, ids: Sequence[str]) -> float:
    """Run ``fn`` for every id at once; the wall time until the last one finished."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        for result in [pool.submit(fn, site, id) for id in ids]:
            result.result()
    return time.perf_counter() - started


def many_at_once(site: Site, ids: Sequence[str]) -> tuple[float, float]:
    """Seconds to start every container at once, then to remove them all at once; reaped if it fails."""
    try:
        up = _parallel(start, site, ids)
        down = _parallel(remove, site, ids)
        wait_for_shims(site, 0)
    except BaseException:
        reap(site, daemon_alive=True)
        raise
    return up, down


def memory_with(site: Site, count: int, settle: float = 1.0) -> ShimMemory:
    """The shims' memory with ``count`` containers running, ``settle`` seconds after the last started."""
    ids = [f"mem-{site.name}-{i}" for i in range(count)]
    _parallel(start, site, ids)
    wait_for_shims(site, count)
    time.sleep(settle)
    taken = shim_memory(site)
    _parallel(remove, site, ids)
    wait_for_shims(site, 0)
    return taken


def _argv(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def shims(site: Site) -> list[int]:
    """Pids of the shims this daemon started (they outlive it, and are not its descendants)."""
    found = []
    address, state = site.address.encode(), (str(site.base) + "/").encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = _argv(int(entry))
        if not argv:
            continue
        if site.name == CONTAINERD_NAME:
            if argv[0].endswith(CONTAINERD_SHIM.encode()) and address in argv:
                found.append(int(entry))
        elif any(PYCONTAINERD_SHIM in a for a in argv) and any(a.startswith(state) for a in argv):
            found.append(int(entry))
    return sorted(found)


def helpers(site: Site) -> list[int]:
    """Pids of processes the daemon runs for its shims: pycontainerd's fork server, its child."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and memory._parent_of(int(entry)) == site.pid:
            argv = _argv(int(entry))
            if any(PYCONTAINERD_SHIM in a for a in argv) and b"--forkserver" in argv:
                found.append(int(entry))
    return found


@dataclass(frozen=True)
class ShimMemory:
    """RSS and PSS in KiB of each shim, and of the helpers that serve them all (see :func:`helpers`)."""

    shims: dict[int, tuple[int, int]]
    helpers: dict[int, tuple[int, int]]
    others: int = 0
    """Other processes running the shims' executable: they take a share of its pages' PSS."""

    def per_shim(self) -> tuple[float, float]:
        """(RSS, PSS) per shim in KiB, the helpers' share included."""
        every = [*self.shims.values(), *self.helpers.values()]
        return sum(r for r, _ in every) / len(self.shims), sum(p for _, p in every) / len(self.shims)

    def as_json(self) -> dict[str, object]:
        return {
            kind: [{"pid": pid, "rss_kib": rss, "pss_kib": pss} for pid, (rss, pss) in taken.items()]
            for kind, taken in (("shims", self.shims), ("helpers", self.helpers))
        }


def _rss_pss(pid: int) -> tuple[int, int] | None:
    status = memory._kib_fields(f"/proc/{pid}/status", ("VmRSS",))
    rollup = memory._kib_fields(f"/proc/{pid}/smaps_rollup", ("Pss",))
    if "VmRSS" in status and "Pss" in rollup:
        return status["VmRSS"], rollup["Pss"]
    return None


def shim_memory(site: Site) -> ShimMemory:
    """RSS and PSS of each of the daemon's shims and helpers, right now (the processes alone, not the containers)."""
    taken = ShimMemory({}, {})
    for into, pids in ((taken.shims, shims(site)), (taken.helpers, helpers(site))):
        for pid in pids:
            if (sample := _rss_pss(pid)) is not None:
                into[pid] = sample
    if not taken.shims:
        raise BenchmarkError(f"{site.name}: no shim found")
    others = memory.same_executable(next(iter(taken.shims))) - (len(taken.shims) - 1) - len(taken.helpers)
    return ShimMemory(taken.shims, taken.helpers, max(0, others))


def wait_for_shims(site: Site, count: int, timeout: float = 10.0) -> None:
    """Until ``count`` shims run (a deleted task's shim exits a moment after ``ctr`` returns)."""
    deadline = time.monotonic() + timeout
    while len(shims(site)) != count:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{site.name}: {len(shims(site))} shims running, expected {count}")
        time.sleep(0.05)


def _quiet(argv: list[str]) -> subprocess.CompletedProcess[bytes] | None:
    try:
        return subprocess.run(argv, capture_output=True, timeout=60, env=_ctr_env(), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _listed(site: Site, *what: str) -> list[str]:
    done = _quiet([str(CTR), "-a", site.address, "-n", NAMESPACE, *what, "ls", "-q"])
    if done is None or done.returncode != 0:
        return []
    return [line.split()[0] for line in done.stdout.decode().splitlines() if line.strip()]


def reap(site: Site, daemon_alive: bool) -> None:
    """Take down everything of :data:`NAMESPACE` this daemon ran, whatever state a failed run left.

    Through the daemon first (tasks, containers) when it still answers;
    then whatever is left by hand: runc's containers under the private root,
    the shims, mounts under the daemon's directory, the namespace's cgroups.
    """
    if daemon_alive:
        for id in _listed(site, "tasks"):
            _quiet([str(CTR), "-a", site.address, "-n", NAMESPACE, "tasks", "rm", "-f", id])
        for id in _listed(site, "containers"):
            _quiet([str(CTR), "-a", site.address, "-n", NAMESPACE, "containers", "rm", id])
    for root in (site.runc_root, site.runc_root / NAMESPACE):
        if not root.is_dir():
            continue
        listed = _quiet(["runc", "--root", str(root), "list", "-q"])
        for id in listed.stdout.decode().split() if listed is not None else []:
            _quiet(["runc", "--root", str(root), "delete", "--force", id])
    for pid in shims(site):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    remove_cgroups()


def remove_cgroups() -> None:
    """The namespace's cgroup directories in every hierarchy, deepest first (empty ones only)."""
    for parent in CGROUP_ROOT.glob(f"*/{NAMESPACE}"):
        for d in sorted((p for p in parent.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
