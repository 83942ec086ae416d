"""Error paths, through a fault-injecting proxy in front of a real registry: 5xx, hangs, short bodies."""

from __future__ import annotations

import time

import pytest

from pycontainerd.errors import DeadlineExceeded, InvalidArgument, NotImplementedYet, Unavailable
from pycontainerd.images import mediatypes as mt
from pycontainerd.remotes.docker import DockerResolver
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.registry import Registry
from tests.ocibuild import sha

from .support import busybox_image, desc, push_image


@pytest.fixture
def seeded(registry: Registry, faulty_proxy: FaultyProxy) -> FaultyProxy:
    with DockerResolver() as r:
        push_image(r.pusher(f"{registry.host}/app/busybox:1"), busybox_image())
    return faulty_proxy


def _one_line(e: pytest.ExceptionInfo[Exception], *words: str) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_5xx_is_retried(seeded: FaultyProxy) -> None:
    ref = f"{seeded.host}/app/busybox:1"
    seeded.faults.fail_next = 2
    with DockerResolver(retries=2) as r:
        assert r.resolve(ref)[1].digest == busybox_image().digest
    assert len(seeded.faults.seen) == 3


def test_5xx_after_the_retries_is_one_clear_error(seeded: FaultyProxy) -> None:
    ref = f"{seeded.host}/app/busybox:1"
    seeded.faults.fail_next = 100
    start = time.monotonic()
    with DockerResolver(retries=2) as r, pytest.raises(Unavailable) as e:
        r.resolve(ref)
    _one_line(e, seeded.host, ref, "500")
    assert len(seeded.faults.seen) == 3
    assert time.monotonic() - start < 5


def test_a_hanging_registry_times_out(seeded: FaultyProxy) -> None:
    ref = f"{seeded.host}/app/busybox:1"
    seeded.faults.hang_on = "/manifests/"
    start = time.monotonic()
    with DockerResolver(timeout=0.3, retries=1) as r, pytest.raises(DeadlineExceeded) as e:
        r.resolve(ref)
    _one_line(e, seeded.host, ref)
    assert time.monotonic() - start < 3
    assert len(seeded.faults.seen) == 2

    img = busybox_image()
    seeded.faults.hang_on = "/blobs/"
    with DockerResolver(timeout=0.3, retries=0) as r, pytest.raises(DeadlineExceeded):
        r.fetcher(ref).fetch(desc(mt.OCI_CONFIG, img.blobs[img.manifest["config"]["digest"]]))  # type: ignore[index]


def test_a_stalled_body_times_out(seeded: FaultyProxy) -> None:
    img = busybox_image()
    layer = max(img.blobs.values(), key=len)
    seeded.faults.stall_on = "/blobs/"
    with DockerResolver(timeout=0.3, retries=0) as r:
        s = r.fetcher(f"{seeded.host}/app/busybox:1").fetch(desc(mt.OCI_LAYER_GZIP, layer))
        with s, pytest.raises(DeadlineExceeded) as e:
            s.read()
    _one_line(e, seeded.host)


def test_a_short_body_is_an_error_not_an_end(seeded: FaultyProxy) -> None:
    img = busybox_image()
    layer = max(img.blobs.values(), key=len)
    seeded.faults.truncate_on = "/blobs/"
    with DockerResolver() as r:
        s = r.fetcher(f"{seeded.host}/app/busybox:1").fetch(desc(mt.OCI_LAYER_GZIP, layer))
        with s, pytest.raises(Unavailable) as e:
            s.read()
    _one_line(e, seeded.host, "before the end")


def test_corrupt_bytes_arrive_as_sent(seeded: FaultyProxy) -> None:
    """The fetcher hands bytes on unchanged; verifying the digest is its caller's job, which gets what it needs."""
    img = busybox_image()
    layer = max(img.blobs.values(), key=len)
    seeded.faults.corrupt_on = "/blobs/"
    with DockerResolver() as r, r.fetcher(f"{seeded.host}/app/busybox:1").fetch(desc(mt.OCI_LAYER_GZIP, layer)) as s:
        got = s.read()
    assert len(got) == len(layer) and sha(got) != sha(layer)


def test_unreachable_registry(registry: Registry) -> None:
    registry.stop()
    with DockerResolver(retries=1) as r, pytest.raises(Unavailable) as e:
        r.resolve(f"{registry.host}/app/busybox:1")
    _one_line(e, registry.host, "cannot reach")


def test_schema1_and_unknown_documents_are_refused(seeded: FaultyProxy) -> None:
    schema1 = b'{"schemaVersion": 1, "name": "app/busybox", "tag": "old", "fsLayers": []}'
    seeded.faults.documents["/manifests/old"] = (mt.DOCKER_SCHEMA1_SIGNED, schema1)
    seeded.faults.documents["/manifests/odd"] = ("text/plain", b"hello")
    with DockerResolver() as r:
        with pytest.raises(NotImplementedYet) as e:
            r.resolve(f"{seeded.host}/app/busybox:old")
        _one_line(e, "schema 1")
        with pytest.raises(InvalidArgument) as e2:
            r.resolve(f"{seeded.host}/app/busybox:odd")
        _one_line(e2, "media type")
