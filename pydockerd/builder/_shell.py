"""Variable expansion in Dockerfile words, as Docker's builder does it: pure, no shell run.

``$name``, ``${name}``, ``${name:-word}``, ``${name-word}``, ``${name:+word}``,
``${name+word}``, ``${name:?message}`` and ``${name?message}``; single quotes
are literal, double quotes expand but keep spaces, the escape character
(``\\`` or the backtick the Dockerfile chose) quotes the next character.
Quotes and escapes are removed from the result.  :meth:`Expander.words`
also splits on whitespace that is neither quoted nor escaped, as EXPOSE and
VOLUME's shell form need.
"""

from __future__ import annotations

from collections.abc import Mapping

from pycontainerd.errors import InvalidArgument

__all__ = ["Expander", "ExpansionError"]

_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME = _NAME_START + "0123456789"


class ExpansionError(InvalidArgument):
    pass


class _Scan:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        c = self.peek()
        self.pos += 1 if c else 0
        return c


# A piece of the result: its text, and whether unquoted whitespace in it separates words.
_Piece = tuple[str, bool]


class Expander:
    """Expands words against an environment (the ARG and ENV values in scope)."""

    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def word(self, text: str, env: Mapping[str, str]) -> str:
        """``text`` expanded as one word; ExpansionError on unbalanced quotes or ``${x:?msg}``."""
        return "".join(t for t, _ in self._pieces(_Scan(text), env, stop=""))

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """``text`` expanded and split into words where unquoted whitespace was."""
        words: list[str] = []
        current: list[str] = []
        started = False
        for text_, split in self._pieces(_Scan(text), env, stop=""):
            if not split:
                current.append(text_)
                started = True
                continue
            for c in text_:
                if c.isspace():
                    if started:
                        words.append("".join(current))
                    current, started = [], False
                else:
                    current.append(c)
                    started = True
        if started:
            words.append("".join(current))
        return words

    def _pieces(self, s: _Scan, env: Mapping[str, str], stop: str) -> list[_Piece]:
        out: list[_Piece] = []
        while True:
            c = s.peek()
            if not c or (stop and c == stop):
                return out
            s.next()
            if c == self.escape:
                nxt = s.next()
                out.append((nxt if nxt else c, False))
            elif c == "'":
                out.append((self._single(s), False))
            elif c == '"':
                out.append((self._double(s, env), False))
            elif c == "$":
                out.append((self._dollar(s, env), True))
            else:
                out.append((c, True))

    def _single(self, s: _Scan) -> str:
        start = s.pos
        while (c := s.next()) != "'":
            if not c:
                raise ExpansionError("unexpected end of statement while looking for matching single-quote")
        return s.text[start : s.pos - 1]

    def _double(self, s: _Scan, env: Mapping[str, str]) -> str:
        out: list[str] = []
        while True:
            c = s.next()
            if not c:
                raise ExpansionError("unexpected end of statement while looking for matching double-quote")
            if c == '"':
                return "".join(out)
            if c == self.escape:
                nxt = s.peek()
                if nxt in ('"', "$", self.escape):
                    out.append(s.next())
                else:
                    out.append(c)
            elif c == "$":
                out.append(self._dollar(s, env))
            else:
                out.append(c)

    def _name(self, s: _Scan) -> str:
        start = s.pos
        while s.peek() and s.peek() in _NAME:
            s.next()
        return s.text[start : s.pos]

    def _dollar(self, s: _Scan, env: Mapping[str, str]) -> str:
        c = s.peek()
        if c == "{":
            s.next()
            return self._braced(s, env)
        if c and c in _NAME_START:
            return env.get(self._name(s), "")
        if c and c.isdigit():
            s.next()
            return ""  # a positional parameter: nothing in a Dockerfile
        return "$"

    def _braced(self, s: _Scan, env: Mapping[str, str]) -> str:
        name = self._name(s)
        if not name:
            raise ExpansionError(f"bad substitution: missing or invalid variable name near {s.text!r}")
        c = s.next()
        if not c:
            raise ExpansionError(f"syntax error: missing '}}' in {s.text!r}")
        if c == "}":
            return env.get(name, "")
        colon = c == ":"
        if colon:
            c = s.next()
        if c not in ("-", "+", "?"):
            raise ExpansionError(f"unsupported modifier ({c}) in substitution: {s.text!r}")
        word = "".join(t for t, _ in self._pieces(s, env, stop="}"))
        if s.next() != "}":
            raise ExpansionError(f"syntax error: missing '}}' in {s.text!r}")
        value = env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if c == "-":
            return value if is_set and value is not None else word
        if c == "+":
            return word if is_set else ""
        if not is_set:
            raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""
