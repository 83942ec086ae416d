"""containerd's filter syntax: matching, every parse error word for word, and properties.

The expected error texts are what containerd 1.6's parser prints for the same
input (checked against it), so clients see one wording from either daemon.
"""

from __future__ import annotations
import __future__

import collections.abc
import re
import typing
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd import errors, filters
from pycontainerd.filters import Adaptor, adapt_labels, match_any, parse

IMPORTED_FROM = (__future__, collections.abc, typing)


def test_all_is_exactly_the_public_api() -> None:
    assert sorted(filters.__all__) == ["Adaptor", "Filter", "adapt_labels", "match_any", "parse"]
    imported = {
        name for name, value in vars(filters).items() if any(getattr(m, name, None) is value for m in IMPORTED_FROM)
    }
    public = {name for name in vars(filters) if not name.startswith("_")} - imported
    assert public == set(filters.__all__)


# -- matching -----------------------------------------------------------------

OBJECTS: list[tuple[str, dict[str, str]]] = [
    ("web", {"app": "nginx", "tier": "front", "with.dots": "yes"}),
    ("db", {"app": "postgres", "has space": "a, b"}),
    ("cache", {}),
    ("", {"app": "", 'quote"key': "v\\al"}),
    ("x", {"v": "a=b.c-d:e/f|g~h!"}),
    ("café", {}),
]


def adaptor_for(name: str, labels: Mapping[str, str]) -> Adaptor:
    """Like containerd's image adaptor: an empty name is absent, labels by key."""

    def adapt(path: Sequence[str]) -> str | None:
        if path[0] == "name":
            return name or None
        if path[0] == "labels":
            return adapt_labels(path[1:], labels)
        return None

    return adapt


def selected(fs: Sequence[str]) -> list[int]:
    flt = parse(fs)
    return [i for i, (name, labels) in enumerate(OBJECTS) if flt.match(adaptor_for(name, labels))]


EVERY = list(range(len(OBJECTS)))


@pytest.mark.parametrize(
    ("fs", "expected"),
    [
        ([], EVERY),
        ([""], EVERY),
        (["", ""], EVERY),
        (["name==web", ""], EVERY),
        (["name"], [0, 1, 2, 4, 5]),
        (["labels.app"], [0, 1, 3]),
        (["labels.app==nginx"], [0]),
        (['labels.app==""'], [3]),
        (["labels.app!=nginx"], [1, 2, 3, 4, 5]),  # absent reads as "" for !=
        (['labels.app!=""'], [0, 1]),
        (["name!=web"], [1, 2, 3, 4, 5]),
        (["name==web,labels.tier"], [0]),
        (["name==web,labels.tier==back"], []),
        (["name==web", "name==db"], [0, 1]),
        (['labels."with.dots"==yes'], [0]),
        (["labels.with.dots==yes"], [0]),  # the path is re-joined with dots
        (['labels."has space"=="a, b"'], [1]),
        ([r'labels."quote\"key"=="v\\al"'], [3]),
        (["labels.app~=^(nginx|postgres)$"], [0, 1]),
        (["labels.app~=/gin/"], [0]),
        (["labels.app~=|gres$|"], [1]),
        (["labels.app~=/[ng]{1,2}i/"], [0]),  # slashes keep the comma in the pattern
        ([r"labels.app~=/\//"], []),
        (["labels.app~=^$"], [2, 3, 4, 5]),  # absent reads as "" for ~=
        (["name~=/./"], [0, 1, 2, 4, 5]),
        (["name=='web'"], []),  # single quotes are not quotes
        ([r"name~=^\w+$"], [0, 1, 2, 4]),  # \w is ASCII-only, as in RE2
        ([" name == web"], [0]),
        (["name==web, labels.tier"], [0]),
        (["labels. tier"], [0]),
        (["labels.v==a=b.c-d:e/f|g~h!"], [4]),  # after its first character a value takes any punctuation
        (["name==café"], [5]),
        (['name=="caf\\u00e9"'], [5]),
        (['name=="caf\\U000000e9"'], [5]),
        (['name=="caf\\xc3\\xa9"'], [5]),  # escapes make bytes, as in Go
        (['name=="caf\\303\\251"'], [5]),
        (['name=="caf\\xe9"'], []),  # not UTF-8: equals no string
        (["_x", "1"], []),
        (['"name"==db'], [1]),
    ],
)
def test_matching(fs: list[str], expected: list[int]) -> None:
    assert selected(fs) == expected


def test_fieldpaths_reach_the_adaptor_as_parsed() -> None:
    seen: list[tuple[str, ...]] = []

    def record(path: Sequence[str]) -> str | None:
        seen.append(tuple(path))
        return "v"

    assert parse(['labels."a.b".c,x.y_1.2==v,"" ~= v']).match(record)
    assert seen == [("labels", "a.b", "c"), ("x", "y_1", "2"), ("",)]


def test_a_bare_string_is_one_filter() -> None:
    assert match_any("name==web", adaptor_for("web", {}))
    assert not match_any("name==db", adaptor_for("web", {}))


