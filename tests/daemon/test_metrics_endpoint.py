"""The Prometheus endpoint (``[metrics] address``) read by prometheus_client's own parser while the daemon works.

A pull from a real registry, a container run by containerd's ``ctr`` on
runc, a failing call and a garbage collection each move the counters they
should; the per-container memory equals what the container's cgroup file
says at the same moment (the task is paused, so the number holds still).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.distribution.support import ctr, pyctr, seed
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image
from tests.tasks.spec import remove_namespace_cgroups

pytestmark = pytest.mark.containerd

NS = "metrics-test"
BB = "/bin/busybox"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> tuple[Samples, dict[str, str]]:
    """Every sample (name, labels) → value, and every family's type, as prometheus_client parses them."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


@pytest.fixture
def metered(pycontainerd_daemon_factory: DaemonFactory) -> Iterator[tuple[PycontainerdDaemon, str]]:
    port = free_port()
    config = f'version = 2\n[metrics]\naddress = "127.0.0.1:{port}"\ngrpc_histogram = true\n'
    config += '[plugins."io.containerd.gc.v1.scheduler"]\nschedule_delay = "0s"\nstartup_delay = "0s"\n'
    d = pycontainerd_daemon_factory(config=config)
    try:
        yield d, f"http://127.0.0.1:{port}/v1/metrics"
    finally:
        ctr(d.address, "-n", NS, "tasks", "kill", "-s", "KILL", "m1", ok=False)
        time.sleep(0.2)
        ctr(d.address, "-n", NS, "tasks", "rm", "-f", "m1", ok=False)
        ctr(d.address, "-n", NS, "containers", "rm", "m1", ok=False)
        remove_namespace_cgroups(NS)


