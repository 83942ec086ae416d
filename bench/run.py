"""Benchmark pycontainerd against Debian's containerd in one run, on this machine (``make bench``).

Both daemons start on private temporary roots and sockets, get the same
work, and are timed side by side; each repetition alternates which daemon
goes first, so background load on the machine lands on both alike.  Three
benchmarks, each with the target set for pycontainerd:

* content ingest: ``ctr content ingest`` of one large random file, best of
  ``--runs``, in MB/s (10^6 bytes/s); pycontainerd ≥ 1.0x containerd;
* listing 1,000 records: wall time of ``ctr images ls`` and ``ctr content
  ls``, and latency of the raw Images.List / Content.List RPCs, medians;
  pycontainerd ≤ 2x containerd;
* fetch: ``content fetch`` of a large multi-layer image from a registry on
  127.0.0.1 (``ctr`` against containerd, ``pyctr`` against pycontainerd),
  median of ``--runs``; pycontainerd ≤ 0.8x containerd's time;
* pull + unpack: ``ctr images pull`` against each daemon, and ``pyctr
  images pull`` against pycontainerd, of an image built from this machine's
  files (about 1 GB, tens of thousands of files) and of a debootstrapped
  Debian (``--no-debian`` skips it); pycontainerd ≤ 0.5x containerd's time;
  snapshot Prepare+Mounts+Remove and Commit latency, no target;
* containers (``--no-runtime`` skips them): ``ctr run --rm`` of busybox
  ``true``, median of ``--runtime-runs``, pycontainerd ≤ 1.0x; RSS and PSS
  of each shim with ``--shims`` containers running, mean per shim,
  pycontainerd ≤ 1.0x; ``--concurrent`` containers started with ``ctr run
  -d`` at once, then all removed at once, total time, pycontainerd ≤ 1.0x;
* Docker (``--no-docker`` skips it, ``--docker-only`` runs it alone): the
  docker CLI against Debian's dockerd and against pydockerd over a fresh
  pycontainerd, after the daemons above are stopped; ``docker pull`` of the
  two images above, pydockerd ≤ 0.5x dockerd's time, and ``docker run --rm``
  of busybox ``true``, ≤ 1.0x (see :mod:`bench.docker`; its own table);
* memory: RSS and PSS of each daemon's process tree 5 s after start, and
  again after the listing work; pycontainerd ≤ 1.5x containerd.  Anonymous
  memory (heap) is shown beside them, without a target: unlike PSS it does
  not shift with whatever else on the machine shares the daemon's pages.

Writes ``latest.json`` (every sample, machine facts, versions) and
``latest.md`` (the README table) into ``--out`` and prints the table.  A
daemon that is not installed or does not answer gets ``n/a``.  Both daemons
are stopped and every temporary directory removed however the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):
    # Run as a script (`python bench/run.py`): make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from bench import chart, daemons, docker, freshfs, memory, report, runtime, unpack, workloads
from bench.daemons import CONTAINERD_NAME, NAMES, PYCONTAINERD_NAME, Daemon
from bench.report import Metric

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
MIB = 1 << 20
# A daemon's repetitions stop early (after at least MIN_RUNS) once they have taken this long.
RUN_BUDGET_S = 120.0
MIN_RUNS = 3
MEMORY_TARGET = 1.5
FAILURES = (workloads.BenchmarkError, grpc.RpcError, subprocess.TimeoutExpired, OSError)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return f"gRPC {exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Bench:
    """The daemons under test, the rows being filled in, and raw facts for the JSON."""

    args: argparse.Namespace
    running: dict[str, Daemon]
    clients: dict[str, workloads.Client]
    metrics: dict[str, Metric] = field(default_factory=dict)
    extra: dict[str, dict[str, object]] = field(default_factory=dict)

    def metric(
        self,
        key: str,
        label: str,
        unit: str,
        *,
        better: report.Better = "lower",
        summary: report.Summary = "single",
        target: float | None = None,
        decimals: int = 1,
    ) -> Metric:
        """Add a table row; rows appear in the order they are added."""
        self.metrics[key] = Metric(key, label, unit, better, summary, target, decimals)
        return self.metrics[key]

    def healthy(self, *metrics: Metric) -> list[str]:
        """Daemons still running with no error in any of ``metrics``."""
        names = []
        for name, daemon in self.running.items():
            if any(name in m.errors for m in metrics):
                continue
            if not daemon.alive():
                for m in metrics:
                    m.fail(name, f"{name} died (exit {daemon.proc.returncode}): {daemon.log_tail(500)}")
                continue
            names.append(name)
        return names

    def repeat(self, metric: Metric, runs: int, measure: Callable[[str], float]) -> None:
        """Fill ``metric`` with ``runs`` samples per daemon, alternating which daemon goes first."""
        spent = dict.fromkeys(self.running, 0.0)
        for run in range(runs):
            order = self.healthy(metric)
            for name in order if run % 2 == 0 else order[::-1]:
                taken = len(metric.samples.get(name, []))
                if spent[name] > RUN_BUDGET_S and taken >= MIN_RUNS:
                    if taken == run:
                        metric.note(
                            name, f"stopped after {taken} of {runs} runs (over the {RUN_BUDGET_S:.0f} s budget)"
                        )
                    continue
                started = time.monotonic()
                try:
                    value = measure(name)
                except FAILURES as exc:
                    metric.fail(name, describe(exc))
                    log(f"{name}: {metric.label}: {describe(exc)}")
                    continue
                spent[name] += time.monotonic() - started
                metric.add(name, value)
                log(f"{name}: {metric.label} [{run + 1}/{runs}]: {value:,.{metric.decimals}f} {metric.unit}")

    def sample_memory(self, key: str, when: str) -> None:
        """Add RSS, PSS and anonymous-memory rows for every daemon's process tree, read right now."""
        rss = self.metric(f"{key}_rss", f"RSS, {when}", "MiB", target=MEMORY_TARGET)
        pss = self.metric(f"{key}_pss", f"PSS, {when}", "MiB", target=MEMORY_TARGET)
        anon = self.metric(f"{key}_anon", f"Anonymous memory (heap), {when}", "MiB")
        for name in self.healthy():
            taken = memory.sample(self.running[name].pid)
            rss.add(name, taken.rss_kib / 1024)
            pss.add(name, taken.pss_kib / 1024)
            anon.add(name, taken.anon_kib / 1024)
            self.extra.setdefault(name, {})[f"memory_{key}"] = taken.as_json()
            if others := memory.same_executable(self.running[name].pid):
                who = "1 other process runs" if others == 1 else f"{others} other processes run"
                pss.note(name, f"{who} the same executable here; PSS splits the shared pages with them")
            log(
                f"{name}: memory {when}: RSS {rss.samples[name][-1]:.1f}, PSS {pss.samples[name][-1]:.1f}, anon {anon.samples[name][-1]:.1f} MiB"
            )