def test_selectors_are_and_filters_are_or() -> None:
    web = adaptor_for("web", {"a": "1"})
    assert match_any(["name==web,labels.a==1"], web)
    assert not match_any(["name==web,labels.a==2"], web)
    assert match_any(["name==db", "labels.a==1"], web)
    assert not match_any(["name==db", "labels.a==2"], web)


def test_adapt_labels() -> None:
    labels = {"a.b": "1", "c": "2", "": "empty"}
    assert adapt_labels(["a", "b"], labels) == "1"
    assert adapt_labels(["a.b"], labels) == "1"
    assert adapt_labels(["c"], labels) == "2"
    assert adapt_labels(["d"], labels) is None
    assert adapt_labels([], labels) == "empty"
    assert adapt_labels(["c"], {}) is None


# -- errors -------------------------------------------------------------------

ERRORS: list[tuple[str, str]] = [
    # expected field or quoted
    ("name==foo,", "[name==foo,]: expected field or quoted"),
    ("labels.", "[labels.]: expected field or quoted"),
    (",a", "[ >|,|< a]: expected field or quoted"),
    ("==a", "[ >|=|< =a]: expected field or quoted"),
    ('labels.?"x"==y', '[labels. >|?|< "x"==y]: expected field or quoted'),
    ("labels.é", "[labels. >|é|< ]: expected field or quoted"),  # containerd marks only the first byte
    ("labels..a", "[labels. >|.|< a]: expected field or quoted"),
    ("   ", "[   ]: expected field or quoted"),
    # invalid quote encountered: / and | quote only regular expressions
    ("labels.|foo|==x", "[labels. >|||< foo|==x]: invalid quote encountered"),
    ("/a/", "[ >|/|< a/]: invalid quote encountered"),
    ("name==/foo/", "[name== >|/|< foo/]: invalid quote encountered"),
    ("name!=|foo|", "[name!= >|||< foo|]: invalid quote encountered"),
    # quoted literal not terminated
    ("labels.ns/key==value", "[labels.ns >|/|< key==value]: quoted literal not terminated"),
    ("labels.key==/value", "[labels.key== >|/|< value]: quoted literal not terminated"),
    ('name=="abc', '[name== >|"|< abc]: quoted literal not terminated'),
    ('name=="a\nb"', '[name== >|"|< a\nb"]: quoted literal not terminated'),
    ('name=="a\\"', '[name== >|"|< a\\"]: quoted literal not terminated'),
    # illegal escape sequence
    ('name=="\\q"', '[name== >|"|< \\q"]: illegal escape sequence'),
    ("name~=/\\d+/", "[name~= >|/|< \\d+/]: illegal escape sequence"),
    ('name=="\\\'"', '[name== >|"|< \\\'"]: illegal escape sequence'),
    ('name=="\\/"', '[name== >|"|< \\/"]: illegal escape sequence'),
    ('name=="\\q', '[name== >|"|< \\q]: illegal escape sequence'),  # the first error sticks
    # illegal numeric escape sequence
    ('name=="\\x4"', '[name== >|"|< \\x4"]: illegal numeric escape sequence'),
    ('name=="\\u12"', '[name== >|"|< \\u12"]: illegal numeric escape sequence'),
    ('name=="\\18"', '[name== >|"|< \\18"]: illegal numeric escape sequence'),
    ('name=="\\xg"', '[name== >|"|< \\xg"]: illegal numeric escape sequence'),
    # unquoting failed
    ('name=="\\777"', '[name== >|"|< \\777"]: unquoting failed: quote syntax error'),
    ('name=="\\U00110000"', '[name== >|"|< \\U00110000"]: unquoting failed: quote syntax error'),
    # unsupported operator
    ("a=b", '[a >|=|< b]: unsupported operator "="'),
    ("a===b", '[a >|=|< ==b]: unsupported operator "==="'),
    ("a!~b", '[a >|!|< ~b]: unsupported operator "!~"'),
    ("a!", '[a >|!|< ]: unsupported operator "!"'),
    # expected an operator
    ("a b", '[a  >|b|< ]: expected an operator ("=="|"!="|"~=")'),
    ('a"b"', '[a >|"|< b"]: expected an operator ("=="|"!="|"~=")'),
    ("labels .foo", '[labels  >|.|< foo]: expected an operator ("=="|"!="|"~=")'),
    ("a?", '[a >|?|< ]: expected an operator ("=="|"!="|"~=")'),
    ("a ,b", '[a  >|,|< b]: expected an operator ("=="|"!="|"~=")'),
    # expected value or quoted
    ("labels.a==", "[labels.a==]: expected value or quoted"),
    ("a== ", "[a== ]: expected value or quoted"),
    ("image~=,id?=?fbaq", "[image~= >|,|< id?=?fbaq]: expected value or quoted"),
    ("a==.b", "[a== >|.|< b]: expected value or quoted"),
    ("a~=~", '[a >|~|< =~]: unsupported operator "~=~"'),
    # unexpected input
    ("a==b c", "[a==b >| |< c]: unexpected input:  "),
    ("a==b ", "[a==b >| |< ]: unexpected input:  "),
    ('a=="b"c', '[a=="b" >|c|< ]: unexpected input: c'),
    ('a=="b".c', '[a=="b" >|.|< c]: unexpected input: .'),
    # characters Go cannot read: NUL, U+FFFD (what invalid UTF-8 decodes to), and surrogates
    ("a\x00", "[a >|\x00|< ]: unexpected null"),
    ("\x00", "[ >|\x00|< ]: unexpected null"),
    ("a==b\x00", "[a==b >|\x00|< ]: unexpected input: \ufffd"),
    ('a=="b\x00"', '[a== >|"|< b\x00"]: unexpected null'),
    ("a\ufffd", "[a >|\ufffd|< ]: rune error"),
    ("a\ud800", "[a >|\ufffd|< ]: rune error"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[repr(t) for t, _ in ERRORS])
def test_parse_errors_read_as_containerds(text: str, message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        parse([text])
    assert str(info.value) == f"filters: parse error: {message}"


def test_the_first_bad_string_is_reported() -> None:
    with pytest.raises(errors.InvalidArgument, match=r"\[b==\]"):
        parse(["a", "b==", "c=="])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a~=[", "[a~= >|[|< ]: error parsing regexp: unterminated character set: `[`"),
        ("a~=/(/", "[a~= >|/|< (/]: error parsing regexp: missing ), unterminated subpattern: `(`"),
        ('a~="\\xff"', '[a~= >|"|< \\xff"]: error parsing regexp: invalid UTF-8: `\ufffd`'),
        (
            "a~=x{99999999999}",
            "[a~= >|x|< {99999999999}]: error parsing regexp: the repetition number is too large: `x{99999999999}`",
        ),
    ],
)
def test_bad_regular_expressions_are_refused(text: str, message: str) -> None:
    """containerd would accept these and match nothing; a clear error serves clients better."""
    with pytest.raises(errors.InvalidArgument) as info:
        parse([text])
    assert str(info.value) == f"filters: parse error: {message}"


def test_syntax_errors_win_over_regexp_errors() -> None:
    """So that the message is containerd's whenever containerd would refuse too."""
    with pytest.raises(errors.InvalidArgument, match="expected value or quoted"):
        parse(["a~=[,b=="])


# -- properties ---------------------------------------------------------------

GRAMMAR = st.lists(st.sampled_from([*'ab_0.,=!~"/|\\ \t\nxuU7é\x00\ufffd', "==", "!=", "~=", "\\x4"])).map("".join)
ANY_TEXT = st.text(st.characters(codec=None) | st.characters(categories=["Cs"]))


@given(st.lists(GRAMMAR | ANY_TEXT, max_size=3))
def test_parse_raises_only_invalid_argument(fs: list[str]) -> None:
    try:
        flt = parse(fs)
    except errors.InvalidArgument as exc:
        assert str(exc).startswith("filters: parse error: [")
        str(exc).encode()  # always sendable as a gRPC status message
        return
    flt.match(lambda path: "x" if len(path) % 2 else None)


def go_quote(text: str, quote: str = '"') -> str:
    """Quote like Go's strconv.Quote (for the delimiter given), escaping what the scanner refuses raw."""
    out = [quote]
    for ch in text:
        if ch in ("\\", quote):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\ufffd" or ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append(quote)
    return "".join(out)


LABEL_TEXT = st.text(st.characters(codec="utf-8"))


@given(key=LABEL_TEXT.filter(bool), value=LABEL_TEXT, other=LABEL_TEXT)
def test_quoted_labels_round_trip(key: str, value: str, other: str) -> None:
    adapt = adaptor_for("n", {key: value})
    path = f"labels.{go_quote(key)}"
    assert match_any([path], adapt)
    assert match_any([f"{path}=={go_quote(value)}"], adapt)
    assert match_any([f"{path}!={go_quote(other)}"], adapt) == (value != other)
    assert match_any([f"{path}~={go_quote(re.escape(value), '/')}"], adapt)
    assert match_any([f"{path}~={go_quote(re.escape(value), '|')}"], adapt)


VALUE_START = st.characters(categories=["L", "M", "N", "P", "S"], exclude_characters='",./=!|~\ufffd')
VALUE_REST = st.characters(categories=["L", "M", "N", "P", "S"], exclude_characters=",\ufffd")


@given(first=VALUE_START, rest=st.text(VALUE_REST))
def test_unquoted_values_are_taken_verbatim(first: str, rest: str) -> None:
    value = first + rest
    assert match_any([f"a=={value}"], lambda path: value)
    assert not match_any([f"a!={value}"], lambda path: value)


@given(st.lists(st.sampled_from(["name==web", "name!=web", "labels.a", "labels.a==1", "labels.b~=^x", ""]), max_size=3))
def test_several_strings_match_as_any(fs: list[str]) -> None:
    for name, labels in [("web", {"a": "1"}), ("db", {"b": "xy"}), ("", {})]:
        adapt = adaptor_for(name, labels)
        assert match_any(fs, adapt) == (not fs or any(match_any([f], adapt) for f in fs))
