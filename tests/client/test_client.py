"""The client against a running daemon: introspection, namespaces, images, leases."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pycontainerd import errors
from pycontainerd.client import Client, expire_label, random_lease_id
from pycontainerd.client._rpc import target
from pycontainerd.content import Digester, write_blob
from pycontainerd.images import Descriptor, Image
from pycontainerd.leases import LABEL_EXPIRE, Resource

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DIGEST = "sha256:" + "ab" * 32


def image(name: str, digest: str = DIGEST, **labels: str) -> Image:
    return Image(name=name, target=Descriptor(MANIFEST, digest, 1234, {"a": "b"}), labels=labels)


# -- addresses and the connection ------------------------------------------------


def test_target_adds_the_unix_scheme() -> None:
    assert target("/run/x.sock") == "unix:///run/x.sock"
    assert target("unix:///run/x.sock") == "unix:///run/x.sock"
    assert target("rel.sock") == "unix:rel.sock"


def test_expire_label_is_rfc3339_utc() -> None:
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert expire_label(timedelta(hours=24), now) == "2024-01-03T03:04:05Z"
    assert re.fullmatch(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*", random_lease_id())


def test_header_values_are_checked_before_sending() -> None:
    with pytest.raises(errors.InvalidArgument):
        Client("/nonexistent.sock", namespace="n\u00e4")
    with Client("/nonexistent.sock") as c, pytest.raises(errors.InvalidArgument):
        c.with_lease("line\nbreak")


def test_closed_client_refuses_calls(client: Client) -> None:
    c = Client(client.address)
    images = c.images
    c.close()
    with pytest.raises(errors.FailedPrecondition):
        c.version()
    with pytest.raises(errors.FailedPrecondition):
        c.with_namespace("other").content.info(DIGEST)
    with pytest.raises(errors.FailedPrecondition):
        images.list()


def test_unreachable_socket_is_unavailable() -> None:
    with Client("/nonexistent/pycontainerd.sock", timeout=5) as c, pytest.raises(errors.Unavailable):
        c.version()


# -- introspection -----------------------------------------------------------------


def test_version_and_server(client: Client) -> None:
    version, revision = client.version()
    assert version
    assert isinstance(revision, str)
    uuid = client.server()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid)
    assert client.server() == uuid


def test_plugins(client: Client) -> None:
    plugins = client.plugins()
    ids = {(p.type, p.id) for p in plugins}
    for wanted in ("content", "images", "leases", "namespaces", "version", "introspection"):
        assert ("io.containerd.grpc.v1", wanted) in ids
    content = client.plugins(["type==io.containerd.content.v1"])
    assert [p.id for p in content] == ["content"]
    assert content[0].status == "ok"
    assert client.plugins(["id==no-such-plugin"]) == []


# -- namespaces ------------------------------------------------------------------------


def test_namespaces_lifecycle(client: Client) -> None:
    store = client.namespaces
    store.create("ns-one", {"team": "a", "tier": "x"})
    assert "ns-one" in store.list()
    assert store.labels("ns-one") == {"team": "a", "tier": "x"}
    store.set_label("ns-one", "team", "b")
    store.set_label("ns-one", "tier", "")
    assert store.labels("ns-one") == {"team": "b"}
    with pytest.raises(errors.AlreadyExists):
        store.create("ns-one", {})
    store.delete("ns-one")
    assert "ns-one" not in store.list()
    with pytest.raises(errors.NotFound):
        store.delete("ns-one")
    with pytest.raises(errors.InvalidArgument):
        store.create("not valid!", {})


def test_namespace_with_objects_cannot_be_deleted(client: Client) -> None:
    client.namespaces.create("busy", {})
    client.with_namespace("busy").images.create(image("busy/image"))
    with pytest.raises(errors.FailedPrecondition):
        client.namespaces.delete("busy")
    client.with_namespace("busy").images.delete("busy/image")
    client.namespaces.delete("busy")


def test_with_namespace_isolates(client: Client) -> None:
    other = client.with_namespace("elsewhere")
    assert other.namespace == "elsewhere"
    assert other.channel is client.channel
    client.images.create(image("only/here"))
    assert [i.name for i in client.images.list()] == ["only/here"]
    assert other.images.list() == []
    with pytest.raises(errors.NotFound):
        other.images.get("only/here")
    other.close()  # shares the channel: closing it must not close the original
    assert client.images.get("only/here").name == "only/here"


# -- images ----------------------------------------------------------------------------


def test_images_create_get_list(client: Client) -> None:
    store = client.images
    before = datetime.now(UTC) - timedelta(seconds=1)
    created = store.create(image("docker.io/library/a:1", env="prod"))
    assert created.name == "docker.io/library/a:1"
    assert created.target == Descriptor(MANIFEST, DIGEST, 1234, {"a": "b"})
    assert created.created_at is not None
    assert created.created_at >= before
    got = store.get("docker.io/library/a:1")
    assert got == created
    store.create(image("docker.io/library/b:1", "sha256:" + "cd" * 32))
    assert sorted(i.name for i in store.list()) == ["docker.io/library/a:1", "docker.io/library/b:1"]
    assert [i.name for i in store.list(["labels.env==prod"])] == ["docker.io/library/a:1"]
    assert [i.name for i in store.list([f"target.digest=={'sha256:' + 'cd' * 32}"])] == ["docker.io/library/b:1"]
    assert [i.name for i in store.list(["name==docker.io/library/b:1"])] == ["docker.io/library/b:1"]
    with pytest.raises(errors.AlreadyExists):
        store.create(image("docker.io/library/a:1"))
    with pytest.raises(errors.NotFound):
        store.get("docker.io/library/nope:1")
    with pytest.raises(errors.InvalidArgument):
        store.create(Image(name="", target=Descriptor(MANIFEST, DIGEST, 1)))


def test_images_update_and_delete(client: Client) -> None:
    store = client.images
    original = store.create(image("img", env="prod", team="a"))
    updated = store.update(replace(original, labels={"env": "dev", "team": "ignored"}), ["labels.env"])
    assert dict(updated.labels) == {"env": "dev", "team": "a"}
    new_target = Descriptor(MANIFEST, "sha256:" + "ef" * 32, 99)
    updated = store.update(Image(name="img", target=new_target, labels={"x": "y"}))
    assert updated.target == new_target
    assert dict(updated.labels) == {"x": "y"}
    assert store.get("img").target == new_target
    with pytest.raises(errors.NotFound):
        store.update(image("missing"))
    store.delete("img")
    with pytest.raises(errors.NotFound):
        store.get("img")
    with pytest.raises(errors.NotFound):
        store.delete("img")
    store.create(image("img2"))
    store.delete("img2", sync=True)
    assert store.list() == []


# -- leases ----------------------------------------------------------------------------


def test_leases_lifecycle(client: Client) -> None:
    manager = client.leases
    lease = manager.create("lease-1", {"purpose": "test"})
    assert lease.id == "lease-1"
    assert dict(lease.labels) == {"purpose": "test"}
    assert abs(lease.created_at - datetime.now(UTC)) < timedelta(seconds=30)
    manager.create("lease-2")
    assert sorted(le.id for le in manager.list()) == ["lease-1", "lease-2"]
    assert [le.id for le in manager.list(["labels.purpose==test"])] == ["lease-1"]
    assert [le.id for le in manager.list(["id==lease-2"])] == ["lease-2"]
    with pytest.raises(errors.AlreadyExists):
        manager.create("lease-1")
    manager.delete("lease-1")
    manager.delete("lease-2", sync=True)
    assert manager.list() == []
    with pytest.raises(errors.NotFound):
        manager.delete("lease-1")


def test_lease_resources(client: Client) -> None:
    manager = client.leases
    manager.create("res")
    blob = Resource(id=DIGEST, type="content")
    ingest = Resource(id="some-ref", type="ingests")
    manager.add_resource("res", blob)
    manager.add_resource("res", ingest)
    assert sorted(manager.list_resources("res"), key=lambda r: r.type) == [blob, ingest]
    manager.delete_resource("res", ingest)
    assert manager.list_resources("res") == [blob]
    with pytest.raises(errors.NotFound):
        manager.add_resource("missing", blob)
    # containerd answers Unimplemented for a type it does not know.
    with pytest.raises((errors.InvalidArgument, errors.NotImplementedYet)):
        manager.add_resource("res", Resource(id=DIGEST, type="no-such-type"))
    manager.delete("res")


def test_lease_context_manager_holds_what_is_written(client: Client) -> None:
    data = b"held by a lease"
    digest = Digester.of(data)
    with client.lease(expire=timedelta(minutes=5), labels={"who": "test"}) as leased:
        assert leased.lease_id
        (lease,) = client.leases.list([f"id=={leased.lease_id}"])
        assert dict(lease.labels)["who"] == "test"
        expires = datetime.strptime(lease.labels[LABEL_EXPIRE], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)
        assert write_blob(leased.content, "held", data, expected=digest) == digest
        assert Resource(id=digest, type="content") in client.leases.list_resources(leased.lease_id)
    assert client.leases.list() == []


def test_with_lease_sends_the_lease(client: Client) -> None:
    client.leases.create("manual")
    leased = client.with_lease("manual")
    assert leased.lease_id == "manual"
    digest = write_blob(leased.content, "manual-ref", b"manual")
    assert client.leases.list_resources("manual") == [Resource(id=digest, type="content")]
    assert client.with_lease(None).lease_id is None
    client.leases.delete("manual")


def test_missing_lease_is_an_error(client: Client) -> None:
    with pytest.raises(errors.NotFound):
        write_blob(client.with_lease("never-created").content, "ref", b"data")


@pytest.fixture
def silent_socket(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections and never answers: a daemon that hangs."""
    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)
        s.listen(8)
        yield path


def test_timeout_is_applied(silent_socket: str) -> None:
    with Client(silent_socket, timeout=0.3) as c:
        start = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            c.version()
        assert time.monotonic() - start < 5