def bench_idle(b: Bench) -> None:
    startup = b.metric("startup", "Start-up until the first RPC is answered", "ms", decimals=0)
    for name, daemon in b.running.items():
        startup.add(name, daemon.ready_after * 1000)
    if b.running:
        wake = max(d.launched for d in b.running.values()) + b.args.idle_wait
        time.sleep(max(0.0, wake - time.monotonic()))
    b.sample_memory("idle", f"idle {b.args.idle_wait:g} s after start")


def ctr_list_ms(b: Bench, what: str, name: str) -> float:
    return workloads.ctr_list(b.running[name].address, what) * 1000


def bench_list(b: Bench) -> None:
    n, runs, rpc_runs = b.args.records, b.args.list_runs, b.args.rpc_runs
    setup = b.metric("populate", f"Storing {n:,} images + manifests via gRPC (setup)", "s", decimals=2)
    images_ls = b.metric(
        "ctr_images_ls", f"`ctr images ls`, {n:,} images (median of {runs})", "ms", summary="median", target=2.0
    )
    content_ls = b.metric(
        "ctr_content_ls", f"`ctr content ls`, {n + 1:,} blobs (median of {runs})", "ms", summary="median", target=2.0
    )
    images_rpc = b.metric(
        "rpc_images_list",
        f"Images.List RPC, {n:,} images (median of {rpc_runs})",
        "ms",
        summary="median",
        target=2.0,
        decimals=2,
    )
    content_rpc = b.metric(
        "rpc_content_list",
        f"Content.List RPC, {n + 1:,} blobs (median of {rpc_runs})",
        "ms",
        summary="median",
        target=2.0,
        decimals=2,
    )
    rows = [images_ls, content_ls, images_rpc, content_rpc]
    for name in b.healthy(setup):
        log(f"{name}: storing {n:,} images")
        try:
            done = workloads.populate(b.clients[name], n)
        except FAILURES as exc:
            for m in (setup, *rows):
                m.fail(name, f"setup failed: {describe(exc)}")
            log(f"{name}: setup failed: {describe(exc)}")
            continue
        setup.add(name, done.seconds)
        log(f"{name}: stored {done.images:,} images and {done.blobs:,} blobs in {done.seconds:.2f} s")
    for metric, what, rows_expected in ((images_ls, "images", n), (content_ls, "content", n + 1)):
        for name in b.healthy(metric):
            try:
                for text in workloads.check_listing(b.running[name].address, what, rows_expected):
                    metric.note(name, text)
            except FAILURES as exc:
                metric.fail(name, describe(exc))
                log(f"{name}: {metric.label}: {describe(exc)}")
        b.repeat(metric, runs, functools.partial(ctr_list_ms, b, what))
    b.repeat(images_rpc, rpc_runs, lambda name: workloads.rpc_images_list(b.clients[name], n) * 1000)
    b.repeat(content_rpc, rpc_runs, lambda name: workloads.rpc_content_list(b.clients[name], n + 1) * 1000)
    b.sample_memory("after_list", "after the listing benchmarks")


