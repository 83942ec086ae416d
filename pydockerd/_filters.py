"""Docker's ``filters`` query parameter: parsing and the matchers it needs.

The value is JSON, ``{"name": {"value": true}}`` (or the older
``{"name": ["value"]}``).  Unknown filter names are refused with a 400, as
dockerd does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from pycontainerd.errors import InvalidArgument

__all__ = ["Filters", "bool_filter", "glob_match", "label_match", "parse_filters"]

Filters = dict[str, list[str]]


def parse_filters(raw: str, accepted: Iterable[str]) -> Filters:
    """The filters of ``raw`` by name; InvalidArgument for bad JSON or a name not in ``accepted``."""
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"invalid filter: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid filter: want a JSON object")
    allowed = set(accepted)
    out: Filters = {}
    for name, values in doc.items():
        if name not in allowed:
            raise InvalidArgument(f"invalid filter '{name}'")
        if isinstance(values, Mapping):
            out[name] = [str(v) for v, on in values.items() if on]
        elif isinstance(values, list):
            out[name] = [str(v) for v in values]
        else:
            raise InvalidArgument(f"invalid filter '{name}': want an object or a list of values")
    return out


def bool_filter(filters: Filters, name: str) -> bool | None:
    """A filter that takes one boolean (``dangling=true``); None when absent."""
    values = filters.get(name)
    if not values:
        return None
    wanted = {v.lower() for v in values}
    if wanted <= {"true", "1"}:
        return True
    if wanted <= {"false", "0"}:
        return False
    raise InvalidArgument(f"invalid filter '{name}={values[0]}'")


def _glob(pattern: str) -> re.Pattern[str]:
    """A Go ``path.Match`` pattern as a regex: ``*`` and ``?`` never cross a ``/``."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f"invalid filter pattern {pattern!r}: unclosed [")
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "!" + body[1:]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def glob_match(pattern: str, value: str) -> bool:
    return _glob(pattern).match(value) is not None


def label_match(spec: str, labels: Mapping[str, str]) -> bool:
    """``key`` (present) or ``key=value`` (equal) against an image's labels."""
    key, sep, value = spec.partition("=")
    if not sep:
        return key in labels
    return labels.get(key) == value
