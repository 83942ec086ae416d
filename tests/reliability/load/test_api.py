"""1,000 API calls of mixed kinds at once: none fails, latency stays bounded, the daemon stays healthy and small.

The calls are issued together from one grpc.aio client over a few
channels, as containerd's own stubs: Version, Namespaces.List,
Images.List/Get, Content.Info/Read/List, Snapshots.Stat/List, Tasks.List,
health checks, container records created, read back and deleted, leases
created and deleted, and Events subscribers that must each receive an
event the others cause.  Every call's latency (issue to last message) is
recorded; p50, p99 and the maximum are printed and bounded generously (the
machine has 2 CPUs, and other suites may run beside this one).  Afterwards
the daemon answers its health check, holds no container or lease of the
run, and its resident memory has not run away: a second (under ``make
soak``, every further) round of 1,000 calls adds little to what the first
one left.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pycontainerd.api.services.containers.v1 import containers_pb2 as cpb
from pycontainerd.api.services.containers.v1 import containers_pb2_grpc as cgrpc
from pycontainerd.api.services.content.v1 import content_pb2 as ctpb
from pycontainerd.api.services.content.v1 import content_pb2_grpc as ctgrpc
from pycontainerd.api.services.events.v1 import events_pb2 as epb
from pycontainerd.api.services.events.v1 import events_pb2_grpc as egrpc
from pycontainerd.api.services.images.v1 import images_pb2 as ipb
from pycontainerd.api.services.images.v1 import images_pb2_grpc as igrpc
from pycontainerd.api.services.leases.v1 import leases_pb2 as lpb
from pycontainerd.api.services.leases.v1 import leases_pb2_grpc as lgrpc
from pycontainerd.api.services.namespaces.v1 import namespace_pb2 as npb
from pycontainerd.api.services.namespaces.v1 import namespace_pb2_grpc as ngrpc
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2 as spb
from pycontainerd.api.services.snapshots.v1 import snapshots_pb2_grpc as sgrpc
from pycontainerd.api.services.tasks.v1 import tasks_pb2 as tpb
from pycontainerd.api.services.tasks.v1 import tasks_pb2_grpc as tgrpc
from pycontainerd.api.services.version.v1 import version_pb2_grpc as vgrpc
from pycontainerd.images.identity import chain_id
from tests.fixtures.daemon import DaemonFactory
from tests.ocibuild import busybox_files, image
from tests.reliability._runtime import REF, RuntimeEnv
from tests.reliability.soak import record, scale
from tests.tasks.spec import SPEC_TYPE_URL, minimal_spec

pytestmark = pytest.mark.containerd

NS = "loadapi"
CALLS = 1000
ROUNDS = scale(2, 5)
CHANNELS = 8
SUBSCRIBERS = 20
P99_BOUND = 5.0
MAX_BOUND = 15.0
RSS_GROWTH_BOUND = 24 << 20
"""Resident memory a round after the first may add (a per-call leak of 25 KiB or more would show)."""

Call = Callable[[], Awaitable[int]]
"""One call of the mix: makes its RPC(s) and returns how many it made."""


@pytest.fixture
def env(pycontainerd_daemon_factory: DaemonFactory, tmp_path: Path) -> Iterator[RuntimeEnv]:
    e = RuntimeEnv(pycontainerd_daemon_factory(), NS)
    e.import_image(tmp_path)
    yield e


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Mix:
    """The calls of one round, over ``channels``; each knows how to make one kind of request."""

    def __init__(self, channels: list[grpc.aio.Channel], round: int) -> None:
        self.channels = channels
        self.round = round
        self.md = (("containerd-namespace", NS),)
        self.next = 0
        img = image([busybox_files()])
        config = json.loads(img.blobs[img.manifest["config"]["digest"]])  # type: ignore[index]
        self.top = chain_id(config["rootfs"]["diff_ids"])
        self.blobs = list(img.blobs)
        self.spec = json.dumps(minimal_spec(NS, "x", ["/bin/busybox", "true"])).encode()

    def channel(self) -> grpc.aio.Channel:
        self.next += 1
        return self.channels[self.next % len(self.channels)]

    async def version(self) -> int:
        await vgrpc.VersionStub(self.channel()).Version(_empty())
        return 1

    async def health(self) -> int:
        r = await health_pb2_grpc.HealthStub(self.channel()).Check(health_pb2.HealthCheckRequest())
        assert r.status == health_pb2.HealthCheckResponse.SERVING
        return 1

    async def namespaces(self) -> int:
        r = await ngrpc.NamespacesStub(self.channel()).List(npb.ListNamespacesRequest())
        assert NS in [n.name for n in r.namespaces]
        return 1

    async def images_list(self) -> int:
        r = await igrpc.ImagesStub(self.channel()).List(ipb.ListImagesRequest(), metadata=self.md)
        assert [i.name for i in r.images] == [REF]
        return 1

    async def images_get(self) -> int:
        r = await igrpc.ImagesStub(self.channel()).Get(ipb.GetImageRequest(name=REF), metadata=self.md)
        assert r.image.target.digest
        return 1

    async def content_info(self, i: int) -> int:
        digest = self.blobs[i % len(self.blobs)]
        r = await ctgrpc.ContentStub(self.channel()).Info(ctpb.InfoRequest(digest=digest), metadata=self.md)
        assert r.info.digest == digest
        return 1

    async def content_read(self, i: int) -> int:
        digest = self.blobs[i % len(self.blobs)]
        n = 0
        async for chunk in ctgrpc.ContentStub(self.channel()).Read(
            ctpb.ReadContentRequest(digest=digest), metadata=self.md
        ):
            n += len(chunk.data)
        assert n > 0
        return 1

    async def content_list(self) -> int:
        seen = set()
        async for r in ctgrpc.ContentStub(self.channel()).List(ctpb.ListContentRequest(), metadata=self.md):
            seen |= {i.digest for i in r.info}
        assert set(self.blobs) <= seen
        return 1

    async def snapshot_stat(self) -> int:
        stub = sgrpc.SnapshotsStub(self.channel())
        r = await stub.Stat(spb.StatSnapshotRequest(snapshotter="overlayfs", key=self.top), metadata=self.md)
        assert r.info.name == self.top
        return 1

    async def snapshot_list(self) -> int:
        names = set()
        stub = sgrpc.SnapshotsStub(self.channel())
        async for r in stub.List(spb.ListSnapshotsRequest(snapshotter="overlayfs"), metadata=self.md):
            names |= {i.name for i in r.info}
        assert self.top in names
        return 1

    async def tasks_list(self) -> int:
        r = await tgrpc.TasksStub(self.channel()).List(tpb.ListTasksRequest(), metadata=self.md)
        assert list(r.tasks) == []
        return 1

    async def container_cycle(self, i: int) -> int:
        """Create, Get, Delete of one record: three calls."""
        stub = cgrpc.ContainersStub(self.channel())
        id = f"c{self.round}-{i}"
        container = cpb.Container(id=id, runtime=cpb.Container.Runtime(name="io.containerd.runc.v2"))
        container.spec.type_url, container.spec.value = SPEC_TYPE_URL, self.spec
        await stub.Create(cpb.CreateContainerRequest(container=container), metadata=self.md)
        r = await stub.Get(cpb.GetContainerRequest(id=id), metadata=self.md)
        assert r.container.id == id
        await stub.Delete(cpb.DeleteContainerRequest(id=id), metadata=self.md)
        return 3

    async def lease_cycle(self, i: int) -> int:
        stub = lgrpc.LeasesStub(self.channel())
        id = f"l{self.round}-{i}"
        r = await stub.Create(lpb.CreateRequest(id=id), metadata=self.md)
        assert r.lease.id == id
        await stub.Delete(lpb.DeleteRequest(id=id), metadata=self.md)
        return 2

    async def subscribe(self) -> int:
        """Subscribe and wait for one container deletion of this round (the others make plenty)."""
        stub = egrpc.EventsStub(self.channel())
        call = stub.Subscribe(epb.SubscribeRequest(filters=[f'topic=="/containers/delete",namespace=={NS}']))
        try:
            envelope = await asyncio.wait_for(call.read(), 60)
        finally:
            call.cancel()
        assert envelope is not grpc.aio.EOF and envelope.topic == "/containers/delete"
        return 1

    def calls(self, count: int) -> list[Call]:
        """``count`` calls' worth of the mix, subscribers first."""
        out: list[Call] = [self.subscribe for _ in range(SUBSCRIBERS)]
        made = SUBSCRIBERS
        kinds: list[tuple[int, Callable[[int], Call]]] = [
            (1, lambda i: self.version),
            (1, lambda i: self.health),
            (1, lambda i: self.namespaces),
            (1, lambda i: self.images_list),
            (1, lambda i: self.images_get),
            (1, lambda i: lambda: self.content_info(i)),
            (1, lambda i: lambda: self.content_read(i)),
            (1, lambda i: self.content_list),
            (1, lambda i: self.snapshot_stat),
            (1, lambda i: self.snapshot_list),
            (1, lambda i: self.tasks_list),
            (3, lambda i: lambda: self.container_cycle(i)),
            (2, lambda i: lambda: self.lease_cycle(i)),
        ]
        i = 0
        while made < count:
            cost, make = kinds[i % len(kinds)]
            if made + cost > count:
                cost, make = 1, kinds[0][1]
            out.append(make(i))
            made += cost
            i += 1
        return out


