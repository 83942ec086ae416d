"""The lexical layer of the filter syntax: a scanner and the unquoting of literals.

The scanner reproduces containerd's token boundaries and error texts exactly,
quirks included (spaces skipped only by ``scan``, a sticky first error, values
that may contain ``=`` or ``.`` after their first character), because clients
see those texts and because the same input must be accepted or refused by both
daemons. Positions are indices into the Python string, where containerd counts
UTF-8 bytes; the two agree on ASCII input.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["QUOTES", "Kind", "Scanner", "Token", "unquote"]

# Sentinels returned by Scanner._advance. A real NUL is always reported as
# illegal, so using NUL as the "illegal" marker cannot be confused with input.
_EOF = ""
_ILLEGAL = "\x00"

QUOTES = frozenset('"/|')
_SEPARATORS = frozenset(",.")
_OPERATOR_CHARS = frozenset("=!~")
# Go's unicode.IsSpace: Latin-1 spaces plus the White_Space property.
_SPACES = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
_FIELD_CHARS = frozenset("_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SIMPLE_ESCAPES = {"a": 0x07, "b": 0x08, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B, "\\": 0x5C}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}
_OCTAL = frozenset("01234567")
_HEX = frozenset("0123456789abcdefABCDEF")


class Kind(enum.Enum):
    """What a token is; ``CHAR`` is any single character no other kind claims."""

    EOF = enum.auto()
    QUOTED = enum.auto()
    VALUE = enum.auto()
    FIELD = enum.auto()
    SEPARATOR = enum.auto()
    OPERATOR = enum.auto()
    ILLEGAL = enum.auto()
    CHAR = enum.auto()


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    pos: int
    text: str


def _is_value_char(ch: str) -> bool:
    """Anything printable but a comma or a space may continue an unquoted value."""
    if ch in (_EOF, ",") or ch in _SPACES:
        return False
    return unicodedata.category(ch)[0] in "LMNPS"


def _digit_value(ch: str) -> int:
    if ch in _HEX:
        return int(ch, 16)
    return 16


class Scanner:
    """Splits one filter string into tokens; peeking never skips spaces, scanning does.

    After an operator the scanner is in value mode: the next unquoted run is a
    value (any printable characters but ``,``) rather than a field name.
    ``err`` holds the first lexical error seen, as containerd reports it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0  # start of the character read last
        self.end = 0  # just past it: where the next read starts
        self.value_mode = False
        self.err = ""

    def _fail(self, message: str) -> None:
        if not self.err:
            self.err = message

    def _advance(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        self.pos = self.end
        if self.end >= len(self.text):
            return _EOF
        ch = self.text[self.end]
        self.end += 1
        # U+FFFD and lone surrogates stand where Go would see invalid UTF-8.
        if ch == "\ufffd" or "\ud800" <= ch <= "\udfff":
            self._fail("rune error")
            return _ILLEGAL
        if ch == "\x00":
            self._fail("unexpected null")
            return _ILLEGAL
        return ch

    def peek(self) -> str:
        """The next character ('' at the end, NUL if illegal), left unread."""
        pos, end = self.pos, self.end
        ch = self._advance()
        self.pos, self.end = pos, end
        return ch

    @staticmethod
    def shown(ch: str) -> str:
        """How containerd prints a peeked character in 'unexpected input'."""
        return "\ufffd" if ch == _ILLEGAL else ch

    def scan(self) -> Token:
        ch = self._advance()
        while ch in _SPACES:
            ch = self._advance()
        start = self.pos
        if ch == _EOF:
            return Token(Kind.EOF, start, "")
        if ch == _ILLEGAL:
            return Token(Kind.ILLEGAL, start, "")
        if ch in QUOTES:
            kind = Kind.QUOTED if self._scan_quoted(ch) else Kind.ILLEGAL
            return Token(kind, start, self.text[start : self.end])
        if ch in _SEPARATORS:
            self.value_mode = False
            return Token(Kind.SEPARATOR, start, ch)
        if ch in _OPERATOR_CHARS:
            self._skip_while(lambda c: c in _OPERATOR_CHARS)
            self.value_mode = True
            return Token(Kind.OPERATOR, start, self.text[start : self.end])
        if self.value_mode:
            self._skip_while(_is_value_char)
            self.value_mode = False
            return Token(Kind.VALUE, start, self.text[start : self.end])
        if ch in _FIELD_CHARS:
            self._skip_while(lambda c: c in _FIELD_CHARS)
            return Token(Kind.FIELD, start, self.text[start : self.end])
        return Token(Kind.CHAR, start, ch)

    def _skip_while(self, accept: Callable[[str], bool]) -> None:
        while accept(self.peek()):
            self._advance()

    def _scan_quoted(self, quote: str) -> bool:
        """Reads up to the closing quote; False (with ``err`` set) if malformed."""
        legal = True
        ch = self._advance()
        while ch != quote:
            if ch in ("\n", _EOF, _ILLEGAL):
                self._fail("quoted literal not terminated")
                return False
            if ch == "\\":
                ch, ok = self._scan_escape(quote)
                legal = legal and ok
            else:
                ch = self._advance()
        return legal

    def _scan_escape(self, quote: str) -> tuple[str, bool]:
        """Checks one escape; returns the character after it and whether it was legal."""
        ch = self._advance()
        if ch in _SIMPLE_ESCAPES or ch == quote:
            return self._advance(), True
        if ch in _OCTAL:
            return self._scan_digits(ch, 8, 3)
        if ch in _HEX_WIDTH:
            return self._scan_digits(self._advance(), 16, _HEX_WIDTH[ch])
        self._fail("illegal escape sequence")
        return ch, False

    def _scan_digits(self, ch: str, base: int, count: int) -> tuple[str, bool]:
        while count > 0 and _digit_value(ch) < base:
            ch = self._advance()
            count -= 1
        if count > 0:
            self._fail("illegal numeric escape sequence")
            return ch, False
        return ch, True


def unquote(literal: str) -> str | None:
    """The value of a quoted literal (Go escapes), or None if it is malformed.

    Escapes are decoded to bytes first, as Go does, so ``"\\xc3\\xa9"`` is
    ``é``; bytes that are not UTF-8 become surrogate escapes, which no real
    field value can equal.
    """
    if len(literal) < 2 or literal[0] != literal[-1] or literal[0] not in QUOTES:
        return None
    quote, body = literal[0], literal[1:-1]
    if "\n" in body:
        return None
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote:
            return None
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= len(body):
            return None
        esc = body[i + 1]
        i += 2
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
        elif esc in QUOTES:
            if esc != quote:
                return None
            out += esc.encode()
        elif esc in _HEX_WIDTH:
            width = _HEX_WIDTH[esc]
            digits = body[i : i + width]
            if len(digits) < width or not all(d in _HEX for d in digits):
                return None
            i += width
            code = int(digits, 16)
            if esc == "x":
                out.append(code)
            elif code > 0x10FFFF:
                return None
            else:
                # Go encodes a surrogate code point as U+FFFD.
                out += ("\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)).encode()
        elif esc in _OCTAL:
            digits = body[i - 1 : i + 2]
            if len(digits) < 3 or not all(d in _OCTAL for d in digits):
                return None
            i += 2
            code = int(digits, 8)
            if code > 0xFF:
                return None
            out.append(code)
        else:
            return None
    return out.decode("utf-8", "surrogateescape")
