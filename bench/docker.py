"""The Docker benchmark: the ``docker`` CLI against Debian's dockerd and against pydockerd, side by side.

The engines are :mod:`bench.engines`' (dockerd 20.10 with its own
containerd and graph driver; pydockerd over a fresh pycontainerd), both
driven by the machine's CLI.  Workloads, timed with the CLI, alternating
which engine goes first:

* ``docker pull -q`` of the large image of :mod:`bench.unpack` (this
  machine's files, about 1 GB) and of its debootstrapped Debian, each pull
  into an engine started for it on a file system of its own
  (:mod:`bench.freshfs`); pydockerd ≤ 0.5x dockerd's time;
* ``docker run --rm IMAGE true`` of a busybox image built from Debian's
  static busybox, after a warm-up run: median (pydockerd ≤ 1.0x) and 90th
  percentile.

The images are pushed to a private registry on 127.0.0.1; layouts that
:mod:`bench.unpack` already built in this run are pushed again rather than
rebuilt.  The rows form a table of their own (columns dockerd and
pydockerd), written as ``docker.json`` and ``docker.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import daemons, freshfs, registry, report, unpack
from bench.daemons import scratch
from bench.engines import (
    DOCKER,
    DOCKERD,
    DOCKERD_NAME,
    ENGINES,
    MODES,
    PYDOCKERD_NAME,
    REMOTE,
    Engine,
    EngineUnavailable,
    dockerd,
    pydockerd,
)
from bench.report import Metric
from bench.workloads import BenchmarkError, sha256_digest

BUSYBOX = Path("/bin/busybox")
PULL_TIMEOUT = 1800.0
EMPTY_TIMEOUT = 300.0
BUSYBOX_REPOSITORY = "bench/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Log = Callable[[str], None]


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


def pull_once(ref: str, fresh: Callable[[Path], contextlib.AbstractContextManager[Engine]]) -> float:
    """Seconds of one ``docker pull -q`` into an engine started for it on a file system of its own.

    See :mod:`bench.freshfs`: no pull pays for an earlier one's deletions.
    The engine's start is not timed; after the pull the image must be
    inspectable and the engine's layer or content directories non-empty.
    """
    unpack.wait_disk_idle()
    with freshfs.fresh_fs() as fs, fresh(fs) as engine:
        seconds, _ = engine.docker("pull", "-q", ref, timeout=PULL_TIMEOUT)
        engine.docker("image", "inspect", ref)
        if not engine.leftovers():
            raise BenchmarkError(f"{engine.name}: nothing stored under {[str(d) for d in engine.empty_when_idle]}")
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
    parser.add_argument(
        "--pydockerd-mode",
        choices=MODES,
        default=REMOTE,
        help="pydockerd over the pycontainerd daemon (remote, the default) or with its services inside (embedded)",
    )


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
    """The engines under test and the rows being filled in (columns dockerd and pydockerd).

    ``fresh`` starts another engine of each kind with its directories under
    a given path, for the pulls (each into an engine of its own).
    """

    log: Log
    engines: dict[str, Engine]
    metrics: dict[str, Metric] = field(default_factory=dict)
    fresh: dict[str, Callable[[Path], contextlib.AbstractContextManager[Engine]]] = field(default_factory=dict)

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

        def pull(engine: Engine, ref: str = image.ref) -> float:
            return pull_once(ref, s.fresh[engine.name])

        s.repeat(metric, runs, pull)


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
        f"and its overlay2 graph driver (20.10 had no containerd image store), against pydockerd "
        f"({str(facts['pycontainerd_commit'])[:12]}) over pycontainerd in {facts['pydockerd_mode']} mode "
        f"(overlayfs snapshotter). Ratio = pydockerd / dockerd._"
    )


def section(args: argparse.Namespace, data: Path, log: Log) -> Results:
    """Run the Docker benchmark; write ``docker.json`` and ``docker.md`` into ``args.out`` and return them."""
    started_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    began = time.monotonic()
    facts = report.machine_facts()
    facts["dockerd"] = _version([str(DOCKERD), "--version"]) if DOCKERD.exists() else "not installed"
    facts["docker_cli"] = _version([str(DOCKER), "--version"])
    facts["pydockerd_mode"] = args.pydockerd_mode
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
            s.fresh = {
                DOCKERD_NAME: functools.partial(dockerd, host),
                PYDOCKERD_NAME: functools.partial(pydockerd, host, args.pydockerd_mode),
            }
            for name in names:
                try:
                    if name == DOCKERD_NAME:
                        s.engines[name] = stack.enter_context(dockerd(host))
                    else:
                        s.engines[name] = stack.enter_context(pydockerd(host, args.pydockerd_mode))
                except EngineUnavailable as exc:
                    unavailable[name] = str(exc)
                    log(f"docker: {name} is unavailable, its column will say n/a: {str(exc).splitlines()[0]}")
            startup = s.metric("docker_startup", "Engine start-up until `/_ping` answers", "ms", decimals=0)
            startup.note(DOCKERD_NAME, "includes starting its containerd")
            startup.note(PYDOCKERD_NAME, f"{args.pydockerd_mode} mode: includes starting pycontainerd")
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