def bench_ingest(b: Bench, blob: workloads.Blob) -> None:
    runs = b.args.runs
    ingest = b.metric(
        "ingest",
        f"`ctr content ingest`, {b.args.ingest_mib:,} MiB (best of {runs})",
        "MB/s",
        better="higher",
        summary="best",
        target=1.0,
    )

    def measure(name: str) -> float:
        ref = f"bench-ingest-{name}-{len(ingest.samples.get(name, []))}-{time.time_ns()}"
        seconds = workloads.ingest(b.clients[name], b.running[name].address, blob, ref)
        return blob.size / seconds / 1e6

    b.repeat(ingest, runs, measure)
    peak = b.metric("peak_rss", "Peak RSS over the whole run (VmHWM)", "MiB")
    for name in b.healthy():
        taken = memory.sample(b.running[name].pid)
        peak.add(name, taken.peak_rss_kib / 1024)
        b.extra.setdefault(name, {})["memory_end"] = taken.as_json()


PYCTR = daemons.REPO / ".venv" / "bin" / "pyctr"


def fetch_once(b: Bench, name: str, ref: str) -> float:
    """Fetch ``ref`` whole into an empty store and return the seconds taken, then empty the store again.

    containerd's ``ctr content fetch`` fetches in the client and writes
    through the Content API, as containerd 1.x clients do; pyctr asks
    pycontainerd to fetch in the daemon, so layer bytes never cross the socket.
    """
    address = b.running[name].address
    if name == CONTAINERD_NAME:
        seconds, _ = workloads.ctr(address, "content", "fetch", "--plain-http", ref)
    else:
        argv = [str(PYCTR), "-a", address, "-n", workloads.NAMESPACE, "content", "fetch", "-q", "--plain-http", ref]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, timeout=900, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise workloads.BenchmarkError(
                f"pyctr content fetch exited {done.returncode}: {done.stderr.decode()[-500:]}"
            )
    workloads.ctr(address, "images", "rm", "--sync", ref)
    return seconds


