"""Reference parsing: the Docker grammar, normalisation, and one clear error naming the input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.errors import InvalidArgument
from pycontainerd.reference import Reference, parse, parse_normalized

D = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("busybox", Reference("", "busybox")),
        ("busybox:1.36", Reference("", "busybox", "1.36")),
        ("a/b/c", Reference("", "a/b/c")),
        ("localhost/a", Reference("localhost", "a")),
        ("localhost:5000/a/b:t", Reference("localhost:5000", "a/b", "t")),
        ("127.0.0.1:5000/x@" + D, Reference("127.0.0.1:5000", "x", "", D)),
        ("[::1]:5000/x:1@" + D, Reference("[::1]:5000", "x", "1", D)),
        ("Registry.Example.COM/a_b__c-d--e.f", Reference("Registry.Example.COM", "a_b__c-d--e.f")),
        ("r.io/x:" + "T" * 128, Reference("r.io", "x", "T" * 128)),
    ],
)
def test_parse(ref: str, want: Reference) -> None:
    assert parse(ref) == want
    assert str(want) == ref


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox@" + D, "docker.io/library/busybox@" + D),
        ("user/app:1", "docker.io/user/app:1"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/user/app", "docker.io/user/app:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("localhost/x:2", "localhost/x:2"),
        ("ghcr.io/o/r:v@" + D, "ghcr.io/o/r:v@" + D),
    ],
)
def test_parse_normalized(ref: str, want: str) -> None:
    r = parse_normalized(ref)
    assert str(r) == want
    assert want.startswith(r.name + (":" if r.tag else "@"))


def test_name_and_object() -> None:
    r = parse_normalized("localhost:5000/a/b:t")
    assert (r.domain, r.path, r.name, r.object) == ("localhost:5000", "a/b", "localhost:5000/a/b", "t")
    assert parse_normalized("a@" + D).object == D


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("", "empty"),
        ("UPPER/case", "lowercase"),
        ("r.io/Up", "lowercase"),
        ("a//b", "repository name"),
        ("a/", "repository name"),
        ("-a/b", "repository name"),
        ("a__-b", "repository name"),
        ("a:", "tag"),
        ("a:-x", "tag"),
        ("a:" + "t" * 129, "tag"),
        ("a:ü", "tag"),
        ("a@sha256:short", "digest"),
        ("a@md5:" + "0" * 32, "digest"),
        ("a@" + D.upper(), "digest"),
        ("bad_host:5000/a", "host"),
        ("r.io:port/a", "host"),
        ("r.io/" + "a" * 251, "255"),
        ("0123456789abcdef" * 4, "hexadecimal"),
    ],
)
def test_rejects_with_one_clear_line(ref: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_normalized(ref)
    msg = str(e.value)
    assert "\n" not in msg and why in msg, msg
    if ref:
        assert repr(ref) in msg


def test_longest_name() -> None:
    path = "a" * (255 - len("r.io/"))
    assert parse("r.io/" + path).name == "r.io/" + path
    assert parse("b" * 255).path == "b" * 255
    with pytest.raises(InvalidArgument):
        parse("b" * 256)


_component = st.from_regex(r"\A[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z", fullmatch=True).filter(lambda c: len(c) < 30)
_path = st.lists(_component, min_size=1, max_size=3).map("/".join)
_domain = st.sampled_from(["", "localhost", "localhost:5000", "r.example.com", "127.0.0.1:5000", "[::1]:80"])
_tag = st.one_of(st.just(""), st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z", fullmatch=True))
_digest = st.one_of(st.just(""), st.just(D))


@given(_domain, _path, _tag, _digest)
def test_round_trip_of_valid_references(domain: str, path: str, tag: str, digest: str) -> None:
    if domain == "" and "/" not in path and len(path) == 64 and all(c in "0123456789abcdef" for c in path):
        return
    first = path.split("/", maxsplit=1)[0]
    if domain == "" and "/" in path and ("." in first or first == "localhost"):
        return  # written out, that first component names a registry: it is another reference
    ref = Reference(domain, path, tag, digest)
    assert parse(str(ref)) == ref
    n = parse_normalized(str(ref))
    assert n.domain == (domain or "docker.io")
    assert n.tag == (tag or ("" if digest else "latest"))
    assert parse_normalized(str(n)) == n


@given(st.text(max_size=80))
def test_anything_else_is_invalid_argument(text: str) -> None:
    try:
        r = parse(text)
    except InvalidArgument as e:
        assert "\n" not in str(e)
        return
    assert parse(str(r)) == r
