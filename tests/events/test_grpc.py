"""The Events and Containers services through pycontainerd's client, against pycontainerd and the real containerd.

The same assertions run against both daemons: they are the compatibility check.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator

import pytest

from pycontainerd import errors
from pycontainerd.api.events import container_pb2
from pycontainerd.client import Client
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.events import Envelope
from pycontainerd.events.exchange import decode
from tests.fixtures.containerd import Containerd
from tests.fixtures.daemon import PycontainerdDaemon

SPEC = TypedValue(
    "types.containerd.io/opencontainers/runtime-spec/1/Spec", json.dumps({"ociVersion": "1.0.2-dev"}).encode()
)


@pytest.fixture(params=["pycontainerd", "containerd"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    if request.param == "containerd":
        daemon: Containerd | PycontainerdDaemon = request.getfixturevalue("containerd")
    else:
        daemon = request.getfixturevalue("pycontainerd_daemon")
    with Client(daemon.address, namespace="evtest") as c:
        yield c


def _follow(client: Client, filters: list[str], into: queue.Queue[Envelope]) -> threading.Thread:
    def run() -> None:
        try:
            for e in client.events.subscribe(filters):
                into.put(e)
        except errors.ContainerdError:
            pass  # the subscription is cancelled when the client closes

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _next(q: queue.Queue[Envelope]) -> Envelope:
    return q.get(timeout=10)


def test_publish_and_subscribe(client: Client) -> None:
    got: queue.Queue[Envelope] = queue.Queue()
    _follow(client, ['topic~="^/test/"'], got)
    # A subscription starts when the server has it; publish until the first event arrives.
    for _ in range(50):
        client.events.publish("/test/ping", container_pb2.ContainerDelete(id="first"))
        try:
            first = got.get(timeout=0.2)
            break
        except queue.Empty:
            continue
    else:
        pytest.fail("no event arrived")
    assert first.namespace == "evtest" and first.topic == "/test/ping"
    while not got.empty():
        got.get_nowait()
    client.events.publish("/test/hello", container_pb2.ContainerDelete(id="x1"))
    e = _next(got)
    assert e.topic == "/test/hello"
    payload = decode(e.event)
    assert isinstance(payload, container_pb2.ContainerDelete) and payload.id == "x1"
    with pytest.raises(errors.InvalidArgument):
        client.events.publish("no-slash", container_pb2.ContainerDelete(id="x"))


def test_container_records_and_their_events(client: Client) -> None:
    got: queue.Queue[Envelope] = queue.Queue()
    _follow(client, ['topic~="^/containers/"', "namespace==evtest"], got)
    time.sleep(0.5)
    store = client.containers
    c = Container(id="rec1", runtime=RuntimeInfo("io.containerd.runc.v2"), spec=SPEC, labels={"k": "v"}, image="i:1")
    created = store.create(c)
    assert created.id == "rec1" and created.created_at is not None and created.spec == SPEC
    with pytest.raises(errors.AlreadyExists):
        store.create(c)
    with pytest.raises(errors.InvalidArgument):
        store.create(Container(id="rec2", runtime=RuntimeInfo(""), spec=SPEC))
    with pytest.raises(errors.InvalidArgument):
        store.create(Container(id="rec2", runtime=RuntimeInfo("io.containerd.runc.v2"), spec=None))
    updated = store.update(Container(id="rec1", runtime=c.runtime, spec=SPEC, labels={"k": "w"}), ["labels.k"])
    assert updated.labels == {"k": "w"} and updated.image == "i:1"
    with pytest.raises(errors.InvalidArgument):
        store.update(c, ["runtime"])
    assert [x.id for x in store.list(["labels.k==w"])] == ["rec1"]
    assert store.list(["labels.k==v"]) == []
    store.delete("rec1")
    with pytest.raises(errors.NotFound):
        store.get("rec1")
    topics = [_next(got).topic for _ in range(3)]
    assert topics == ["/containers/create", "/containers/update", "/containers/delete"]
