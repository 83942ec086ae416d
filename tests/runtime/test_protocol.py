"""The shim's wire format, from bytes: framing, limits, and what counts as a message."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.runtime.shim import protocol
from pycontainerd.runtime.shim.protocol import Decoder, ProtocolError


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_round_trip() -> None:
    msg = protocol.request(7, "kill", {"exec_id": "e1", "signal": 9, "all": False})
    assert Decoder().feed(protocol.encode(msg)) == [msg]


def test_frames_split_anywhere_and_joined() -> None:
    a = protocol.encode(protocol.request(1, "state"))
    b = protocol.encode(protocol.reply(1, {"pid": 42}))
    stream = a + b
    for cut in range(len(stream) + 1):
        d = Decoder()
        out = d.feed(stream[:cut]) + d.feed(stream[cut:])
        assert [m.get("op", "reply") for m in out] == ["state", "reply"]
        assert d.pending == 0


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=7))
def test_partial_input_never_yields_a_message(data: bytes, step: int) -> None:
    d = Decoder()
    whole = protocol.encode({"id": 1, "op": "x", "args": {"blob": data.hex()}})
    got = []
    for i in range(0, len(whole), step):
        got += d.feed(whole[i : i + step])
    assert got == [{"id": 1, "op": "x", "args": {"blob": data.hex()}}]


def test_oversized_frame_refused_from_its_header() -> None:
    d = Decoder(limit=100)
    with pytest.raises(ProtocolError, match="exceeds"):
        d.feed(struct.pack(">I", 101))
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.encode({"x": "y" * 200}, limit=100)


def test_default_limit_refuses_four_gigabytes() -> None:
    with pytest.raises(ProtocolError):
        Decoder().feed(b"\xff\xff\xff\xff")


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b'"text"', b"not json", b"\xff\xfe", b'{"a": NaN}', b"[" * 100_000],
)
def test_payloads_that_are_not_objects(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        Decoder().feed(frame(payload))


@pytest.mark.parametrize(
    "message",
    [
        {"op": "state"},
        {"id": 0, "op": "state"},
        {"id": -3, "op": "state"},
        {"id": True, "op": "state"},
        {"id": "1", "op": "state"},
        {"id": 1},
        {"id": 1, "op": 5},
        {"id": 1, "op": "state", "args": []},
    ],
)
def test_malformed_requests(message: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse_request(message)


def test_parse_request_defaults_args() -> None:
    assert protocol.parse_request({"id": 3, "op": "pids"}) == (3, "pids", {})


def test_replies_errors_and_events() -> None:
    assert protocol.parse_reply(protocol.reply(4, {"pid": 1})) == (4, {"pid": 1}, None)
    assert protocol.parse_reply(protocol.failure(5, "not_found", "gone")) == (5, None, ("not_found", "gone"))
    # an unknown code is reported as unknown rather than trusted
    assert protocol.failure(6, "weird", "x")["error"]["code"] == "unknown"
    assert protocol.parse_reply({"id": 6, "error": {"code": "weird", "message": "x"}}) == (6, None, ("unknown", "x"))
    ev = {"seq": 3, "topic": "/tasks/exit", "container_id": "c"}
    assert protocol.parse_reply(protocol.event(ev)) == (0, ev, None)
    bad_replies: list[dict[str, object]] = [
        {"event": {"topic": "/x"}},
        {"event": []},
        {"id": 1},
        {"id": 1, "error": "x"},
    ]
    for bad in bad_replies:
        with pytest.raises(ProtocolError):
            protocol.parse_reply(bad)


def test_every_op_named_in_the_protocol() -> None:
    assert {"create", "start", "exec", "kill", "delete", "state", "wait", "pids", "events", "ack"} <= protocol.OPS
