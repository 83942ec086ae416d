"""The Dockerfile parser: text in, instructions out; no I/O, no variable expansion.

What the classic builder accepts, as Docker's parser reads it:

* parser directives (``# escape=`` and ``# syntax=``) only above the first
  instruction, comment or blank line; ``escape`` is ``\\`` or a backtick;
* a line ending in the escape character continues on the next; comment
  lines (``#`` first) are dropped, also between continued lines, and blank
  lines inside a continuation are skipped;
* the instruction word is case-insensitive; leading ``--name=value`` flags
  of the instructions that take them are split off;
* RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD and VOLUME take a JSON array (the
  exec form) or a shell string; ENV and LABEL take ``key=value`` pairs
  (quotes kept, removed later by expansion) or ENV's old ``key value``.

Errors are Docker's: ``dockerfile parse error on line N: ...``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pycontainerd.errors import InvalidArgument

__all__ = ["Dockerfile", "Instruction", "parse_dockerfile", "split_words"]

KNOWN = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
        "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
)  # fmt: skip
_FLAGS = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "RUN": {"mount", "network", "security"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
_JSON_FORMS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
MAX_DOCKERFILE = 4 << 20


class DockerfileError(InvalidArgument):
    """A Dockerfile Docker would refuse to parse (400, as the classic builder answers)."""


@dataclass(frozen=True)
class Instruction:
    """One instruction: ``cmd`` upper-cased; ``args`` the rest (JSON form: its strings)."""

    cmd: str
    original: str  # as written, continuations joined, for "Step N/M : ..."
    line: int
    args: tuple[str, ...] = ()
    json_form: bool = False
    flags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]
    escape: str = "\\"


def _error(line: int, why: str) -> DockerfileError:
    return DockerfileError(f"dockerfile parse error on line {line}: {why}")


def _directives(lines: list[str]) -> tuple[str, int]:
    """The escape character and how many lines the directives took."""
    escape, seen, n = "\\", set(), 0
    for n, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip())
        if not m or not line.lstrip().startswith("#"):
            return escape, n
        key = m[1].lower()
        if key not in ("escape", "syntax", "check"):
            return escape, n
        if key in seen:
            raise _error(n + 1, f"only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            if m[2] not in ("\\", "`"):
                raise _error(n + 1, f"invalid escape token '{m[2]}' does not validate")
            escape = m[2]
    return escape, len(lines)


def _logical_lines(text: str) -> tuple[str, list[tuple[int, str]]]:
    """(escape, [(first line number, joined text)]) with comments and continuations resolved."""
    lines = text.split("\n")
    escape, start = _directives(lines)
    out: list[tuple[int, str]] = []
    current: list[str] = []
    first = 0
    for i in range(start, len(lines)):
        raw = lines[i].rstrip("\r")
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue
        if not stripped:
            continue  # blank: ends nothing (a continuation skips it, as Docker does, with a warning)
        if not current:
            first = i + 1
        body = raw.rstrip()
        if body.endswith(escape):
            current.append(body[: -len(escape)])
            continue
        current.append(raw.lstrip() if not current else raw)
        out.append((first, "".join(current).strip()))
        current = []
    if current:
        out.append((first, "".join(current).strip()))
    return escape, out


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Whitespace-separated words, quotes and escapes kept in each word (expansion removes them)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == escape and i + 1 < len(text) and quote != "'":
            word += [c, text[i + 1]]
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
            word.append(c)
        elif c in "\"'":
            quote = c
            word.append(c)
        elif c.isspace():
            if word:
                words.append("".join(word))
                word = []
        else:
            word.append(c)
        i += 1
    if word:
        words.append("".join(word))
    return words


def _flags(cmd: str, rest: str, line: int) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    allowed = _FLAGS.get(cmd, set())
    while rest.startswith("--"):
        token, _, after = rest.partition(" ")
        if not token[2:]:
            break
        name, eq, value = token[2:].partition("=")
        if name not in allowed:
            raise _error(line, f"unknown flag: {name}")
        flags[name] = value if eq else "true"
        rest = after.lstrip()
    return flags, rest


def _json_array(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def _pairs(cmd: str, rest: str, line: int, escape: str) -> tuple[str, ...]:
    """ENV and LABEL: ``key=value`` pairs, flattened to (key, value, key, value, ...)."""
    words = split_words(rest, escape)
    if not words:
        raise _error(line, f"{cmd} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise _error(line, f"{cmd} must have two arguments")
        return (key, value.strip())
    out: list[str] = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            why = f"Syntax error - can't find = in {w!r}. Must be of the form: name=value"
            raise _error(line, f"{cmd} names can not be blank" if not key else why)
        out += [key, value]
    return tuple(out)


def _instruction(line: int, text: str, escape: str) -> Instruction:
    word, _, rest = text.partition(" ")
    if "\t" in word:
        word, _, tail = word.partition("\t")
        rest = tail + " " + rest
    cmd = word.upper()
    rest = rest.strip()
    if cmd not in KNOWN:
        raise _error(line, f"unknown instruction: {word}")
    flags, rest = _flags(cmd, rest, line)
    if cmd in _JSON_FORMS:
        array = _json_array(rest)
        if array is not None:
            return Instruction(cmd, text, line, tuple(array), True, flags)
        if cmd == "SHELL":
            raise _error(line, "SHELL requires the arguments to be in JSON form")
    if cmd in ("ENV", "LABEL"):
        return Instruction(cmd, text, line, _pairs(cmd, rest, line, escape), False, flags)
    if cmd in ("RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK", "ONBUILD", "MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"):
        args: tuple[str, ...] = (rest,) if rest else ()
    else:
        args = tuple(split_words(rest, escape))
    needs = {"FROM": 1, "COPY": 2, "ADD": 2, "ARG": 1, "EXPOSE": 1, "VOLUME": 1, "USER": 1, "WORKDIR": 1,
             "STOPSIGNAL": 1, "RUN": 1, "ONBUILD": 1, "HEALTHCHECK": 1, "MAINTAINER": 1}  # fmt: skip
    if len(args) < needs.get(cmd, 0):
        if cmd in ("COPY", "ADD"):
            raise _error(line, f"{cmd} requires at least two arguments, but only {len(args)} provided")
        raise _error(line, f"{cmd} requires at least one argument")
    if (cmd == "FROM" and len(args) not in (1, 3)) or (cmd == "FROM" and len(args) == 3 and args[1].upper() != "AS"):
        raise _error(line, "FROM requires either one or three arguments")
    if cmd in ("USER", "WORKDIR", "STOPSIGNAL") and len(split_words(rest, escape)) != 1 and cmd != "WORKDIR":
        raise _error(line, f"{cmd} requires exactly one argument")
    return Instruction(cmd, text, line, args, False, flags)


def parse_dockerfile(data: bytes) -> Dockerfile:
    """Parse a Dockerfile; DockerfileError (400) on what Docker refuses."""
    if len(data) > MAX_DOCKERFILE:
        raise DockerfileError(f"dockerfile is larger than {MAX_DOCKERFILE} bytes")
    text = data.decode("utf-8", "replace").removeprefix("\ufeff")
    escape, lines = _logical_lines(text)
    instructions = tuple(_instruction(line, t, escape) for line, t in lines)
    if not instructions:
        raise DockerfileError("the Dockerfile cannot be empty")
    first = next((i for i in instructions if i.cmd != "ARG"), None)
    if first is None or first.cmd != "FROM":
        where = first.line if first else instructions[0].line
        raise DockerfileError(f"dockerfile parse error on line {where}: no build stage in current context")
    return Dockerfile(instructions, escape)
