"""ctr's --mount and --uidmap strings, and signal names: good input parsed, bad input refused with one clear message."""

from __future__ import annotations

from typing import Any

import pytest

from pycontainerd.errors import InvalidArgument
from pycontainerd.oci import IDMapping, parse_id_mapping, parse_mount_flag, parse_signal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "type=bind,src=/srv,dst=/data,options=rbind:ro",
            {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]},
        ),
        (
            "type=bind,source=/srv,destination=/data,options=rbind:rw",
            {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "rw"]},
        ),
        (
            "dst=/tmp,type=tmpfs,source=tmpfs,options=nosuid:nodev:size=64m:mode=1777",
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "size=64m", "mode=1777"],
            },
        ),
        ("type=tmpfs,dst=/run", {"destination": "/run", "type": "tmpfs"}),
        ("src=/a,dst=/b,options=bind", {"destination": "/b", "source": "/a", "options": ["bind"]}),
        # a value holding a comma is quoted, CSV-style, as ctr reads it
        ('type=bind,"src=/a,b",dst=/c', {"destination": "/c", "type": "bind", "source": "/a,b"}),
        ('"dst=/x ""quoted""",type=tmpfs', {"destination": '/x "quoted"', "type": "tmpfs"}),
        ("type=bind,src=/a=b,dst=/c", {"destination": "/c", "type": "bind", "source": "/a=b"}),
    ],
)
def test_good_mounts(text: str, expected: dict[str, Any]) -> None:
    m = parse_mount_flag(text)
    assert m == expected
    assert list(m) == [k for k in ("destination", "type", "source", "options") if k in m]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is empty"),
        ("type=bind", "destination .dst. is missing"),
        ("type=bind,src=/a,dst=relative", "not an absolute path"),
        ("type=bind,dst=/a", "needs a source"),
        ("dst=/a,options=rbind:ro", "needs a source"),
        ("type=bind,src=/a,dst=/b,bogus=1", 'unknown key "bogus"'),
        ("type=bind,src=/a,/b", 'expected key=value, got "/b"'),
        ("type=bind,src=/a,dst=/b,", 'expected key=value, got ""'),
        ("src=/a,source=/b,dst=/c", "source is given more than once"),
        ("type=bind,src=/a,dst=/b,options=rbind::ro", "empty option"),
        ("type=bind,src=/a,dst=/b,options=", "empty option"),
        ("type=,dst=/b", "type is empty"),
        ('type=bind,"src=/a,dst=/b', "not closed"),
        ('type=bind,"src=/a"x,dst=/b', "after a closing"),
        ('type=bind,src=/a"b,dst=/c', 'a " inside a field'),
        ("type=bind,src=/a,dst=/b\ntype=tmpfs", "line break"),
        ("type=tmpfs,dst=/b\x00", "line break or NUL"),
        ("TYPE=bind,src=/a,dst=/b", 'unknown key "TYPE"'),
    ],
)
def test_bad_mounts(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason) as e:
        parse_mount_flag(text)
    assert str(e.value).startswith("invalid mount ")
    assert "\n" not in str(e.value)


def test_id_mapping() -> None:
    assert parse_id_mapping("0:100000:65536") == IDMapping(0, 100000, 65536)
    assert parse_id_mapping("0:100000:65536").to_spec() == {"containerID": 0, "hostID": 100000, "size": 65536}


@pytest.mark.parametrize(
    "text", ["", "0:1", "0:1:2:3", "a:1:2", "0:-1:2", "0:1:0", "0:4294967295:2", "0:1:4294967296", " 0:1:2", "0:1:2 "]
)
def test_bad_id_mappings(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_id_mapping(text)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("SIGTERM", 15),
        ("TERM", 15),
        ("sigkill", 9),
        ("SIGUSR1", 10),
        ("9", 9),
        ("SIGRTMIN+3", 37),
        ("RTMAX", 64),
        ("SIGWINCH", 28),
    ],
)
def test_signals(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["", "0", "65", "-9", "SIGFOO", "SIG", "TERM ", "\uff11\uff15"])
def test_bad_signals(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid signal"):
        parse_signal(text)
