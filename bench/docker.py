"""The Docker benchmark: the ``docker`` CLI against Debian's dockerd and against pydockerd, side by side.

Two engines, each started here on private directories and sockets, and the
machine's own CLI (``/usr/local/bin/docker``) for both, with ``DOCKER_HOST``
and a private ``DOCKER_CONFIG``:

* ``dockerd``: Debian's docker.io 20.10, ``--bridge=none``, no iptables, no
  IP forwarding, overlay2, its containers under a cgroup parent of their
  own; it starts its own containerd (Debian's 1.6) and keeps images in its
  graph driver — the containerd image store came after 20.10;
* ``pydockerd``: a fresh pycontainerd (as :mod:`bench.daemons` starts it)
  and pydockerd over it, in remote mode.

Workloads, timed with the CLI, alternating which engine goes first:

* ``docker pull -q`` of the large image of :mod:`bench.unpack` (this
  machine's files, about 1 GB) and of its debootstrapped Debian, each pull
  into an empty engine: after it the image is removed, the engine checked
  empty on disk, and the disk left to settle as :func:`bench.unpack.forget`
  does;
* ``docker run --rm IMAGE true`` of a busybox image built from Debian's
  static busybox, after a warm-up run: median and 90th percentile.

The images are pushed to a private registry on 127.0.0.1; layouts that
:mod:`bench.unpack` already built in this run are pushed again rather than
rebuilt.  Everything is stopped and removed however the run ends: engines,
dockerd's containerd and shims, mounts, cgroups, directories, and the
``/etc/docker/key.json`` dockerd 20.10 writes when there was none.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gzip
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import daemons, registry, report, unpack
from bench.daemons import PYCONTAINERD_NAME, REPO, Daemon, scratch
from bench.report import Metric
from bench.workloads import BenchmarkError, sha256_digest

DOCKERD = Path("/usr/sbin/dockerd")
DOCKER = Path("/usr/local/bin/docker")
BUSYBOX = Path("/bin/busybox")
TRUST_KEY = Path("/etc/docker/key.json")
CGROUP_ROOT = Path("/sys/fs/cgroup")
DOCKERD_NAME = "dockerd"
PYDOCKERD_NAME = "pydockerd"
ENGINES = (DOCKERD_NAME, PYDOCKERD_NAME)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
PULL_TIMEOUT = 1800.0
RUN_TIMEOUT = 120.0
EMPTY_TIMEOUT = 300.0
BUSYBOX_REPOSITORY = "bench/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Log = Callable[[str], None]


class EngineUnavailable(Exception):
    """The engine is not installed, or did not answer ``/_ping`` in time."""


def ping(sock: Path, timeout: float = 1.0) -> bool:
    """True once the Engine API on ``sock`` answers ``GET /_ping`` with 200."""
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(str(sock))
        conn.sock = s
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
        s.close()


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, SIGKILL after :data:`STOP_TIMEOUT`, then whatever is left in its session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill_mentioning(base: Path) -> None:
    """SIGKILL every process whose command line names a path under ``base`` (shims outlive their daemon)."""
    needle = (str(base) + "/").encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
        except OSError:
            continue
        if needle in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)


@dataclass
class Engine:
    """One running engine: its API socket, its processes (started last, stopped first) and where it keeps layers."""

    name: str
    base: Path
    socket: Path
    procs: list[subprocess.Popen[bytes]]
    log: Path
    # Directories that hold nothing but these entries once the engine holds no image.
    empty_when_idle: dict[Path, frozenset[str]]
    ready_after: float = 0.0
    extra_logs: list[Path] = field(default_factory=list)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def log_tail(self, chars: int = 1500) -> str:
        text = ""
        for path in [self.log, *self.extra_logs]:
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")[-chars:]
        return text[-chars:]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(self.base / "cli"))
        return env

    def docker(self, *args: str, timeout: float = RUN_TIMEOUT) -> tuple[float, str]:
        """Run the CLI against this engine; its wall time and stdout.  :class:`BenchmarkError` on a non-zero exit."""
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [str(DOCKER), *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=self.env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchmarkError(f"`docker {' '.join(args)}` took over {timeout:.0f} s") from exc
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()[-500:]
            raise BenchmarkError(f"`docker {' '.join(args)}` exited {done.returncode}: {err}")
        return elapsed, done.stdout.decode(errors="replace")

    def leftovers(self) -> list[str]:
        """Entries in :attr:`empty_when_idle` directories that an empty engine would not have."""
        left = []
        for d, allowed in self.empty_when_idle.items():
            with contextlib.suppress(FileNotFoundError):
                left += [str(d / e) for e in os.listdir(d) if e not in allowed]
        return left


def _wait_ping(engine: Engine, launched: float) -> None:
    while not ping(engine.socket):
        if not engine.alive():
            raise EngineUnavailable(f"{engine.name} exited:\n{engine.log_tail()}")
        if time.monotonic() > launched + START_TIMEOUT:
            raise EngineUnavailable(f"{engine.name} did not answer within {START_TIMEOUT:.0f} s:\n{engine.log_tail()}")
        time.sleep(0.02)
    engine.ready_after = time.monotonic() - launched


def _cgroup_dirs(parent: str) -> list[Path]:
    return [*CGROUP_ROOT.glob(f"*/{parent}"), CGROUP_ROOT / parent]


def _remove_cgroups(parent: str) -> None:
    for top in _cgroup_dirs(parent):
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()


@contextlib.contextmanager
def dockerd(insecure: str) -> Iterator[Engine]:
    """Debian's dockerd on private directories, its containers in cgroup ``/bench-dockerd-PID``."""
    if not os.access(DOCKERD, os.X_OK):
        raise EngineUnavailable(f"{DOCKERD} is not installed (Debian package docker.io; make bench installs it)")
    key_existed = TRUST_KEY.exists()
    cgroup = f"bench-dockerd-{os.getpid()}"
    with scratch("bench-dockerd-") as base:
        (base / "cli").mkdir()
        (base / "daemon.json").write_text("{}\n")
        argv = [
            str(DOCKERD),
            f"--host=unix://{base / 'docker.sock'}",
            f"--data-root={base / 'root'}",
            f"--exec-root={base / 'exec'}",
            f"--pidfile={base / 'docker.pid'}",
            f"--config-file={base / 'daemon.json'}",
            f"--cgroup-parent=/{cgroup}",
            f"--insecure-registry={insecure}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--storage-driver=overlay2",
            "--log-level=warn",
        ]
        launched = time.monotonic()
        proc = _spawn(argv, base / "dockerd.log", base)
        root = base / "root"
        engine = Engine(
            DOCKERD_NAME,
            base,
            base / "docker.sock",
            [proc],
            base / "dockerd.log",
            {
                root / "overlay2": frozenset({"l"}),
                root / "overlay2" / "l": frozenset(),
                root / "image" / "overlay2" / "layerdb" / "sha256": frozenset(),
            },
        )
        try:
            _wait_ping(engine, launched)
            yield engine
        finally:
            _stop(engine)
            if not key_existed:
                with contextlib.suppress(FileNotFoundError):
                    TRUST_KEY.unlink()
            _remove_cgroups(cgroup)


