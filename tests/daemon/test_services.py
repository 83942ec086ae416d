"""The gRPC services over a running daemon: what containerd's clients send, and what they get back."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.empty_pb2 import Empty
from google.protobuf.field_mask_pb2 import FieldMask

from pycontainerd import __version__
from pycontainerd.api.services.content.v1 import content_pb2 as cpb
from pycontainerd.api.services.images.v1 import images_pb2 as ipb
from pycontainerd.api.services.introspection.v1 import introspection_pb2 as xpb
from pycontainerd.api.services.leases.v1 import leases_pb2 as lpb
from pycontainerd.api.services.namespaces.v1 import namespace_pb2 as npb
from pycontainerd.api.types import descriptor_pb2
from pycontainerd.identifiers import validate
from tests.daemon.conftest import NAMESPACE, Stubs, channel_to, md
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon

PLUGINS = [
    ("io.containerd.event.v1", "exchange"),
    ("io.containerd.content.v1", "content"),
    ("io.containerd.snapshotter.v1", "native"),
    ("io.containerd.snapshotter.v1", "overlayfs"),
    ("io.containerd.metadata.v1", "sqlite"),
    ("io.containerd.gc.v1", "scheduler"),
    ("io.containerd.grpc.v1", "containers"),
    ("io.containerd.grpc.v1", "content"),
    ("io.containerd.grpc.v1", "images"),
    ("io.containerd.grpc.v1", "leases"),
    ("io.containerd.grpc.v1", "namespaces"),
    ("io.containerd.service.v1", "snapshots-service"),
    ("io.containerd.grpc.v1", "snapshots"),
    ("io.containerd.grpc.v1", "diff"),
    ("io.containerd.grpc.v1", "events"),
    ("io.containerd.streaming.v1", "manager"),
    ("io.containerd.grpc.v1", "streaming"),
    ("io.containerd.grpc.v1", "transfer"),
    ("io.containerd.runtime.v2", "task"),
    ("io.containerd.grpc.v1", "tasks"),
    ("io.containerd.grpc.v1", "version"),
    ("io.containerd.grpc.v1", "healthcheck"),
    ("io.containerd.grpc.v1", "introspection"),
]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def code(e: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return e.value.code()


@pytest.fixture
def lease(stubs: Stubs) -> str:
    """A lease that keeps what the test writes from the collector."""
    return str(stubs.leases.Create(lpb.CreateRequest(id="keep"), metadata=md()).lease.id)


def write(
    stubs: Stubs, reqs: list[cpb.WriteContentRequest], lease: str | None = None
) -> list[cpb.WriteContentResponse]:
    return list(stubs.content.Write(iter(reqs), metadata=md(lease=lease)))


def ingest(stubs: Stubs, data: bytes, ref: str, lease: str, labels: dict[str, str] | None = None) -> str:
    resps = write(
        stubs,
        [cpb.WriteContentRequest(action=cpb.COMMIT, ref=ref, data=data, total=len(data), labels=labels)],
        lease,
    )
    return resps[-1].digest


# -- version, health, introspection ----------------------------------------------------------------


def test_version(stubs: Stubs) -> None:
    resp = stubs.version.Version(Empty())
    assert resp.version == __version__


def test_introspection_lists_every_plugin(stubs: Stubs, pycontainerd_daemon: PycontainerdDaemon) -> None:
    plugins = stubs.introspection.Plugins(xpb.PluginsRequest()).plugins
    assert [(p.type, p.id) for p in plugins] == PLUGINS
    by_id = {(p.type, p.id): p for p in plugins}
    content = by_id["io.containerd.content.v1", "content"]
    assert dict(content.exports) == {"root": str(pycontainerd_daemon.root / "io.containerd.content.v1.content")}
    meta = by_id["io.containerd.metadata.v1", "sqlite"]
    assert list(meta.requires) == ["io.containerd.content.v1", "io.containerd.snapshotter.v1", "io.containerd.event.v1"]
    overlay = by_id["io.containerd.snapshotter.v1", "overlayfs"]
    assert dict(overlay.exports) == {"root": str(pycontainerd_daemon.root / "io.containerd.snapshotter.v1.overlayfs")}
    assert by_id["io.containerd.service.v1", "snapshots-service"].exports["default"] == "overlayfs"
    assert meta.exports["path"] == str(pycontainerd_daemon.root / "io.containerd.metadata.v1.sqlite" / "meta.db")
    assert list(by_id["io.containerd.grpc.v1", "images"].requires) == [
        "io.containerd.metadata.v1",
        "io.containerd.gc.v1",
    ]
    assert all(not p.HasField("init_err") for p in plugins)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["type==io.containerd.grpc.v1"], [p for p in PLUGINS if p[0] == "io.containerd.grpc.v1"]),
        (["id==content"], [p for p in PLUGINS if p[1] == "content"]),
        (
            ["type==io.containerd.gc.v1,id==scheduler", "id==version"],
            [p for p in PLUGINS if p[1] in ("scheduler", "version")],
        ),
        (["id~=^(lea|nam)"], [p for p in PLUGINS if p[1] in ("leases", "namespaces")]),
        (["capabilities==anything"], []),
    ],
)
def test_introspection_filters(stubs: Stubs, filters: list[str], expected: list[tuple[str, str]]) -> None:
    plugins = stubs.introspection.Plugins(xpb.PluginsRequest(filters=filters)).plugins
    assert [(p.type, p.id) for p in plugins] == expected


def test_introspection_bad_filter(stubs: Stubs) -> None:
    with pytest.raises(grpc.RpcError) as e:
        stubs.introspection.Plugins(xpb.PluginsRequest(filters=["id=="]))
    assert code(e) == grpc.StatusCode.INVALID_ARGUMENT


def test_failed_plugins_are_reported_not_fatal(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(config='version = 2\ndisabled_plugins = ["io.containerd.content.v1.content"]\n')
    with channel_to(d.address) as ch:
        plugins = {p.id: p for p in Stubs(ch).introspection.Plugins(xpb.PluginsRequest()).plugins}
        assert "content" not in {p.id for p in plugins.values() if p.type == "io.containerd.content.v1"}
        meta = plugins["sqlite"]
        assert meta.init_err.code == grpc.StatusCode.NOT_FOUND.value[0]
        assert "io.containerd.content.v1" in meta.init_err.message
        assert plugins["scheduler"].init_err.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert not plugins["version"].HasField("init_err")
        with pytest.raises(grpc.RpcError) as e:
            Stubs(ch).content.Info(cpb.InfoRequest(digest=sha(b"")), metadata=md())
        assert code(e) == grpc.StatusCode.UNIMPLEMENTED
    assert 'failed to load plugin \\"io.containerd.metadata.v1.sqlite\\"' in d.log()


def test_server_uuid_is_kept_under_root(stubs: Stubs, pycontainerd_daemon: PycontainerdDaemon) -> None:
    uuid = stubs.introspection.Server(Empty()).uuid
    assert stubs.introspection.Server(Empty()).uuid == uuid
    path = pycontainerd_daemon.root / "io.containerd.grpc.v1.introspection" / "uuid"
    assert path.read_text() == uuid


# -- namespaces of calls -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda s, m: s.content.Info(cpb.InfoRequest(digest=sha(b"")), metadata=m),
        lambda s, m: list(s.content.List(cpb.ListContentRequest(), metadata=m)),
        lambda s, m: s.images.List(ipb.ListImagesRequest(), metadata=m),
        lambda s, m: s.leases.List(lpb.ListRequest(), metadata=m),
    ],
)
def test_namespace_is_required(stubs: Stubs, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as e:
        call(stubs, md(namespace=None))
    assert code(e) == grpc.StatusCode.FAILED_PRECONDITION
    assert "namespace is required" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        call(stubs, md(namespace="bad/name"))
    assert code(e) == grpc.StatusCode.INVALID_ARGUMENT


def test_namespaces(stubs: Stubs) -> None:
    ns = npb.Namespace(name="tenant", labels={"a": "1", "b": "2"})
    assert stubs.namespaces.Create(npb.CreateNamespaceRequest(namespace=ns)).namespace == ns
    with pytest.raises(grpc.RpcError) as e:
        stubs.namespaces.Create(npb.CreateNamespaceRequest(namespace=ns))
    assert code(e) == grpc.StatusCode.ALREADY_EXISTS
    upd = npb.UpdateNamespaceRequest(
        namespace=npb.Namespace(name="tenant", labels={"c": "3"}), update_mask=FieldMask(paths=["labels.c", "labels.a"])
    )
    assert dict(stubs.namespaces.Update(upd).namespace.labels) == {"b": "2", "c": "3"}
    stubs.namespaces.Update(npb.UpdateNamespaceRequest(namespace=npb.Namespace(name="tenant", labels={"d": "4"})))
    assert dict(stubs.namespaces.Get(npb.GetNamespaceRequest(name="tenant")).namespace.labels) == {"d": "4"}
    with pytest.raises(grpc.RpcError) as e:
        stubs.namespaces.Update(
            npb.UpdateNamespaceRequest(namespace=npb.Namespace(name="tenant"), update_mask=FieldMask(paths=["name"]))
        )
    assert code(e) == grpc.StatusCode.INVALID_ARGUMENT
    assert [n.name for n in stubs.namespaces.List(npb.ListNamespacesRequest()).namespaces] == ["tenant"]
    stubs.namespaces.Delete(npb.DeleteNamespaceRequest(name="tenant"))
    with pytest.raises(grpc.RpcError) as e:
        stubs.namespaces.Get(npb.GetNamespaceRequest(name="tenant"))
    assert code(e) == grpc.StatusCode.NOT_FOUND


# -- content ----------------------------------------------------------------------------------------


def test_write_stat_write_commit(stubs: Stubs, lease: str) -> None:
    data = b"hello, world"
    resps = write(
        stubs,
        [
            cpb.WriteContentRequest(action=cpb.STAT, ref="r1", total=len(data), expected=sha(data)),
            cpb.WriteContentRequest(action=cpb.WRITE, offset=0, data=data[:5]),
            cpb.WriteContentRequest(action=cpb.WRITE, offset=5, data=data[5:]),
            cpb.WriteContentRequest(action=cpb.COMMIT, offset=len(data), labels={"k": "v"}),
        ],
        lease,
    )
    stat, w1, w2, commit = resps
    assert (stat.action, stat.offset, stat.total, stat.digest) == (cpb.STAT, 0, len(data), sha(b""))
    assert stat.started_at.seconds > 0 and stat.updated_at.seconds > 0
    assert (w1.action, w1.offset, w1.digest) == (cpb.WRITE, 5, sha(data[:5]))
    assert (w2.offset, w2.digest) == (len(data), sha(data))
    assert (w2.total, w2.started_at) == (stat.total, stat.started_at)  # fields set once stay set
    assert (commit.action, commit.offset, commit.digest) == (cpb.COMMIT, len(data), sha(data))
    info = stubs.content.Info(cpb.InfoRequest(digest=sha(data)), metadata=md()).info
    assert (info.size, dict(info.labels)) == (len(data), {"k": "v"})


def test_write_at_the_wrong_offset_is_out_of_range(stubs: Stubs, lease: str) -> None:
    with pytest.raises(grpc.RpcError) as e:
        write(
            stubs,
            [
                cpb.WriteContentRequest(action=cpb.WRITE, ref="r2", data=b"abc"),
                cpb.WriteContentRequest(action=cpb.WRITE, offset=7, data=b"def"),
            ],
            lease,
        )
    assert code(e) == grpc.StatusCode.OUT_OF_RANGE
    assert e.value.details() == "write @7 must occur at current offset 3"
    st = stubs.content.Status(cpb.StatusRequest(ref="r2"), metadata=md()).status
    assert st.offset == 3  # the ingest stays, resumable


def test_offset_zero_restarts_the_ingest(stubs: Stubs, lease: str) -> None:
    write(stubs, [cpb.WriteContentRequest(action=cpb.WRITE, ref="r3", data=b"garbage")], lease)
    resps = write(
        stubs,
        [
            cpb.WriteContentRequest(action=cpb.STAT, ref="r3"),
            cpb.WriteContentRequest(action=cpb.COMMIT, offset=0, data=b"good", expected=sha(b"good")),
        ],
        lease,
    )
    assert resps[0].offset == 7
    assert (resps[1].offset, resps[1].digest) == (4, sha(b"good"))


def test_expected_blob_that_exists_is_already_exists(stubs: Stubs, lease: str) -> None:
    digest = ingest(stubs, b"there", "r4", lease)
    write(stubs, [cpb.WriteContentRequest(action=cpb.WRITE, ref="r5", data=b"th")], lease)

    def refs() -> list[str]:
        return [s.ref for s in stubs.content.ListStatuses(cpb.ListStatusesRequest(), metadata=md()).statuses]

    # Named when the stream opens: refused before the ingest is touched.
    with pytest.raises(grpc.RpcError) as e:
        write(stubs, [cpb.WriteContentRequest(action=cpb.STAT, ref="r5", expected=digest)], lease)
    assert code(e) == grpc.StatusCode.ALREADY_EXISTS
    assert refs() == ["r5"]
    # Named later in the stream: the ingest is aborted too.
    with pytest.raises(grpc.RpcError) as e:
        write(
            stubs,
            [
                cpb.WriteContentRequest(action=cpb.STAT, ref="r5"),
                cpb.WriteContentRequest(action=cpb.COMMIT, offset=2, data=b"ere", expected=digest),
            ],
            lease,
        )
    assert code(e) == grpc.StatusCode.ALREADY_EXISTS
    assert e.value.details() == f"blob with expected digest {digest} exists"
    assert refs() == []


def test_commit_checks_size_and_digest(stubs: Stubs, lease: str) -> None:
    with pytest.raises(grpc.RpcError) as e:
        write(stubs, [cpb.WriteContentRequest(action=cpb.COMMIT, ref="r6", data=b"abc", total=4)], lease)
    assert code(e) == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as e:
        write(stubs, [cpb.WriteContentRequest(action=cpb.COMMIT, ref="r6", offset=3, expected=sha(b"xyz"))], lease)
    assert code(e) == grpc.StatusCode.FAILED_PRECONDITION
    stubs.content.Abort(cpb.AbortRequest(ref="r6"), metadata=md())
    with pytest.raises(grpc.RpcError) as e:
        stubs.content.Status(cpb.StatusRequest(ref="r6"), metadata=md())
    assert code(e) == grpc.StatusCode.NOT_FOUND


def test_first_message_needs_a_ref(stubs: Stubs) -> None:
    with pytest.raises(grpc.RpcError) as e:
        write(stubs, [cpb.WriteContentRequest(action=cpb.STAT)])
    assert code(e) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_ref_is_held_while_its_stream_is_open(stubs: Stubs, lease: str) -> None:
    release = threading.Event()

    def held() -> Iterator[cpb.WriteContentRequest]:
        yield cpb.WriteContentRequest(action=cpb.WRITE, ref="busy", data=b"x")
        release.wait(30)

    first = stubs.content.Write(held(), metadata=md(lease=lease))
    try:
        assert next(first).offset == 1
        with pytest.raises(grpc.RpcError) as e:
            write(stubs, [cpb.WriteContentRequest(action=cpb.STAT, ref="busy")], lease)
        assert code(e) == grpc.StatusCode.UNAVAILABLE
        # Other calls go on while the stream is open.
        assert stubs.version.Version(Empty()).version == __version__
        active = stubs.content.ListStatuses(cpb.ListStatusesRequest(), metadata=md()).statuses
        assert [(s.ref, s.offset) for s in active] == [("busy", 1)]
    finally:
        release.set()
        list(first)
    deadline = time.monotonic() + 10
    while True:  # the stream's end releases the ref
        try:
            resps = write(stubs, [cpb.WriteContentRequest(action=cpb.STAT, ref="busy")], lease)
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert resps[0].offset == 1


def test_read_honours_offset_and_size(stubs: Stubs, lease: str) -> None:
    data = bytes(range(256)) * 12288  # 3 MiB
    digest = ingest(stubs, data, "big", lease)

    def read(offset: int, size: int) -> list[cpb.ReadContentResponse]:
        return list(stubs.content.Read(cpb.ReadContentRequest(digest=digest, offset=offset, size=size), metadata=md()))

    whole = read(0, 0)
    assert [len(r.data) for r in whole] == [1 << 20] * 3
    assert [r.offset for r in whole] == [0, 1 << 20, 2 << 20]
    assert b"".join(r.data for r in whole) == data
    part = read(10, (1 << 20) + 5)
    assert b"".join(r.data for r in part) == data[10 : 10 + (1 << 20) + 5]
    assert [r.offset for r in part] == [0, 1 << 20]  # counted from the start of the read
    assert b"".join(r.data for r in read(len(data) - 3, 100)) == data[-3:]
    assert read(len(data), 0) == []
    with pytest.raises(grpc.RpcError) as e:
        read(len(data) + 1, 0)
    assert code(e) == grpc.StatusCode.OUT_OF_RANGE


def test_list_sends_every_blob_in_bounded_batches(stubs: Stubs, lease: str) -> None:
    from pycontainerd.services.content import LIST_BATCH

    digests = {ingest(stubs, f"blob {i}".encode(), f"b{i}", lease, {"n": str(i % 2)}) for i in range(230)}
    batches = list(stubs.content.List(cpb.ListContentRequest(), metadata=md()))
    assert all(0 < len(b.info) <= LIST_BATCH for b in batches)
    assert sum(len(b.info) for b in batches) == 230
    assert {i.digest for b in batches for i in b.info} == digests
    odd = list(stubs.content.List(cpb.ListContentRequest(filters=["labels.n==1"]), metadata=md()))
    assert sum(len(b.info) for b in odd) == 115


def test_info_update_delete(stubs: Stubs, lease: str) -> None:
    digest = ingest(stubs, b"labelled", "l1", lease, {"a": "1", "b": "2"})
    req = cpb.UpdateRequest(
        info=cpb.Info(digest=digest, labels={"b": "3", "c": "4"}), update_mask=FieldMask(paths=["labels.b"])
    )
    assert dict(stubs.content.Update(req, metadata=md()).info.labels) == {"a": "1", "b": "3"}
    stubs.content.Delete(cpb.DeleteContentRequest(digest=digest), metadata=md())
    with pytest.raises(grpc.RpcError) as e:
        stubs.content.Info(cpb.InfoRequest(digest=digest), metadata=md())
    assert code(e) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        stubs.content.Info(cpb.InfoRequest(digest="sha256:nothex"), metadata=md())
    assert code(e) == grpc.StatusCode.INVALID_ARGUMENT


# -- images and leases ------------------------------------------------------------------------------


def test_images_and_sync_delete(stubs: Stubs) -> None:
    lease = stubs.leases.Create(lpb.CreateRequest(), metadata=md()).lease.id
    validate("lease", lease)
    digest = ingest(stubs, b'{"schemaVersion": 2}', "manifest", lease)
    target = descriptor_pb2.Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=digest, size=20)
    img = ipb.Image(name="example.com/a:1", target=target, labels={"x": "1"})
    created = stubs.images.Create(ipb.CreateImageRequest(image=img), metadata=md()).image
    assert (created.name, created.target, dict(created.labels)) == (img.name, target, {"x": "1"})
    assert created.created_at.seconds > 0
    with pytest.raises(grpc.RpcError) as e:
        stubs.images.Create(ipb.CreateImageRequest(image=img), metadata=md())
    assert code(e) == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as e:
        stubs.images.Create(ipb.CreateImageRequest(image=ipb.Image(target=target)), metadata=md())
    assert code(e) == grpc.StatusCode.INVALID_ARGUMENT
    upd = ipb.UpdateImageRequest(
        image=ipb.Image(name=img.name, labels={"y": "2"}), update_mask=FieldMask(paths=["labels.y"])
    )
    assert dict(stubs.images.Update(upd, metadata=md()).image.labels) == {"x": "1", "y": "2"}
    assert [
        i.name for i in stubs.images.List(ipb.ListImagesRequest(filters=["labels.y==2"]), metadata=md()).images
    ] == [img.name]
    stubs.leases.Delete(lpb.DeleteRequest(id=lease), metadata=md())
    assert stubs.content.Info(cpb.InfoRequest(digest=digest), metadata=md()).info.digest == digest  # the image holds it
    stubs.images.Delete(ipb.DeleteImageRequest(name=img.name, sync=True), metadata=md())
    with pytest.raises(grpc.RpcError) as e:
        stubs.images.Get(ipb.GetImageRequest(name=img.name), metadata=md())
    assert code(e) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        stubs.content.Info(cpb.InfoRequest(digest=digest), metadata=md())
    assert code(e) == grpc.StatusCode.NOT_FOUND  # collected before Delete returned


def test_lease_resources_and_sync_delete(stubs: Stubs) -> None:
    lease = stubs.leases.Create(lpb.CreateRequest(id="l", labels={"k": "v"}), metadata=md()).lease
    assert (lease.id, dict(lease.labels)) == ("l", {"k": "v"})
    digest = ingest(stubs, b"leased", "lr", "l")
    res = lpb.Resource(id="sha256:" + "0" * 64, type="content")
    stubs.leases.AddResource(lpb.AddResourceRequest(id="l", resource=res), metadata=md())
    listed = stubs.leases.ListResources(lpb.ListResourcesRequest(id="l"), metadata=md()).resources
    assert {(r.type, r.id) for r in listed} == {("content", digest), ("content", res.id)}
    stubs.leases.DeleteResource(lpb.DeleteResourceRequest(id="l", resource=res), metadata=md())
    assert [r.id for r in stubs.leases.ListResources(lpb.ListResourcesRequest(id="l"), metadata=md()).resources] == [
        digest
    ]
    assert [x.id for x in stubs.leases.List(lpb.ListRequest(filters=["labels.k==v"]), metadata=md()).leases] == ["l"]
    stubs.leases.Delete(lpb.DeleteRequest(id="l", sync=True), metadata=md())
    with pytest.raises(grpc.RpcError) as e:
        stubs.content.Info(cpb.InfoRequest(digest=digest), metadata=md())
    assert code(e) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        stubs.leases.Delete(lpb.DeleteRequest(id="l"), metadata=md())
    assert code(e) == grpc.StatusCode.NOT_FOUND
    assert NAMESPACE in [n.name for n in stubs.namespaces.List(npb.ListNamespacesRequest()).namespaces]