async def one_round(address: str, round: int) -> tuple[int, list[float], list[BaseException]]:
    """CALLS calls at once; (calls made, each task's latency, errors)."""
    channels = [grpc.aio.insecure_channel(f"unix://{address}") for _ in range(CHANNELS)]
    try:
        mix = Mix(channels, round)
        latencies: list[float] = []

        async def timed(call: Call) -> int:
            start = time.monotonic()
            n = await call()
            if call != mix.subscribe:  # a subscriber's wait is for an event, not for an answer
                latencies.append(time.monotonic() - start)
            return n

        results = await asyncio.gather(*(timed(c) for c in mix.calls(CALLS)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        made = sum(r for r in results if isinstance(r, int))
        return made, latencies, errors
    finally:
        for ch in channels:
            await ch.close()


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def test_a_thousand_concurrent_api_calls(env: RuntimeEnv) -> None:
    assert env.daemon.proc is not None
    pid = env.daemon.proc.pid
    sizes = [rss(pid)]
    problems: list[str] = []
    all_latencies: list[float] = []
    total = 0
    started = time.monotonic()
    for round in range(ROUNDS):
        made, latencies, errors = asyncio.run(one_round(env.daemon.address, round))
        total += made
        all_latencies += latencies
        problems += [f"round {round}: {type(e).__name__}: {e}" for e in errors[:5]]
        if errors:
            problems.append(f"round {round}: {len(errors)} calls failed")
        else:
            assert made == CALLS
        sizes.append(rss(pid))
    took = time.monotonic() - started
    p50, p99, worst = percentile(all_latencies, 0.5), percentile(all_latencies, 0.99), max(all_latencies)
    growth = sizes[-1] - sizes[1]
    print(
        f"{total} calls in {ROUNDS} rounds of {CALLS}, {took:.1f}s: latency p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms; daemon RSS "
        + " -> ".join(f"{s >> 20} MiB" for s in sizes)
    )
    if p99 > P99_BOUND or worst > MAX_BOUND:
        problems.append(f"latency p99 {p99:.2f}s, max {worst:.2f}s")
    if growth > RSS_GROWTH_BOUND:
        problems.append(f"daemon RSS grew {growth >> 20} MiB after the first round")
    # Healthy afterwards, and nothing of the run is left in it.
    with grpc.insecure_channel(f"unix://{env.daemon.address}") as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        if status != health_pb2.HealthCheckResponse.SERVING:
            problems.append(f"health {status}")
    problems += [p for p in env.leaks([mix_top()]) if not p.startswith("fifo ")]
    record(
        "load",
        f"concurrent API calls of 17 RPCs, {CALLS:,} at once (p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {worst * 1000:.0f} ms)",
        total,
        f"no error; p99 < {P99_BOUND:g}s; daemon healthy; RSS steady after round 1; no record left",
        problems=len(problems),
    )
    assert problems == []


def mix_top() -> str:
    img = image([busybox_files()])
    config = json.loads(img.blobs[img.manifest["config"]["digest"]])  # type: ignore[index]
    return chain_id(config["rootfs"]["diff_ids"])


def _empty() -> object:
    from google.protobuf.empty_pb2 import Empty

    return Empty()
