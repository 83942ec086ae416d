"""Hostile and mistaken requests against a running pycontainerd: one clear error, nothing half-written."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import grpc
import pytest

from pycontainerd import errors
from pycontainerd.api.services.content.v1 import content_pb2 as cpb
from pycontainerd.api.services.content.v1 import content_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2 as ipb
from pycontainerd.api.services.images.v1 import images_pb2_grpc
from pycontainerd.client import Client
from pycontainerd.content import write_blob
from tests.fixtures.daemon import PycontainerdDaemon

NS = (("containerd-namespace", "default"),)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def client(pycontainerd_daemon: PycontainerdDaemon) -> Iterator[Client]:
    with Client(pycontainerd_daemon.address) as c:
        yield c


@pytest.fixture
def channel(pycontainerd_daemon: PycontainerdDaemon) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"unix://{pycontainerd_daemon.address}") as ch:
        yield ch


def blobs_on_disk(d: PycontainerdDaemon) -> list[str]:
    top = d.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    return sorted(os.listdir(top)) if top.exists() else []


def test_commit_with_wrong_digest_keeps_nothing_but_the_ingest(
    client: Client, pycontainerd_daemon: PycontainerdDaemon
) -> None:
    w = client.content.writer("wrong-digest")
    w.write(b"some bytes")
    with pytest.raises(errors.FailedPrecondition, match="digest"):
        w.commit(10, sha(b"other bytes"))
    assert list(client.content.walk()) == []
    assert blobs_on_disk(pycontainerd_daemon) == []
    assert client.content.status("wrong-digest").offset == 10
    client.content.abort("wrong-digest")
    assert client.content.list_statuses() == []


def test_commit_with_wrong_size(client: Client) -> None:
    w = client.content.writer("wrong-size")
    w.write(b"12345")
    with pytest.raises(errors.FailedPrecondition, match="size"):
        w.commit(6, "")
    assert list(client.content.walk()) == []


def test_write_at_wrong_offset(channel: grpc.Channel, client: Client) -> None:
    stub = content_pb2_grpc.ContentStub(channel)
    reqs = [
        cpb.WriteContentRequest(action=cpb.STAT, ref="off"),
        cpb.WriteContentRequest(action=cpb.WRITE, ref="off", offset=0, data=b"abcd"),
        cpb.WriteContentRequest(action=cpb.WRITE, ref="off", offset=100, data=b"efgh"),
    ]
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Write(iter(reqs), metadata=NS, timeout=10))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "offset" in (info.value.details() or "")
    assert client.content.status("off").offset == 4
    assert list(client.content.walk()) == []


def test_missing_and_invalid_namespace(channel: grpc.Channel) -> None:
    stub = images_pb2_grpc.ImagesStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.List(ipb.ListImagesRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "namespace is required" in (info.value.details() or "")
    for bad in ("../etc", "a b", "-x", "x" * 100):
        with pytest.raises(grpc.RpcError) as info:
            stub.List(ipb.ListImagesRequest(), metadata=(("containerd-namespace", bad),), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_namespace_and_objects(client: Client) -> None:
    with pytest.raises(errors.NotFound):
        client.namespaces.delete("never-made")
    with pytest.raises(errors.NotFound):
        client.namespaces.labels("never-made")
    with pytest.raises(errors.NotFound):
        client.with_namespace("never-made").images.get("x")
    with pytest.raises(errors.NotFound):
        client.content.info(sha(b"absent"))


@pytest.mark.parametrize("flt", ["name==", "labels.", "==x", 'name=="unterminated', "name~=(", "a,,b"])
def test_malformed_filters(client: Client, flt: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        client.images.list([flt])
    with pytest.raises(errors.InvalidArgument):
        list(client.content.walk([flt]))
    with pytest.raises(errors.InvalidArgument):
        client.leases.list([flt])


@pytest.mark.parametrize("digest", ["", "sha256:xyz", "md5:" + "0" * 32, "sha256:../../../../etc/passwd"])
def test_malformed_digests(client: Client, digest: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        client.content.info(digest)
    with pytest.raises(errors.InvalidArgument):
        client.content.delete(digest)


def test_bad_image_records(channel: grpc.Channel, client: Client) -> None:
    stub = images_pb2_grpc.ImagesStub(channel)
    good = sha(b"m")
    for image in (
        ipb.Image(name=""),
        ipb.Image(name="x"),
        ipb.Image(name="x", target={"media_type": "m", "digest": "sha256:bad", "size": 1}),
        ipb.Image(name="x", target={"media_type": "", "digest": good, "size": 1}),
        ipb.Image(name="x", target={"media_type": "m", "digest": good, "size": -1}),
        ipb.Image(name="x", target={"media_type": "m", "digest": good, "size": 1}, labels={"k": "v" * 5000}),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.Create(ipb.CreateImageRequest(image=image), metadata=NS, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, image
    assert client.images.list() == []


def test_oversized_message_is_refused_and_daemon_lives(channel: grpc.Channel, client: Client) -> None:
    stub = content_pb2_grpc.ContentStub(channel)
    reqs = [
        cpb.WriteContentRequest(action=cpb.STAT, ref="huge"),
        cpb.WriteContentRequest(action=cpb.WRITE, ref="huge", data=b"\0" * (17 << 20)),
    ]
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Write(iter(reqs), metadata=NS, timeout=20))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert write_blob(client.content, "after", b"still serving") == sha(b"still serving")


def test_ingest_resumes_after_daemon_is_killed(pycontainerd_daemon: PycontainerdDaemon) -> None:
    data = os.urandom(3 << 20)
    with Client(pycontainerd_daemon.address) as c:
        w = c.content.writer("crashy", total=len(data), expected=sha(data))
        w.write(data[: 1 << 20])
        w.write(data[1 << 20 : 2 << 20])
        # Make sure the daemon has taken the bytes before it dies (the writer's status waits for writes in flight).
        assert w.status().offset == 2 << 20
        assert c.content.status("crashy").offset == 2 << 20
        pycontainerd_daemon.kill()
        w.close()
    pycontainerd_daemon.start()
    with Client(pycontainerd_daemon.address) as c:
        st = c.content.status("crashy")
        assert (st.offset, st.total, st.expected) == (2 << 20, len(data), sha(data))
        w = c.content.writer("crashy", total=len(data), expected=sha(data))
        assert w.status().offset == 2 << 20
        w.write(data[2 << 20 :])
        assert w.commit(len(data), sha(data)) == sha(data)
        assert c.content.info(sha(data)).size == len(data)
        assert c.content.list_statuses() == []