def pydockerd_flags() -> str:
    """pydockerd's ``--help``, to pass the flags it has by now (``--data-root`` is newer than the rest)."""
    done = subprocess.run(
        [sys.executable, "-m", "pydockerd", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout


@contextlib.contextmanager
def pydockerd(insecure: str) -> Iterator[Engine]:
    """A fresh pycontainerd and pydockerd over it (remote mode), both on private directories."""
    with scratch("bench-pydockerd-") as base:
        (base / "cli").mkdir()
        (base / "c").mkdir()
        launched = time.monotonic()
        try:
            containerd = daemons.launch(PYCONTAINERD_NAME, base / "c")
        except daemons.DaemonUnavailable as exc:
            raise EngineUnavailable(str(exc)) from exc
        engine = Engine(
            PYDOCKERD_NAME,
            base,
            base / "docker.sock",
            [containerd.proc],
            base / "pydockerd.log",
            {
                base / "c" / "root" / "io.containerd.snapshotter.v1.overlayfs" / "snapshots": frozenset(),
                base / "c" / "root" / "io.containerd.content.v1.content" / "blobs" / "sha256": frozenset(),
            },
            extra_logs=[containerd.log],
        )
        try:
            _wait_containerd(containerd)
            argv = [
                sys.executable,
                "-m",
                "pydockerd",
                "-H",
                f"unix://{engine.socket}",
                "--containerd-address",
                containerd.address,
                "--insecure-registry",
                insecure,
            ]
            if "--data-root" in pydockerd_flags():
                argv += ["--data-root", str(base / "data")]
            engine.procs.insert(0, _spawn(argv, engine.log, REPO))
            _wait_ping(engine, launched)
            yield engine
        finally:
            _stop(engine)


def _wait_containerd(containerd: Daemon) -> None:
    try:
        daemons.wait_ready(containerd)
    except daemons.DaemonUnavailable as exc:
        raise EngineUnavailable(str(exc)) from exc


def _stop(engine: Engine) -> None:
    """Containers removed while the engine still answers; then every process, shims included."""
    if engine.alive() and ping(engine.socket):
        with contextlib.suppress(BenchmarkError):
            _, ids = engine.docker("ps", "-aq", timeout=30)
            if ids.split():
                engine.docker("rm", "-f", *ids.split(), timeout=60)
    for proc in engine.procs:
        _terminate(proc)
    kill_mentioning(engine.base)


# -- images -------------------------------------------------------------------


def _layer_facts(blob: Path) -> tuple[int, int]:
    """Uncompressed bytes and entries (devices and FIFOs left out, as :mod:`bench.unpack` counts) of a tar+gzip layer."""
    entries = 0
    with gzip.open(blob, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for info in tar:
            if info.type not in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
                entries += 1
    with gzip.open(blob, "rb") as raw:
        size = 0
        while block := raw.read(4 << 20):
            size += len(block)
    return size, entries


def push_existing(host: str, layout: Path, repository: str) -> tuple[str, int, int]:
    """Push an OCI layout :mod:`bench.unpack` built earlier in this run; its ref, uncompressed bytes and files."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_bytes())
    size = files = 0
    for layer in manifest["layers"]:
        s, f = _layer_facts(layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1])
        size, files = size + s, files + f
    ref = f"{host}/{repository}:{registry.TAG}"
    subprocess.run(
        [
            str(registry.SKOPEO),
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{layout}:{registry.TAG}",
            f"docker://{ref}",
        ],
        check=True,
        capture_output=True,
        timeout=1200,
    )
    return ref, size, files


def busybox_image(host: str, work: Path) -> str:
    """Debian's static busybox as a one-layer image with ``true`` and ``sh`` links and a PATH, pushed to ``host``."""
    layout = work / "busybox"
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        data = BUSYBOX.read_bytes()
        f = tarfile.TarInfo("bin/busybox")
        f.size, f.mode = len(data), 0o755
        tar.addfile(f, io.BytesIO(data))
        for applet in ("true", "sh"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(link)
    diff_id = sha256_digest(raw.getvalue())
    gz = gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
    digest = sha256_digest(gz)
    (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(gz)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    layer = {"mediaType": unpack.LAYER_TYPE, "digest": digest, "size": len(gz)}
    return registry.push_layout(host, layout, config, [layer], BUSYBOX_REPOSITORY)


@dataclass(frozen=True)
class PullImage:
    key: str
    label: str
    ref: str


def pull_images(host: str, data: Path, debian: bool, log: Log) -> list[PullImage]:
    """The large files image and (unless ``debian`` is false) Debian, in the registry at ``host``."""
    work = data / "unpack"
    found: list[PullImage] = []
    builders: list[tuple[str, str, Callable[[str, Path], tuple[str, int, int]]]] = [
        ("files", "large image", unpack.build_files_image)
    ]
    if debian:
        builders.append(("debian", "Debian bookworm minbase", unpack.build_debian_image))
    for name, what, build in builders:
        layout = work / name
        try:
            if (layout / "index.json").exists():
                log(f"docker: pushing the {name} image built earlier in this run")
                ref, size, files = push_existing(host, layout, f"bench/{name}")
            else:
                log(f"docker: building the {name} image")
                ref, size, files = build(host, work)
        except (OSError, subprocess.SubprocessError) as exc:
            log(f"docker: no {name} image: {exc}")
            continue
        found.append(PullImage(f"docker_pull_{name}", f"{what}, {size / 1e9:.2f} GB, {files:,} files", ref))
    return found


# -- workloads ----------------------------------------------------------------


def wait_empty(engine: Engine) -> None:
    """Until no image is listed and the engine's layer and content directories are empty; then let the disk settle."""
    _, listed = engine.docker("images", "-aq")
    if listed.split():
        raise BenchmarkError(f"{engine.name}: images left after removal: {listed.split()[:3]}")
    deadline = time.monotonic() + EMPTY_TIMEOUT
    while left := engine.leftovers():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{engine.name}: still on disk {EMPTY_TIMEOUT:.0f} s after removal: {left[:3]}")
        time.sleep(0.1)
    settle()


def settle() -> None:
    """Flush, wait for the disk to go quiet, and let ext4's inode reuse window pass (see :func:`bench.unpack.forget`)."""
    os.sync()
    flushed = time.monotonic()
    unpack.wait_disk_idle()
    time.sleep(max(0.0, flushed + unpack.INODE_REUSE_DELAY_S - time.monotonic()))


def pull_once(ref: str, engine: Engine) -> float:
    """Seconds of one ``docker pull -q`` into an empty engine; the image is removed and the engine emptied after."""
    seconds, _ = engine.docker("pull", "-q", ref, timeout=PULL_TIMEOUT)
    engine.docker("image", "inspect", ref)
    engine.docker("rmi", ref)
    wait_empty(engine)
    return seconds


def run_once(engine: Engine, ref: str) -> float:
    """Seconds of one ``docker run --rm IMAGE true``."""
    return engine.docker("run", "--rm", ref, "true")[0]


# -- the section --------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-docker", dest="docker", action="store_false", help="skip the Docker benchmark (dockerd vs pydockerd)"
    )
    parser.add_argument(
        "--docker-only",
        action="store_true",
        help="run the Docker benchmark only; it writes docker.json and docker.md, latest.* are left alone",
    )
    parser.add_argument("--docker-runs", type=int, default=20, help="timed `docker run --rm` per engine (default 20)")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.docker_runs < 1:
        parser.error("--docker-runs must be >= 1")
    if args.docker_only and not args.docker:
        parser.error("--docker-only and --no-docker contradict each other")


def wanted(args: argparse.Namespace) -> list[str]:
    """The engines to run: ``--only containerd`` means dockerd alone, ``--only pycontainerd`` pydockerd alone."""
    only = getattr(args, "only", None)
    if only is None:
        return list(ENGINES)
    return [DOCKERD_NAME if only == daemons.CONTAINERD_NAME else PYDOCKERD_NAME]


@dataclass
class Section:
    """The engines under test and the rows being filled in (columns dockerd and pydockerd)."""

    log: Log
    engines: dict[str, Engine]
    metrics: dict[str, Metric] = field(default_factory=dict)

    def metric(
        self,
        key: str,
        label: str,
        unit: str,
        *,
        summary: report.Summary = "single",
        target: float | None = None,
        decimals: int = 2,
    ) -> Metric:
        self.metrics[key] = Metric(
            key, label, unit, "lower", summary, target, decimals, theirs=DOCKERD_NAME, ours=PYDOCKERD_NAME
        )
        return self.metrics[key]

    def healthy(self, metric: Metric) -> list[str]:
        names = []
        for name, engine in self.engines.items():
            if name in metric.errors:
                continue
            if not engine.alive():
                metric.fail(name, f"{name} died: {engine.log_tail(500)}")
                continue
            names.append(name)
        return names

    def measure(self, metric: Metric, name: str, fn: Callable[[Engine], float]) -> float | None:
        try:
            value = fn(self.engines[name])
        except (BenchmarkError, OSError) as exc:
            metric.fail(name, str(exc))
            self.log(f"{name}: {metric.label}: {exc}")
            return None
        metric.add(name, value)
        return value

    def repeat(self, metric: Metric, runs: int, fn: Callable[[Engine], float]) -> None:
        """``runs`` samples per engine, alternating which engine goes first."""
        for run in range(runs):
            order = self.healthy(metric)
            for name in order if run % 2 == 0 else order[::-1]:
                value = self.measure(metric, name, fn)
                if value is not None:
                    unit = metric.unit
                    self.log(f"{name}: {metric.label} [{run + 1}/{runs}]: {value:,.{metric.decimals}f} {unit}")


def bench_pulls(s: Section, images: list[PullImage], runs: int) -> None:
    for image in images:
        metric = s.metric(
            image.key,
            f"`docker pull`, {image.label} (median of {runs})",
            "s",
            summary="median",
            target=0.5,
        )
        s.repeat(metric, runs, functools.partial(pull_once, image.ref))


def bench_run(s: Section, ref: str, runs: int) -> None:
    first = s.metric("docker_run_first", "first `docker run --rm` of busybox `true` after start", "ms", decimals=0)
    median = s.metric(
        "docker_run",
        f"`docker run --rm` of busybox `true` (median of {runs})",
        "ms",
        summary="median",
        target=1.0,
        decimals=0,
    )
    p90 = s.metric(
        "docker_run_p90", f"`docker run --rm` of busybox `true` (p90 of {runs})", "ms", summary="p90", decimals=0
    )
    for name in s.healthy(first):
        try:
            s.engines[name].docker("pull", "-q", ref)
        except BenchmarkError as exc:
            for m in (first, median, p90):
                m.fail(name, f"pulling busybox failed: {exc}")
            continue
        if s.measure(first, name, lambda engine: run_once(engine, ref) * 1000) is None:
            median.fail(name, f"the warm-up run failed: {first.errors[name]}")
            p90.fail(name, median.errors[name])
    s.repeat(median, runs, lambda engine: run_once(engine, ref) * 1000)
    for name, values in median.samples.items():
        for v in values:
            p90.add(name, v)
        if name in median.errors:
            p90.fail(name, median.errors[name])


@dataclass
class Results:
    metrics: list[Metric]
    table: str
    document: dict[str, object]


def server_facts(engine: Engine) -> dict[str, object]:
    """What the engine says of itself: ``docker version``'s server part (version, API, components)."""
    try:
        _, out = engine.docker("version", "--format", "{{json .Server}}")
        facts: dict[str, object] = json.loads(out)
    except (BenchmarkError, ValueError) as exc:
        return {"error": str(exc)}
    return facts


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown"


def footer(facts: dict[str, object], started_at: str) -> str:
    mem = facts.get("mem_total_kib")
    mem_text = f"{int(mem) / 1024 / 1024:.0f} GiB" if isinstance(mem, int) else "? GiB"
    return (
        f"_Measured {started_at} by `make bench` on {facts['cpu_model']} ({facts['cpus']} CPUs, {mem_text}) with the "
        f"docker CLI {facts['docker_cli']}: Debian's dockerd ({facts['dockerd']}) with its own containerd "
        f"and its overlay2 graph driver (20.10 had no containerd image store), against pydockerd over pycontainerd "
        f"({facts['pycontainerd_commit']}, overlayfs snapshotter). Ratio = pydockerd / dockerd._"
    )


def section(args: argparse.Namespace, data: Path, log: Log) -> Results:
    """Run the Docker benchmark; write ``docker.json`` and ``docker.md`` into ``args.out`` and return them."""
    started_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    began = time.monotonic()
    facts = report.machine_facts()
    facts["dockerd"] = _version([str(DOCKERD), "--version"]) if DOCKERD.exists() else "not installed"
    facts["docker_cli"] = _version([str(DOCKER), "--version"])
    load_before = os.getloadavg()
    names = wanted(args)
    unavailable: dict[str, str] = {}
    statuses: dict[str, object] = {}
    s = Section(log, {})
    with contextlib.ExitStack() as stack:
        try:
            host = stack.enter_context(registry.registry())
        except (OSError, RuntimeError) as exc:
            unavailable = dict.fromkeys(names, f"no registry: {exc}")
            host = ""
        if host:
            images = pull_images(host, data, args.debian, log)
            (data / "docker").mkdir(exist_ok=True)
            busybox = busybox_image(host, data / "docker")
            settle()
            for name in names:
                start = dockerd if name == DOCKERD_NAME else pydockerd
                try:
                    s.engines[name] = stack.enter_context(start(host))
                except EngineUnavailable as exc:
                    unavailable[name] = str(exc)
                    log(f"docker: {name} is unavailable, its column will say n/a: {str(exc).splitlines()[0]}")
            startup = s.metric("docker_startup", "Engine start-up until `/_ping` answers", "ms", decimals=0)
            for name, engine in s.engines.items():
                startup.add(name, engine.ready_after * 1000)
            bench_pulls(s, images, args.runs)
            bench_run(s, busybox, args.docker_runs)
            for name, engine in s.engines.items():
                statuses[name] = {"status": "ran", "ready_after_s": engine.ready_after, "server": server_facts(engine)}
    for name in ENGINES:
        if name not in names:
            statuses[name] = {"status": "skipped", "detail": "excluded by --only"}
        elif name in unavailable:
            statuses[name] = {"status": "unavailable", "detail": unavailable[name]}
    metrics = list(s.metrics.values())
    text = footer(facts, started_at)
    if unavailable:
        text += "\n\n_Not measured: " + "; ".join(f"{n}: {w.splitlines()[0]}" for n, w in unavailable.items()) + "._"
    table = report.markdown(metrics, text)
    document: dict[str, object] = {
        "schema_version": 1,
        "started_at": started_at,
        "duration_s": round(time.monotonic() - began, 1),
        "argv": sys.argv,
        "machine": facts,
        "load_average_1_5_15": {"start": load_before, "end": os.getloadavg()},
        "engines": statuses,
        "benchmarks": [m.as_json() for m in metrics],
        "table_markdown": table,
    }
    json_path, md_path = report.write(args.out, document, table, stem="docker")
    log(f"docker: wrote {json_path} and {md_path}")
    return Results(metrics, table, document)


def run_only(args: argparse.Namespace, log: Log) -> int:
    """``--docker-only``: the Docker benchmark on its own, images built here; 1 when dockerd could not be measured."""
    with scratch("bench-data-") as data:
        results = section(args, data, log)
    print(results.table)
    engines = results.document["engines"]
    ran = isinstance(engines, dict) and all(
        isinstance(v, dict) and v.get("status") != "unavailable" for v in engines.values()
    )
    return 0 if ran else 1
