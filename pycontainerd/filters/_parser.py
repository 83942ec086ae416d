"""Recursive-descent parser for one filter string, and the filters it builds.

Grammar (as containerd's scanner actually accepts it)::

    selectors := selector ("," selector)*
    selector  := fieldpath [operator value]
    fieldpath := field ("." field)*
    field     := [A-Za-z0-9_]+ | "double-quoted"
    operator  := "==" | "!=" | "~="
    value     := unquoted | "double-quoted"      (for "~=" also /slashed/ or |piped|)

Error messages are containerd's, word for word, so that clients and scripts
that look at them see the same text from either daemon.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InvalidArgument
from ._scanner import Kind, Scanner, Token, unquote

if TYPE_CHECKING:
    from . import Adaptor

__all__ = ["ALWAYS", "AllOf", "AnyOf", "Operator", "Selector", "parse_one"]


class Operator(enum.Enum):
    PRESENT = "?"
    EQUAL = "=="
    NOT_EQUAL = "!="
    MATCHES = "~="


_SURROGATES = re.compile("[\ud800-\udfff]")
_OPERATORS = {op.value: op for op in Operator if op is not Operator.PRESENT}


@dataclass(frozen=True, slots=True)
class Selector:
    """One ``<fieldpath>[<op><value>]`` test.

    An absent field reads as the empty string for ``!=`` and ``~=``, as in
    containerd: ``labels.x!=y`` matches objects that lack the label.
    """

    fieldpath: tuple[str, ...]
    operator: Operator
    value: str = ""
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def match(self, adaptor: Adaptor) -> bool:
        found = adaptor(self.fieldpath)
        if self.operator is Operator.PRESENT:
            return found is not None
        if self.operator is Operator.EQUAL:
            return found is not None and found == self.value
        actual = "" if found is None else found
        if self.operator is Operator.NOT_EQUAL:
            return actual != self.value
        assert self.pattern is not None
        return self.pattern.search(actual) is not None


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every part must match (the selectors of one filter string)."""

    parts: tuple[Selector, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return all(part.match(adaptor) for part in self.parts)


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Some part must match (several filter strings)."""

    parts: tuple[AllOf | _Always, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return any(part.match(adaptor) for part in self.parts)


@dataclass(frozen=True, slots=True)
class _Always:
    """What an empty filter means: no constraint at all."""

    def match(self, adaptor: Adaptor) -> bool:
        return True


ALWAYS = _Always()


def _compile_regexp(value: str) -> re.Pattern[str] | str:
    """The compiled pattern, or why it is not a valid regular expression.

    Python's ``re`` stands in for Go's RE2; ``re.ASCII`` keeps ``\\d``, ``\\w``,
    ``\\s`` and ``\\b`` ASCII-only as they are in RE2.
    """
    if _SURROGATES.search(value):
        return "invalid UTF-8"
    try:
        return re.compile(value, re.ASCII)
    except re.error as exc:
        return str(exc.msg)
    except (OverflowError, RecursionError) as exc:
        return str(exc)


class _Parser:
    """Consumes the scanner's tokens; every method raises on the first error."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.scanner = Scanner(text)
        # containerd compiles patterns lazily and a bad one silently matches
        # nothing; we refuse it, but only after the syntax is known good so that
        # syntax errors read exactly as containerd's.
        self.bad_regexp: InvalidArgument | None = None

    def error(self, pos: int, message: str) -> InvalidArgument:
        """containerd's message: the input with the offending character marked.

        containerd marks a single byte; we mark the whole character, so the
        message stays valid UTF-8 (and surrogates are shown as U+FFFD).
        """
        if pos < len(self.text):
            before, at, after = self.text[:pos], self.text[pos], self.text[pos + 1 :]
            where = f"[{before} >|{at}|< {after}]"
        else:
            where = f"[{self.text}]"
        text = f"filters: parse error: {where}: {message}"
        return InvalidArgument(_SURROGATES.sub("\ufffd", text))

    def selectors(self) -> AllOf:
        parts = [self.selector()]
        while True:
            ahead = self.scanner.peek()
            if ahead == "":
                if self.bad_regexp:
                    raise self.bad_regexp
                return AllOf(tuple(parts))
            if ahead != ",":
                raise self.error(self.scanner.end, f"unexpected input: {Scanner.shown(ahead)}")
            self.scanner.scan()
            parts.append(self.selector())

    def selector(self) -> Selector:
        fieldpath = self.fieldpath()
        if self.scanner.peek() in ("", ","):
            return Selector(fieldpath, Operator.PRESENT)
        operator = self.operator()
        token = self.scanner.scan()
        value = self.value(token, alt_quotes=operator is Operator.MATCHES)
        if operator is not Operator.MATCHES:
            return Selector(fieldpath, operator, value)
        pattern = _compile_regexp(value)
        if isinstance(pattern, str):
            self.bad_regexp = self.bad_regexp or self.error(token.pos, f"error parsing regexp: {pattern}: `{value}`")
            return Selector(fieldpath, operator, value)
        return Selector(fieldpath, operator, value, pattern)

    def fieldpath(self) -> tuple[str, ...]:
        fields = [self.field()]
        while self.scanner.peek() == ".":
            self.scanner.scan()
            fields.append(self.field())
        return tuple(fields)

    def field(self) -> str:
        token = self.scanner.scan()
        if token.kind is Kind.FIELD:
            return token.text
        if token.kind is Kind.QUOTED:
            return self.unquote(token, alt_quotes=False)
        if token.kind is Kind.ILLEGAL:
            raise self.error(token.pos, self.scanner.err)
        raise self.error(token.pos, "expected field or quoted")

    def operator(self) -> Operator:
        token = self.scanner.scan()
        if token.kind is Kind.OPERATOR:
            if token.text in _OPERATORS:
                return _OPERATORS[token.text]
            raise self.error(token.pos, f'unsupported operator "{token.text}"')
        if token.kind is Kind.ILLEGAL:
            raise self.error(token.pos, self.scanner.err)
        raise self.error(token.pos, 'expected an operator ("=="|"!="|"~=")')

    def value(self, token: Token, *, alt_quotes: bool) -> str:
        if token.kind in (Kind.VALUE, Kind.FIELD):
            return token.text
        if token.kind is Kind.QUOTED:
            return self.unquote(token, alt_quotes=alt_quotes)
        if token.kind is Kind.ILLEGAL:
            raise self.error(token.pos, self.scanner.err)
        raise self.error(token.pos, "expected value or quoted")

    def unquote(self, token: Token, *, alt_quotes: bool) -> str:
        """Slashes and pipes quote only regular expressions; elsewhere use double quotes."""
        if not alt_quotes and token.text[0] != '"':
            raise self.error(token.pos, "invalid quote encountered")
        text = unquote(token.text)
        if text is None:
            raise self.error(token.pos, "unquoting failed: quote syntax error")
        return text


def parse_one(text: str) -> AllOf | _Always:
    """One filter string: its selectors AND'ed; the empty string matches everything."""
    if text == "":
        return ALWAYS
    return _Parser(text).selectors()