def bench_fetch(b: Bench, data: Path) -> None:
    from bench import registry

    layers, mib = b.args.fetch_layers, b.args.fetch_mib
    runs = b.args.runs
    fetch = b.metric(
        "fetch",
        f"content fetch of a {mib:,} MiB, {layers}-layer image from a local registry (median of {runs})",
        "s",
        summary="median",
        target=0.8,
        decimals=2,
    )
    try:
        stack = contextlib.ExitStack()
        host = stack.enter_context(registry.registry())
    except (OSError, RuntimeError) as exc:
        for name in b.healthy(fetch):
            fetch.fail(name, f"no registry: {exc}")
        return
    with stack:
        log(f"pushing a {mib:,} MiB image to the registry at {host}")
        ref = registry.push_big_image(host, data / "fetch", layers, mib * MIB // layers)
        b.repeat(fetch, runs, lambda name: fetch_once(b, name, ref))


def pull_argv(address: str, client: str, ref: str) -> list[str]:
    if client == "ctr":
        return [str(daemons.CTR), "-a", address, "-n", workloads.NAMESPACE, "images", "pull", "--plain-http", ref]
    return [str(PYCTR), "-a", address, "-n", workloads.NAMESPACE, "images", "pull", "-q", "--plain-http", ref]


def pull_once(b: Bench, name: str, client: str, ref: str) -> float:
    """One pull-and-unpack into an empty store: daemon ``name`` started for it on a file system of its own.

    See :mod:`bench.freshfs`: no pull pays for an earlier one's deletions.
    The daemon's start is not timed; the pull is, and it checks the image
    is unpacked.
    """
    unpack.wait_disk_idle()
    with freshfs.fresh_fs() as fs, daemons.running([name], parent=fs) as (ready, unavailable):
        if name not in ready:
            raise workloads.BenchmarkError(unavailable.get(name, f"{name} did not start"))
        d = ready[name]
        seconds = unpack.pull_seconds(pull_argv(d.address, client, ref))
        unpack.check_unpacked(d.address, d.base / "root", ref)
    return seconds


def bench_unpack(b: Bench, data: Path) -> None:
    from bench import registry

    runs = b.args.runs
    images: list[tuple[str, str]] = []
    rows: list[tuple[Metric, str, str]] = []
    try:
        stack = contextlib.ExitStack()
        host = stack.enter_context(registry.registry())
    except (OSError, RuntimeError) as exc:
        log(f"unpack benchmarks skipped: no registry: {exc}")
        return
    with stack:
        log("building the files image from this machine's /usr")
        ref, size, files = unpack.build_files_image(host, data / "unpack")
        images.append((f"{size / 1e9:.2f} GB, {files:,} files", ref))
        if b.args.debian:
            log("building a Debian bookworm image with debootstrap")
            try:
                dref, dsize, dfiles = unpack.build_debian_image(host, data / "unpack")
                images.append((f"Debian bookworm minbase, {dsize / 1e6:.0f} MB, {dfiles:,} files", dref))
            except (OSError, subprocess.SubprocessError) as exc:
                log(f"no Debian image: {exc}")
        for what, image_ref in images:
            by_ctr = b.metric(
                f"unpack_ctr_{len(rows)}",
                f"pull + unpack, `ctr images pull` against each daemon: {what} (median of {runs})",
                "s",
                summary="median",
                target=0.5,
                decimals=2,
            )
            by_pyctr = b.metric(
                f"unpack_pyctr_{len(rows)}",
                f"pull + unpack, `ctr` against containerd vs `pyctr images pull` against pycontainerd: {what}",
                "s",
                summary="median",
                target=0.5,
                decimals=2,
            )
            rows += [(by_ctr, "ctr", image_ref), (by_pyctr, "pyctr", image_ref)]
        for metric, client, image_ref in rows:

            def measure(name: str, client: str = client, image_ref: str = image_ref) -> float:
                return pull_once(b, name, "ctr" if name == CONTAINERD_NAME else client, image_ref)

            b.repeat(metric, runs, measure)
    pmr = b.metric("snap_pmr", "snapshot Prepare + Mounts + Remove, on a committed parent (median)", "ms")
    commit = b.metric("snap_commit", "snapshot Commit of an empty active snapshot (median)", "ms")
    for name in b.healthy(pmr, commit):
        try:
            p, c = unpack.snapshot_latency(b.clients[name], b.args.rpc_runs * 4)
        except FAILURES as exc:
            pmr.fail(name, describe(exc))
            commit.fail(name, describe(exc))
            continue
        pmr.add(name, p)
        commit.add(name, c)
        log(f"{name}: snapshots: prepare+mounts+remove {p:.2f} ms, commit {c:.2f} ms")


def bench_runtime(b: Bench, data: Path) -> None:
    runs, count, many = b.args.runtime_runs, b.args.shims, b.args.concurrent
    first = b.metric("run_rm_first", "first `ctr run --rm` of busybox `true` after start", "ms", decimals=0)
    latency = b.metric(
        "run_rm",
        f"`ctr run --rm` of busybox `true` (median of {runs})",
        "ms",
        summary="median",
        target=1.0,
        decimals=0,
    )
    rss = b.metric("shim_rss", f"RSS per shim, {count} containers running (mean)", "MiB", target=1.0, decimals=2)
    pss = b.metric("shim_pss", f"PSS per shim, {count} containers running (mean)", "MiB", target=1.0, decimals=2)
    rounds = f"median of {b.args.concurrent_runs}"
    started = b.metric("many_start", f"{many} x `ctr run -d` at once ({rounds})", "s", summary="median", decimals=2)
    removed = b.metric(
        "many_rm",
        f"then `ctr tasks rm -f` + `ctr containers rm` of all {many} at once",
        "s",
        summary="median",
        decimals=2,
    )
    total = b.metric(
        "many_total",
        f"{many} containers started at once, then removed: total ({rounds})",
        "s",
        summary="median",
        target=1.0,
        decimals=2,
    )
    sites = {name: runtime.Site.of(d) for name, d in b.running.items()}
    try:
        tar = runtime.build_image(data)
        for name in b.healthy():
            try:
                runtime.import_image(sites[name], tar)
                # The first run pays for cold caches (and pycontainerd's for starting its fork server).
                first.add(name, runtime.run_rm(sites[name], f"first-{name}") * 1000)
            except FAILURES as exc:
                for m in (first, latency, rss, pss, started, removed, total):
                    m.fail(name, f"setup failed: {describe(exc)}")
                log(f"{name}: runtime setup failed: {describe(exc)}")

        def one_run(name: str) -> float:
            return runtime.run_rm(sites[name], f"rm-{name}-{len(latency.samples.get(name, []))}") * 1000

        b.repeat(latency, runs, one_run)
        for name in b.healthy(rss):
            try:
                taken = runtime.memory_with(sites[name], count)
            except FAILURES as exc:
                rss.fail(name, describe(exc))
                pss.fail(name, describe(exc))
                log(f"{name}: shim memory: {describe(exc)}")
                runtime.reap(sites[name], b.running[name].alive())
                continue
            per_rss, per_pss = taken.per_shim()
            rss.add(name, per_rss / 1024)
            pss.add(name, per_pss / 1024)
            b.extra.setdefault(name, {})["shim_memory"] = taken.as_json()
            for pid, (helper_rss, helper_pss) in taken.helpers.items():
                text = (
                    f"includes the fork server (pid {pid}: RSS {helper_rss / 1024:.1f}, PSS {helper_pss / 1024:.1f} MiB)"
                    f" split among the {count} shims"
                )
                rss.note(name, text)
                pss.note(name, text)
            if others := taken.others:
                pss.note(
                    name, f"{others} other processes run the shim's executable here; PSS splits its pages with them"
                )
            log(f"{name}: per shim: RSS {per_rss / 1024:.2f} MiB, PSS {per_pss / 1024:.2f} MiB")

        def at_once(name: str) -> float:
            ids = [f"many-{name}-{len(total.samples.get(name, []))}-{i}" for i in range(many)]
            up, down = runtime.many_at_once(sites[name], ids)
            started.add(name, up)
            removed.add(name, down)
            return up + down

        b.repeat(total, b.args.concurrent_runs, at_once)
    finally:
        for name, site in sites.items():
            runtime.reap(site, b.running[name].alive())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", choices=NAMES, help="run one daemon only (the other's column says n/a)")
    parser.add_argument(
        "--ingest-mib", type=int, default=1024, help="size of the ingested file in MiB; 0 skips ingest (default 1024)"
    )
    parser.add_argument("--runs", type=int, default=3, help="ingest and fetch runs per daemon (default 3)")
    parser.add_argument(
        "--fetch-mib", type=int, default=1024, help="size of the fetched image in MiB; 0 skips fetch (default 1024)"
    )
    parser.add_argument("--fetch-layers", type=int, default=4, help="layers of the fetched image (default 4)")
    parser.add_argument("--no-unpack", dest="unpack", action="store_false", help="skip the pull-and-unpack benchmarks")
    parser.add_argument("--no-debian", dest="debian", action="store_false", help="skip the debootstrapped Debian image")
    parser.add_argument("--no-list", dest="list", action="store_false", help="skip the listing benchmarks")
    parser.add_argument("--no-runtime", dest="runtime", action="store_false", help="skip the container benchmarks")
    parser.add_argument("--runtime-runs", type=int, default=20, help="timed `ctr run --rm` per daemon (default 20)")
    parser.add_argument(
        "--shims", type=int, default=10, help="containers running while shims are measured (default 10)"
    )
    parser.add_argument(
        "--concurrent", type=int, default=50, help="containers started at once by `ctr run -d` (default 50)"
    )
    parser.add_argument(
        "--concurrent-runs", type=int, default=3, help="rounds of the containers-at-once benchmark (default 3)"
    )
    parser.add_argument(
        "--records",
        type=int,
        default=1000,
        help="images (and manifests) stored for the listing benchmarks (default 1000)",
    )
    parser.add_argument("--list-runs", type=int, default=10, help="timed `ctr … ls` runs per daemon (default 10)")
    parser.add_argument("--rpc-runs", type=int, default=25, help="timed List RPCs per daemon (default 25)")
    parser.add_argument(
        "--idle-wait", type=float, default=5.0, help="seconds after start before the idle memory sample (default 5)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"where latest.json and latest.md go (default {DEFAULT_OUT})"
    )
    docker.add_arguments(parser)
    args = parser.parse_args(argv)
    docker.check_arguments(parser, args)
    if args.fetch_mib < 0 or args.fetch_layers < 1:
        parser.error("--fetch-mib must be >= 0 and --fetch-layers >= 1")
    counts = (args.runs, args.records, args.list_runs, args.rpc_runs, args.runtime_runs, args.shims, args.concurrent)
    if args.ingest_mib < 0 or min(counts) < 1 or args.concurrent_runs < 1:
        parser.error("sizes must be >= 0 and counts >= 1")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def clients_for(running: dict[str, Daemon]) -> Iterator[dict[str, workloads.Client]]:
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(workloads.Client(d.address)) for name, d in running.items()}


def daemon_status(
    names: list[str], running: dict[str, Daemon], unavailable: dict[str, str], b: Bench
) -> dict[str, object]:
    status: dict[str, object] = {}
    for name in NAMES:
        if name not in names:
            status[name] = {"status": "skipped", "detail": "excluded by --only"}
        elif name in unavailable:
            status[name] = {"status": "unavailable", "detail": unavailable[name]}
        else:
            d = running[name]
            status[name] = {"status": "ran", "pid": d.pid, "ready_after_s": d.ready_after, **b.extra.get(name, {})}
    return status


def run(args: argparse.Namespace) -> int:
    started_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    if args.docker_only:
        return docker.run_only(args, log)
    began = time.monotonic()
    facts = report.machine_facts()
    load_before = os.getloadavg()
    names = [args.only] if args.only else list(NAMES)
    log(f"benchmarking {', '.join(names)} on {facts['cpu_model']}")
    with daemons.scratch("bench-data-") as data:
        blob = None
        if args.ingest_mib:
            log(f"writing a {args.ingest_mib:,} MiB random file")
            blob = workloads.make_random_file(data / "ingest.bin", args.ingest_mib * MIB)
        with daemons.running(names) as (running, unavailable), clients_for(running) as clients:
            for name, why in unavailable.items():
                log(f"{name} is unavailable, its column will say n/a: {why.splitlines()[0]}")
            b = Bench(args, running, clients)
            bench_idle(b)
            if args.list:
                bench_list(b)
            if blob is not None:
                bench_ingest(b, blob)
            if args.fetch_mib:
                bench_fetch(b, data)
            if args.unpack:
                bench_unpack(b, data)
            if args.runtime:
                bench_runtime(b, data)
            statuses = daemon_status(names, running, unavailable, b)
        docker_results = docker.section(args, data, log) if args.docker else None
    metrics = list(b.metrics.values())
    absent = [
        f"{n}: {s['detail'].splitlines()[0]}"
        for n, s in statuses.items()
        if isinstance(s, dict) and s["status"] != "ran"
    ]
    footer = report.footer(facts, started_at.isoformat())
    if absent:
        footer += "\n\n_Not measured: " + "; ".join(absent) + "._"
    table = report.markdown(metrics, footer)
    if docker_results is not None:
        table += "\n" + docker_results.table
    document: dict[str, object] = {
        "schema_version": 1,
        "started_at": started_at.isoformat(),
        "duration_s": round(time.monotonic() - began, 1),
        "argv": sys.argv,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": facts,
        # Other work on the machine skews everything; a high load here says to rerun.
        "load_average_1_5_15": {"start": load_before, "end": os.getloadavg()},
        "daemons": statuses,
        "ingest_digest": blob.digest if blob else None,
        "benchmarks": [m.as_json() for m in metrics],
        "docker": docker_results.document if docker_results is not None else None,
        "table_markdown": table,
    }
    json_path, md_path = report.write(args.out, document, table)
    print(table)
    log(f"wrote {json_path} and {md_path} in {time.monotonic() - began:.0f} s")
    for png in chart.draw(args.out):
        log(f"drew {png}")
    wanted_missing = [n for n in names if n in unavailable and (n == CONTAINERD_NAME or args.only == PYCONTAINERD_NAME)]
    return 1 if wanted_missing else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGINT too: a shell that starts us in the background leaves it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        return run(args)
    except KeyboardInterrupt:
        log("interrupted; daemons stopped and temporary files removed, no results written")
        return 130


if __name__ == "__main__":
    sys.exit(main())
