"""pydockerd's parsers and translators, tested without a daemon."""

from __future__ import annotations

import base64
import json

import pytest

from pycontainerd.errors import InvalidArgument
from pycontainerd.reference import parse_normalized
from pycontainerd.transfer.progress import Progress
from pydockerd._auth import decode_auth
from pydockerd._filters import bool_filter, glob_match, label_match, parse_filters
from pydockerd._progress import PullReporter
from pydockerd._refs import familiar, parse_docker, with_tag
from pydockerd._version import split_version

LAYER = "sha256:" + "ab" * 32


def test_versions() -> None:
    assert split_version("/v1.41/images/json") == ("1.41", "/images/json")
    assert split_version("/v1.50/_ping") == ("1.50", "/_ping")
    assert split_version("/images/json") == ("1.50", "/images/json")
    with pytest.raises(InvalidArgument, match="too old"):
        split_version("/v1.9/version")
    with pytest.raises(InvalidArgument, match="too new"):
        split_version("/v1.51/version")


@pytest.mark.parametrize(
    ("ref", "shown"),
    [
        ("busybox", "busybox:latest"),
        ("library/busybox:1", "busybox:1"),
        ("docker.io/team/app", "team/app:latest"),
        ("127.0.0.1:5000/app:v1", "127.0.0.1:5000/app:v1"),
        ("localhost/a/b@" + LAYER, "localhost/a/b@" + LAYER),
    ],
)
def test_familiar(ref: str, shown: str) -> None:
    assert familiar(parse_normalized(ref)) == shown


def test_references() -> None:
    assert with_tag("busybox", "1") == "busybox:1"
    assert with_tag("busybox", LAYER) == f"busybox@{LAYER}"
    assert with_tag("busybox", "") == "busybox"
    with pytest.raises(InvalidArgument, match=r"^invalid reference format: repository name must be lowercase$"):
        parse_docker("Busybox")


def test_filters() -> None:
    assert parse_filters('{"dangling":{"true":true},"label":["a=b"]}', ["dangling", "label"]) == {
        "dangling": ["true"],
        "label": ["a=b"],
    }
    with pytest.raises(InvalidArgument, match="invalid filter 'x'"):
        parse_filters('{"x":["1"]}', ["dangling"])
    with pytest.raises(InvalidArgument):
        parse_filters("{", ["dangling"])
    assert bool_filter({"dangling": ["1"]}, "dangling") is True
    assert bool_filter({}, "dangling") is None
    with pytest.raises(InvalidArgument):
        bool_filter({"dangling": ["maybe"]}, "dangling")
    assert glob_match("team/*", "team/app")
    assert not glob_match("*", "team/app")  # as Go's path.Match: * stops at /
    assert glob_match("busy*:1.[0-9]", "busybox:1.5")
    assert label_match("a", {"a": ""}) and label_match("a=b", {"a": "b"}) and not label_match("a=c", {"a": "b"})


def test_auth_header() -> None:
    def enc(doc: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    config = decode_auth(enc({"username": "u", "password": "p", "serveraddress": "r"}))
    assert config is not None and config.credentials() == ("u", "p")
    config = decode_auth(enc({"auth": base64.b64encode(b"me:pw:x").decode()}))
    assert config is not None and config.credentials() == ("me", "pw:x")
    assert decode_auth(enc({})) is None
    assert decode_auth("") is None
    with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
        decode_auth("!!!not base64")


def test_pull_messages() -> None:
    out: list[dict[str, object]] = []
    r = PullReporter(out.append, "library/busybox", "latest")
    other = "sha256:" + "cd" * 32
    for p in (
        Progress("Resolving from docker.io/library/busybox:latest"),
        Progress("Pulling from docker.io/library/busybox:latest"),
        Progress("waiting", f"layer-{LAYER}", total=10),
        Progress("waiting", f"layer-{other}", total=5),
        Progress("already exists", f"layer-{other}", progress=5, total=5),
        Progress("downloading", f"layer-{LAYER}", progress=0, total=10),
        Progress("downloading", f"layer-{LAYER}", progress=4, total=10),
        Progress("complete", f"layer-{LAYER}", progress=10, total=10),
        Progress("unpacking", f"layer-{LAYER}"),
        Progress("unpacked", f"layer-{LAYER}"),
    ):
        r(p)
    r.finish("sha256:" + "ef" * 32, "busybox:latest", newer=r.downloaded)
    lines = [(m.get("id", ""), m["status"]) for m in out]
    assert lines == [
        ("latest", "Pulling from library/busybox"),
        ("cdcdcdcdcdcd", "Already exists"),
        ("abababababab", "Pulling fs layer"),
        ("abababababab", "Downloading"),
        ("abababababab", "Verifying Checksum"),
        ("abababababab", "Download complete"),
        ("abababababab", "Extracting"),
        ("abababababab", "Pull complete"),
        ("", "Digest: sha256:" + "ef" * 32),
        ("", "Status: Downloaded newer image for busybox:latest"),
    ]
    assert out[3]["progressDetail"] == {"current": 4, "total": 10}


def test_event_filters() -> None:
    from pydockerd._events import Event, matches

    pull = Event("image", "pull", "busybox:latest", {"name": "busybox:latest"}, 5)
    start = Event("container", "exec_start: sh -c true", "c0ffee" * 10, {"name": "web", "image": "busybox"}, 6)
    assert matches(pull, {})
    assert matches(pull, {"type": ["image"]}) and not matches(pull, {"type": ["container"]})
    assert matches(start, {"event": ["exec_start"]}) and not matches(start, {"event": ["start"]})
    assert matches(start, {"container": ["web"]}) and matches(start, {"container": ["c0ffee"]})
    assert not matches(pull, {"container": ["busybox:latest"]})
    assert matches(start, {"image": ["busybox"]}) and matches(pull, {"image": ["busybox:latest"]})
    assert matches(start, {"label": ["name=web"]}) and not matches(start, {"label": ["name=db"]})
    assert matches(start, {"type": ["container"], "event": ["exec_start"]})
    assert not matches(start, {"type": ["container"], "event": ["die"]})


def test_event_times() -> None:
    from pydockerd.routes.system import parse_time

    now = 1_000.0
    assert parse_time("", now) is None
    assert parse_time("12.5", now) == 12_500_000_000
    assert parse_time("10s", now) == 990 * 10**9
    assert parse_time("2m", now) == 880 * 10**9
    assert parse_time("1970-01-01T00:00:10Z", now) == 10 * 10**9
    with pytest.raises(InvalidArgument, match="invalid time value"):
        parse_time("yesterday", now)
