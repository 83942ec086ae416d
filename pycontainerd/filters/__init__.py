"""containerd's filter syntax: select objects by field paths, for every List call.

A filter string is a comma-separated list of selectors that must all hold::

    name==foo,labels."with.dots"!=x,labels.env,target.digest~=/^sha256:/

A selector is ``<fieldpath>[<op><value>]``: dot-separated fields (quote a field
with double quotes to use any characters), then ``==``, ``!=`` or ``~=`` (a
regular expression, which may also be quoted as ``/re/`` or ``|re|``); with no
operator it asks whether the field is present. A List request carries several
filter strings and an object matches if any of them does.

What a field path means is up to the caller, through an :data:`Adaptor`. The
module is pure: no I/O, and parsing raises only :class:`~pycontainerd.errors.InvalidArgument`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from . import _parser

__all__ = ["Adaptor", "Filter", "adapt_labels", "match_any", "parse"]

Adaptor = Callable[[Sequence[str]], str | None]
"""Maps a field path to the field's value, or None when the object lacks the field."""


class Filter(Protocol):
    """A parsed filter; ``match`` asks the adaptor for each field it tests."""

    def match(self, adaptor: Adaptor) -> bool: ...


def parse(filters: Sequence[str]) -> Filter:
    """Parse filter strings into one filter that matches if any of them does.

    No strings, or an empty string among them, match everything. A bare string
    is taken as a single filter rather than as a sequence of characters.
    Raises InvalidArgument with containerd's message for the first bad string.
    """
    if isinstance(filters, str):
        filters = [filters]
    if not filters:
        return _parser.ALWAYS
    return _parser.AnyOf(tuple(_parser.parse_one(text) for text in filters))


def adapt_labels(fieldpath_rest: Sequence[str], labels: Mapping[str, str]) -> str | None:
    """The label named by the path after ``labels``; its parts are re-joined with dots.

    So ``labels.a.b`` and ``labels."a.b"`` both look up the key ``a.b``, as in containerd.
    """
    if not labels:
        return None
    return labels.get(".".join(fieldpath_rest))


def match_any(filters: Sequence[str], adaptor: Adaptor) -> bool:
    """Parse and match in one call, for code that filters a single object."""
    return parse(filters).match(adaptor)
