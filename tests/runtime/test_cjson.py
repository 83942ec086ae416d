"""The shim's JSON codec gives json's bytes and values, without importing json."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.runtime.shim import _cjson

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(values)
def test_dumps_is_compact_json_dumps(value: Any) -> None:
    assert _cjson.dumps(value) == json.dumps(value, separators=(",", ":"), allow_nan=False)


@given(values)
def test_loads_reads_what_json_writes(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, indent=2), json.dumps(value, ensure_ascii=False)):
        assert _cjson.loads(text) == json.loads(text)
        assert _cjson.loads(f" \t\n{text}\r\n".encode()) == json.loads(text)


def test_non_string_keys_as_json_writes_them() -> None:
    assert _cjson.dumps({1: None, False: 2.5, None: "x"}) == '{"1":null,"false":2.5,"null":"x"}'


@pytest.mark.parametrize(
    "text",
    ["", "   ", "{", '{"a":1} {}', "[1,]", "NaN", "[Infinity]", '{"a":-Infinity}', '"\x01"', "01", "{'a':1}"],
)
def test_malformed_text_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        _cjson.loads(text)


def test_invalid_utf8_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        _cjson.loads(b'"\xff"')


@pytest.mark.parametrize("value", [math.nan, math.inf, [-math.inf]])
def test_non_finite_floats_are_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        _cjson.dumps(value)


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), {(1, 2): 3}])
def test_what_json_cannot_hold_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        _cjson.dumps(value)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(RecursionError):
        _cjson.loads("[" * 100_000 + "]" * 100_000)