def memory_cgroup(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    pytest.fail(f"no memory cgroup for pid {pid}")


def test_counters_follow_a_pull_a_container_and_a_collection(
    metered: tuple[PycontainerdDaemon, str], registry: Registry, tmp_path: Path
) -> None:
    d, url = metered
    seed(registry, image([busybox_files(), {"etc/motd": b"metrics\n"}]), "test/bb:1", tmp_path)
    ref = f"{registry.host}/test/bb:1"
    before, types = scrape(url)
    assert types["grpc_server_handled"] == "counter"
    assert types["pycontainerd_pulls_in_progress"] == "gauge"
    assert value(before, "pycontainerd_content_blobs") == 0

    # A pull through the daemon (pyctr uses the Transfer service): fetched bytes, blobs, snapshots, RPCs.
    pyctr(d, "-n", NS, "images", "pull", "--plain-http", ref)
    after, types = scrape(url)
    blobs, stored = value(after, "pycontainerd_content_blobs"), value(after, "pycontainerd_content_bytes")
    assert blobs == 4  # index-less image: manifest, config, two layers
    fetched = value(after, "pycontainerd_fetched_bytes_total") - value(before, "pycontainerd_fetched_bytes_total")
    assert fetched == stored > 0
    assert (
        value(after, "pycontainerd_pulls_total", result="ok") - value(before, "pycontainerd_pulls_total", result="ok")
        == 1
    )
    assert value(after, "pycontainerd_pulls_in_progress") == 0
    assert value(after, "pycontainerd_snapshots", snapshotter="overlayfs", kind="committed") == 2
    assert value(after, "pycontainerd_snapshot_committed_bytes", snapshotter="overlayfs") > 1 << 20  # busybox
    transfer = {
        "grpc_type": "unary",
        "grpc_service": "containerd.services.transfer.v1.Transfer",
        "grpc_method": "Transfer",
    }
    assert value(after, "grpc_server_handled_total", **transfer, grpc_code="OK") == 1
    assert value(after, "grpc_server_started_total", **transfer) == 1
    assert value(after, "grpc_server_handling_seconds_count", **transfer) == 1
    assert value(after, "grpc_server_handling_seconds_bucket", **transfer, le="+Inf") == 1

    # A call that fails is counted by its code.
    r = ctr(d.address, "-n", NS, "images", "rm", "example.com/absent:1", ok=False)
    assert "not found" in r.stderr  # ctr only warns, but the daemon answered NotFound
    failed, _ = scrape(url)
    images_delete = {"grpc_service": "containerd.services.images.v1.Images", "grpc_method": "Delete"}
    assert value(failed, "grpc_server_handled_total", grpc_type="unary", **images_delete, grpc_code="NotFound") == 1

    # A container under ctr with a memory limit; paused, its numbers hold still while both are read.
    ctr(
        d.address, "-n", NS, "run", "-d", "--memory-limit", str(64 << 20), ref, "m1", BB, "sh", "-c", "sleep 600 & wait"
    )
    pid = int(ctr(d.address, "-n", NS, "tasks", "ls").stdout.splitlines()[1].split()[1])
    ctr(d.address, "-n", NS, "tasks", "pause", "m1")
    cg = memory_cgroup(pid)
    who = {"container_id": "m1", "namespace": NS}
    # Even frozen, a cgroup's page cache may be reclaimed under pressure from elsewhere: take the scrape
    # that falls between two identical reads of the file.
    for _ in range(20):
        usage_file = int((cg / "memory.usage_in_bytes").read_text())
        running, types = scrape(url)
        if int((cg / "memory.usage_in_bytes").read_text()) == usage_file:
            break
    assert value(running, "container_memory_usage_usage_bytes", **who) == usage_file > 0
    assert value(running, "container_memory_usage_limit_bytes", **who) == 64 << 20
    assert value(running, "container_memory_rss_bytes", **who) == int(
        dict(line.split() for line in (cg / "memory.stat").read_text().splitlines())["rss"]
    )
    assert value(running, "container_pids_current", **who) == 2  # sh and sleep
    assert value(running, "container_cpu_total_nanoseconds", **who) > 0
    assert types["container_memory_oom"] == "counter" and value(running, "container_memory_oom_total", **who) == 0
    ctr(d.address, "-n", NS, "tasks", "resume", "m1")
    ctr(d.address, "-n", NS, "tasks", "kill", "-s", "KILL", "m1")
    deadline = time.monotonic() + 10
    while "STOPPED" not in ctr(d.address, "-n", NS, "tasks", "ls").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ctr(d.address, "-n", NS, "tasks", "rm", "m1")
    ctr(d.address, "-n", NS, "containers", "rm", "m1")
    gone, _ = scrape(url)
    assert value(gone, "container_memory_usage_usage_bytes", **who) == 0  # no sample once the task is deleted

    # Removing the image lets a collection take everything: runs and removals are counted.
    runs = value(gone, "pycontainerd_gc_runs_total")
    ctr(d.address, "-n", NS, "images", "rm", ref)
    deadline = time.monotonic() + 20
    while True:
        collected, _ = scrape(url)
        if (
            value(collected, "pycontainerd_content_blobs") == 0
            and value(collected, "pycontainerd_gc_runs_total") > runs
        ):
            break
        assert time.monotonic() < deadline, "no collection took the image's blobs"
        time.sleep(0.1)
    assert total(collected, "pycontainerd_gc_removed_total", kind="blobs") >= 4
    assert total(collected, "pycontainerd_gc_removed_total", kind="snapshots") >= 2
    assert value(collected, "pycontainerd_gc_duration_seconds_count") == value(collected, "pycontainerd_gc_runs_total")
    assert value(collected, "pycontainerd_content_bytes") == 0


def test_endpoint_answers_only_metrics_and_refuses_bad_requests(metered: tuple[PycontainerdDaemon, str]) -> None:
    d, url = metered
    base = url.removesuffix("/v1/metrics")
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        assert b"pycontainerd_build_info" in resp.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/debug/pprof", timeout=10)
    assert e.value.code == 404
    e.value.close()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=10)
    assert e.value.code == 405
    e.value.close()
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /v1/metrics HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"\xff\xfe garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    assert d.running
    info = json.loads(pyctr(d, "info", "--format", "json").stdout)
    assert info["metrics_address"] == f"{host}:{port}"  # pyctr info names the endpoint


def test_metrics_address_in_use_is_one_line(pycontainerd_daemon_factory: DaemonFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = pycontainerd_daemon_factory(config=f'version = 2\n[metrics]\naddress = "127.0.0.1:{port}"\n', start=False)
        d.start(wait=False)
        assert d.proc is not None
        assert d.proc.wait(30) == 1
    last = d.log().strip().splitlines()[-1]
    assert last.startswith("pycontainerd: ") and str(port) in last, d.log()
    assert "Traceback" not in d.log()
