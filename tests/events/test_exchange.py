"""The event exchange: topic rules, filters on envelope and payload fields, fan-out across threads."""

from __future__ import annotations

import asyncio
import threading

import pytest
from google.protobuf import any_pb2

from pycontainerd import errors
from pycontainerd.api import typeurl
from pycontainerd.api.events import container_pb2, image_pb2, task_pb2
from pycontainerd.events import Envelope, message_field, validate_topic
from pycontainerd.events import exchange as exchange_mod
from pycontainerd.events.exchange import Exchange, decode


@pytest.mark.parametrize("topic", ["/tasks/exit", "/a", "/a.b/c-d/e_f"])
def test_good_topics(topic: str) -> None:
    assert validate_topic(topic) == topic


@pytest.mark.parametrize(
    ("topic", "words"),
    [("", "must not be empty"), ("tasks", "must start with"), ("/", "at least one"), ("/a//b", "component")],
)
def test_bad_topics(topic: str, words: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=words):
        validate_topic(topic)


def test_message_fields() -> None:
    ev = image_pb2.ImageCreate(name="x:1", labels={"a.b": "c"})
    assert message_field(ev, ["name"]) == "x:1"
    assert message_field(ev, ["labels", "a", "b"]) == "c"
    assert message_field(ev, ["labels", "zz"]) is None
    assert message_field(ev, ["nope"]) is None
    exit_ = task_pb2.TaskExit(container_id="c", pid=5)
    assert message_field(exit_, ["pid"]) is None  # numbers are not addressable, as in containerd
    created = container_pb2.ContainerCreate(id="c", runtime=container_pb2.ContainerCreate.Runtime(name="rt"))
    assert message_field(created, ["runtime", "name"]) == "rt"


async def _collect(sub: exchange_mod.Subscription, n: int) -> list[Envelope]:
    out: list[Envelope] = []
    async for e in sub:
        out.append(e)
        if len(out) == n:
            break
    return out


def test_subscribers_see_matching_events_from_other_threads() -> None:
    async def main() -> None:
        ex = Exchange()
        everything = ex.subscribe()
        exits = ex.subscribe(['topic=="/tasks/exit"'])
        by_field = ex.subscribe(["event.container_id==c2,namespace==ns1"])

        def publish() -> None:
            ex.publish("ns1", "/tasks/exit", task_pb2.TaskExit(container_id="c1", exit_status=3))
            ex.publish("ns1", "/tasks/start", task_pb2.TaskStart(container_id="c2", pid=9))
            ex.publish("ns2", "/tasks/exit", task_pb2.TaskExit(container_id="c2"))

        t = threading.Thread(target=publish)
        t.start()
        all_, ex_, field = await asyncio.wait_for(
            asyncio.gather(_collect(everything, 3), _collect(exits, 2), _collect(by_field, 1)), 5
        )
        t.join()
        assert [(e.namespace, e.topic) for e in all_] == [
            ("ns1", "/tasks/exit"),
            ("ns1", "/tasks/start"),
            ("ns2", "/tasks/exit"),
        ]
        assert [e.namespace for e in ex_] == ["ns1", "ns2"]
        assert [e.topic for e in field] == ["/tasks/start"]
        payload = decode(all_[0].event)
        assert isinstance(payload, task_pb2.TaskExit) and payload.exit_status == 3
        assert all_[0].event.type_url == "containerd.events.TaskExit"
        for s in (everything, exits, by_field):
            s.close()
        assert ex.subscribers == 0

    asyncio.run(main())


def test_bad_input_is_refused() -> None:
    async def main() -> None:
        ex = Exchange()
        with pytest.raises(errors.InvalidArgument):
            ex.subscribe(["topic=="])
        with pytest.raises(errors.InvalidArgument):
            ex.publish("bad namespace", "/x", task_pb2.TaskOOM())
        with pytest.raises(errors.InvalidArgument):
            ex.publish("ns", "x", task_pb2.TaskOOM())
        with pytest.raises(errors.InvalidArgument, match="timestamp"):
            ex.forward(Envelope(0, "ns", "/x", typeurl.pack(task_pb2.TaskOOM(container_id="c"))))

    asyncio.run(main())


def test_a_subscriber_that_falls_behind_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange_mod, "QUEUE_LIMIT", 5)

    async def main() -> None:
        ex = Exchange()
        sub = ex.subscribe()
        for i in range(10):
            ex.publish("ns", "/tasks/oom", task_pb2.TaskOOM(container_id=f"c{i}"))
        got = []
        with pytest.raises(errors.ResourceExhausted):
            async for e in sub:
                got.append(e)
        assert len(got) == 5
        assert ex.subscribers == 0

    asyncio.run(main())


def test_unknown_payload_types_decode_to_none() -> None:
    assert decode(any_pb2.Any(type_url="example.com/Unknown", value=b"\x01")) is None
    assert decode(any_pb2.Any(type_url="containerd.events.TaskExit", value=b"\xff\xff")) is None
