"""The metrics types, their text exposition (read back by prometheus_client's parser) and the endpoint's head parser."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from pycontainerd._http1 import HTTPError, parse_request
from pycontainerd.api.cgroups.v1 import metrics_pb2 as v1
from pycontainerd.api.cgroups.v2 import metrics_pb2 as v2
from pycontainerd.metrics import Counter, Family, Gauge, Histogram, Registry, Sample, render
from pycontainerd.metrics._http import MAX_HEAD
from pycontainerd.metrics.cgroups import families as cgroup_families


def parsed(families: list[Family]) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(render(families).decode())}


def samples(families: list[Family]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for f in text_string_to_metric_families(render(families).decode()):
        for s in f.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_counter_gauge_histogram_round_trip_through_the_parser() -> None:
    c = Counter("jobs_total", "Jobs done.", ("kind",))
    c.labels("pull").inc()
    c.labels("pull").inc(2)
    c.labels("push").inc()
    g = Gauge("queue", "Waiting now.")
    g.labels().inc(3)
    g.labels().dec()
    h = Histogram("took_seconds", "Time.", ("op",), buckets=(0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.labels("x").observe(v)
    got = samples([c.family(), g.family(), h.family()])
    assert got[("jobs_total", frozenset({("kind", "pull")}))] == 3
    assert got[("jobs_total", frozenset({("kind", "push")}))] == 1
    assert got[("queue", frozenset())] == 2
    bucket = {le: got[("took_seconds_bucket", frozenset({("op", "x"), ("le", le)}))] for le in ("0.1", "1.0", "+Inf")}
    assert bucket == {"0.1": 2, "1.0": 3, "+Inf": 4}  # le is inclusive, buckets cumulative
    assert got[("took_seconds_count", frozenset({("op", "x")}))] == 4
    assert got[("took_seconds_sum", frozenset({("op", "x")}))] == pytest.approx(3.65)
    types = {n: f.type for n, f in parsed([c.family(), g.family(), h.family()]).items()}  # type: ignore[attr-defined]
    assert types == {"jobs": "counter", "queue": "gauge", "took_seconds": "histogram"}


def test_misuse_is_refused() -> None:
    c = Counter("c_total", "", ("a",))
    with pytest.raises(ValueError, match="labels"):
        c.labels()
    with pytest.raises(ValueError, match="only goes up"):
        c.labels("x").inc(-1)
    with pytest.raises(ValueError, match="invalid metric name"):
        Gauge("1bad", "")
    with pytest.raises(ValueError, match="finite bucket"):
        Histogram("h", "", buckets=(math.inf,))
    r = Registry()
    r.counter("same_total", "")
    assert r.counter("same_total", "") is r.counter("same_total", "")
    with pytest.raises(ValueError, match="is a counter"):
        r.gauge("same_total", "")


@given(st.text(max_size=40), st.text(alphabet=st.sampled_from('ab \\\n"{}'), max_size=40))
def test_any_label_value_and_help_survive_escaping(label: str, inner: str) -> None:
    help = f"<{inner}>"  # the parser strips whitespace at the ends of help; ours has none there
    family = Family("m", "gauge", help, (Sample("m", (("l", label),), 1.5),))
    [f] = text_string_to_metric_families(render([family]).decode())
    assert f.samples[0].labels == {"l": label} and f.samples[0].value == 1.5
    assert f.documentation == help


def test_collectors_are_read_at_scrape_and_a_failing_one_is_counted() -> None:
    r = Registry()
    r.counter("done_total", "Done.").inc()

    async def later() -> list[Family]:
        return [Family("later", "gauge", "", (Sample("later", (), 7),))]

    def broken() -> list[Family]:
        raise RuntimeError("cannot read")

    r.add_collector("later", later)
    r.add_collector("broken", broken)
    got = samples(asyncio.run(r.collect()))
    assert got[("done_total", frozenset())] == 1
    assert got[("later", frozenset())] == 7
    assert got[("pycontainerd_metrics_collector_errors_total", frozenset({("collector", "broken")}))] == 1


def test_cgroup_v1_metrics_are_labelled_by_container() -> None:
    m = v1.Metrics()
    m.memory.usage.usage = 123
    m.memory.usage.limit = 456
    m.memory.rss = 100
    m.pids.current = 3
    m.cpu.usage.total = 10**9
    m.cpu.usage.per_cpu.extend([4, 6])
    m.memory_oom_control.oom_kill = 2
    m.blkio.io_service_bytes_recursive.add(op="Read", major=8, minor=0, value=4096)
    got = samples(cgroup_families([("ns", "c1", m), ("ns", "c2", v1.Metrics())]))
    who = frozenset({("container_id", "c1"), ("namespace", "ns")})
    assert got[("container_memory_usage_usage_bytes", who)] == 123
    assert got[("container_memory_usage_limit_bytes", who)] == 456
    assert got[("container_memory_rss_bytes", who)] == 100
    assert got[("container_pids_current", who)] == 3
    assert got[("container_cpu_total_nanoseconds", who)] == 10**9
    assert got[("container_per_cpu_nanoseconds", who | {("cpu", "1")})] == 6
    assert got[("container_memory_oom_total", who)] == 2
    blk = who | {("op", "Read"), ("device", "8:0"), ("major", "8"), ("minor", "0")}
    assert got[("container_blkio_io_service_bytes_recursive_bytes", blk)] == 4096
    # c2 reported no memory section: no memory sample for it, rather than a misleading zero
    assert ("container_memory_usage_usage_bytes", frozenset({("container_id", "c2"), ("namespace", "ns")})) not in got


def test_cgroup_v2_metrics() -> None:
    m = v2.Metrics()
    m.memory.usage = 5000
    m.memory.usage_limit = 9000
    m.memory_events.oom_kill = 1
    m.cpu.usage_usec = 77
    m.io.usage.add(major=259, minor=1, rbytes=10, wbytes=20, rios=1, wios=2)
    got = samples(cgroup_families([("n", "c", m)]))
    who = frozenset({("container_id", "c"), ("namespace", "n")})
    assert got[("container_memory_usage_bytes", who)] == 5000
    assert got[("container_memory_usage_limit_bytes", who)] == 9000
    assert got[("container_memory_oom_total", who)] == 1
    assert got[("container_cpu_usage_usec_microseconds", who)] == 77
    dev = who | {("device", "259:1"), ("major", "259"), ("minor", "1")}
    assert got[("container_io_wbytes_bytes", dev)] == 20


def test_request_heads() -> None:
    """The metrics port reads heads only: a declared body is left unread, never refused."""
    head = parse_request(b"GET /v1/metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", MAX_HEAD, None)
    assert head is not None and (head.method, head.path, head.body) == ("GET", "/v1/metrics", b"")
    posted = parse_request(b"POST /v1/metrics HTTP/1.1\r\nContent-Length: 99\r\n\r\n", MAX_HEAD, None)
    assert posted is not None and posted.method == "POST"
    for bad in (
        b"GET /v1/metrics\r\n\r\n",
        b"GET v1 HTTP/1.1\r\n\r\n",
        b"GET /v1/metrics HTTP/2\r\n\r\n",
        b"GET /v1/metrics HTTP/1.1\r\nno colon\r\n\r\n",
        b"\xff / HTTP/1.1\r\n\r\n",
    ):
        with pytest.raises(HTTPError):
            parse_request(bad, MAX_HEAD, None)


@given(st.binary(max_size=300))
def test_head_parser_only_raises_its_own_error(data: bytes) -> None:
    try:
        parse_request(data, 64, None)
    except HTTPError:
        pass
