"""Faults from the registry, through a misbehaving proxy in front of a real docker-registry.

Connections reset part-way through a blob, bodies that crawl or stall,
429 Too Many Requests with Retry-After, and registry names that do not
resolve.  The daemon pulls (pyctr, through the Transfer service) with a
short registry timeout from its config, so stalls are found quickly: each
fault either heals (the pull completes with the right digests) or ends in
one clear error within a bounded time, with nothing half-written left.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from pycontainerd.client import Client, RegistryOptions
from pycontainerd.errors import NotFound, Unavailable
from pycontainerd.remotes.docker import DockerResolver, HostOptions
from pycontainerd.remotes.docker._hosts import parse_duration
from pycontainerd.remotes.docker._session import retry_after
from tests.distribution.support import assert_clean, one_line_error, pyctr, seed
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import Image, busybox_files, image
from tests.reliability.soak import record, scale

TIMEOUT = 1.5  # the daemon's registry_timeout: how long a silent body is waited for
RETRIES = 2  # the daemon's registry_retries
MAX_RETRY_AFTER = 2.0
CONFIG = f"""version = 2
[plugins."io.containerd.grpc.v1.transfer"]
registry_timeout = "{int(TIMEOUT * 1000)}ms"
registry_retries = {RETRIES}
max_retry_after = "{int(MAX_RETRY_AFTER)}s"
"""


@pytest.fixture
def daemon(pycontainerd_daemon_factory: DaemonFactory) -> PycontainerdDaemon:
    return pycontainerd_daemon_factory(config=CONFIG)


def _big_image(registry: Registry, tmp_path: Path, ref: str, size: int) -> tuple[Image, str, int]:
    """An image with one layer of ``size`` random bytes (incompressible), seeded at ``ref``; its layer digest, size."""
    img = image([{"data/random.bin": os.urandom(size)}])
    seed(registry, img, ref, tmp_path)
    layer = img.manifest["layers"][0]  # type: ignore[index]
    return img, str(layer["digest"]), int(layer["size"])


def _pull(d: PycontainerdDaemon, ref: str) -> list[str]:
    return pyctr(d, "images", "pull", "-q", ref).stdout.split()


def _forget(d: PycontainerdDaemon, ref: str) -> None:
    pyctr(d, "images", "rm", "--sync", ref)
    assert_clean(d.address)


def test_resets_mid_blob_resume_with_ranges(
    daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    """Each reset leaves part of the layer written; the pull asks for the rest with a Range and completes."""
    img, layer, size = _big_image(registry, tmp_path, "reset/app:1", 3 << 20)
    via = f"{faulty_proxy.host}/reset/app:1"
    f = faulty_proxy.faults
    rounds, resets, problems = scale(2, 10), 0, 0
    for _ in range(rounds):
        f.reset_on, f.reset_next, f.reset_at = f"/blobs/{layer}", scale(4, 12), -1
        wanted = f.reset_next
        f.seen.clear()
        assert _pull(daemon, via) == [via, img.digest]
        ranges = f.gets(f"/blobs/{layer}")
        # One GET per reset and one that completes; each later one starts where the bytes so far end.
        assert len(ranges) == wanted + 1, ranges
        offsets = [int(r.removeprefix("bytes=").rstrip("-")) if r else 0 for r in ranges]
        assert offsets[0] == 0 and offsets == sorted(offsets) and len(set(offsets)) == len(offsets), offsets
        assert offsets[-1] < size
        with Client(daemon.address) as c:
            assert c.content.info(layer).size == size
            assert c.content.list_statuses() == []
        resets += wanted
        _forget(daemon, via)
    record(
        "faults",
        "registry connection reset mid-blob (pull resumes with Range)",
        resets,
        "image complete, digests right",
        problems,
    )


def test_a_persistent_reset_is_one_error_after_bounded_retries(
    daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    img, layer, _ = _big_image(registry, tmp_path, "reset/always:1", 1 << 20)
    via = f"{faulty_proxy.host}/reset/always:1"
    f = faulty_proxy.faults
    f.reset_on, f.reset_next, f.reset_at = f"/blobs/{layer}", 1000, 0  # headers, then RST, every time
    started = time.monotonic()
    line = one_line_error(pyctr(daemon, "images", "pull", "-q", via, ok=False))
    assert "broke" in line and layer in line and f"after {RETRIES + 1} tries" in line, line
    assert time.monotonic() - started < 20
    assert len(f.gets(f"/blobs/{layer}")) == RETRIES + 1  # bounded: a try and the retries, no more
    with Client(daemon.address) as c, pytest.raises(NotFound):
        c.content.info(layer)  # nothing committed
    assert_clean(daemon.address)  # and the ingest went with the pull's lease
    f.reset_next = 0
    assert _pull(daemon, via) == [via, img.digest]
    record(
        "faults",
        "registry resets every connection to a blob",
        1,
        "one error after 3 tries, nothing committed, pull repeated",
    )


def test_slow_body_completes_and_stalled_body_times_out(
    daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    img, layer, size = _big_image(registry, tmp_path, "slow/app:1", 768 << 10)
    via = f"{faulty_proxy.host}/slow/app:1"
    f = faulty_proxy.faults
    # Slower than the timeout end to end (~3 s against 1.5 s), but never silent that long: it completes.
    f.slow_on, f.slow_rate = f"/blobs/{layer}", 256 << 10
    started = time.monotonic()
    assert _pull(daemon, via) == [via, img.digest]
    took = time.monotonic() - started
    assert took > TIMEOUT, took
    assert len(f.gets(f"/blobs/{layer}")) == 1  # no retry was needed
    f.slow_on = ""
    _forget(daemon, via)

    # Headers, then silence: each try waits out the timeout, then one clear error.
    f.stall_on, f.stall_at = f"/blobs/{layer}", 0
    started = time.monotonic()
    line = one_line_error(pyctr(daemon, "images", "pull", "-q", via, ok=False))
    took = time.monotonic() - started
    assert "stopped sending" in line and layer in line, line
    assert (RETRIES + 1) * TIMEOUT <= took < (RETRIES + 1) * TIMEOUT + 10, took
    assert_clean(daemon.address)

    # Half the body, then silence, once: the pull resumes from the half.
    f.stall_at, f.stall_next = -1, 1
    f.seen.clear()
    assert _pull(daemon, via) == [via, img.digest]
    ranges = f.gets(f"/blobs/{layer}")
    assert ranges[0] == "" and ranges[1] == f"bytes={size // 2}-", ranges
    f.stall_on = ""
    record("faults", "slow registry (body slower than the timeout)", 1, "pull completes")
    record("faults", "stalled registry body", 2, "one error within the retries' timeouts; resumed when it heals")


def test_429_retry_after_is_honoured(
    daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    img = image([busybox_files()])
    seed(registry, img, "busy/app:1", tmp_path)
    via = f"{faulty_proxy.host}/busy/app:1"
    f = faulty_proxy.faults
    cases = [
        ("1", 1.0, 1.0),  # delay-seconds
        ("date", 1.0, MAX_RETRY_AFTER),  # an HTTP date ~3 s ahead (whole seconds), capped at 2 s
        ("3600", MAX_RETRY_AFTER, MAX_RETRY_AFTER),  # an hour: capped
    ]
    for header, least, most in cases:
        f.throttle_on, f.throttle_next = "/blobs/", 1
        f.retry_after = header
        if header == "date":
            f.retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
        f.seen.clear()
        f.stamps.clear()
        assert _pull(daemon, via) == [via, img.digest]
        blob_gets = [i for i, (m, p, _) in enumerate(f.seen) if m == "GET" and "/blobs/" in p]
        throttled = blob_gets[0]
        # The next request of the same blob waited what the header said (within the cap).
        again = next(i for i in blob_gets[1:] if f.seen[i][1] == f.seen[throttled][1])
        waited = f.stamps[again] - f.stamps[throttled]
        assert least - 0.05 <= waited <= most + 1.0, (header, waited)
        _forget(daemon, via)

    f.throttle_on, f.throttle_next, f.retry_after = "/manifests/", 1000, "0"
    line = one_line_error(pyctr(daemon, "images", "pull", "-q", via, ok=False))
    assert "429" in line, line
    assert len(f.seen) <= 2 * (RETRIES + 1) + 4
    assert_clean(daemon.address)
    record(
        "faults",
        "429 with Retry-After (seconds, HTTP date, over the cap)",
        3,
        "waited as asked (capped), pull completes",
    )
    record("faults", "429 that never ends", 1, "one error after the retries")


def test_retry_after_and_duration_parsing() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("120", now) == 120.0
    assert retry_after("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
    assert retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0  # in the past: at once
    for bad in ("", "soon", "-5", "1.5", "²"):
        assert retry_after(bad, now) is None, bad
    assert parse_duration("1m30s") == 90.0 and parse_duration("500ms") == 0.5 and parse_duration("2h") == 7200.0
    for bad in ("", "5", "s", "1x", "1s "):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_cap_on_retry_after_in_the_client(registry: Registry, faulty_proxy: FaultyProxy) -> None:
    """The same cap in the client's own resolver (pyctr --local, ctr-style pulls in the client)."""
    f = faulty_proxy.faults
    f.throttle_on, f.throttle_next, f.retry_after = "/v2/", 1, "86400"
    started = time.monotonic()
    with DockerResolver(HostOptions(max_retry_after=0.5)) as r, pytest.raises(NotFound):
        r.resolve(f"{faulty_proxy.host}/nothing/here:1")
    assert 0.5 <= time.monotonic() - started < 5


@pytest.mark.parametrize("name", ["registry.pycontainerd-test.invalid", "no-such-host.invalid:5000"])
def test_a_host_that_does_not_resolve_is_one_quick_error(daemon: PycontainerdDaemon, name: str) -> None:
    ref = f"{name}/team/app:1"
    started = time.monotonic()
    line = one_line_error(pyctr(daemon, "images", "pull", "-q", ref, ok=False))
    assert "cannot resolve" in line and name.split(":", maxsplit=1)[0] in line, line
    with Client(daemon.address) as c, pytest.raises(Unavailable, match="cannot resolve"):
        c.pull(ref, registry=RegistryOptions(), local=True)
    assert time.monotonic() - started < 15
    assert_clean(daemon.address)
    assert "Traceback" not in daemon.log()
    record("faults", "registry host name that does not resolve", 2, "one quick error, nothing left")
