"""``.dockerignore``: which files of a build context are left out; pure.

Docker's rules: one pattern a line, ``#`` lines and blank lines skipped,
surrounding spaces trimmed, the path cleaned and a leading ``/`` dropped.
``*`` and ``?`` match within one path element, ``**`` any number of
elements (none included), ``[...]`` a class; ``\\`` quotes the next
character.  A pattern that matches a directory excludes everything under it.
The last pattern that matches decides: a ``!`` pattern brings a file back.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

__all__ = ["IgnoreMatcher", "clean_path", "parse_dockerignore"]

_SPECIAL = set(".+()|{}$^")


def clean_path(path: str) -> str:
    """``path`` cleaned as Go's filepath.Clean, relative to the context root ("." for the root)."""
    cleaned = posixpath.normpath("/" + path.replace("\\", "/") if path.startswith("/") else path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    return cleaned


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c in _SPECIAL:
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return re.compile(re.escape(pattern))


@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


class IgnoreMatcher:
    """The patterns of one ``.dockerignore``; :meth:`excluded` asks about one context path."""

    def __init__(self, patterns: list[str]) -> None:
        self._patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            exclusion = p.startswith("!")
            if exclusion:
                p = p[1:].strip()
            if not p:
                continue
            p = clean_path(p)
            if len(p) > 1 and p.startswith("/"):
                p = p[1:]
            self._patterns.append(_Pattern(p, exclusion, _regex(p)))

    @property
    def patterns(self) -> list[str]:
        return [("!" if p.exclusion else "") + p.text for p in self._patterns]

    @property
    def has_exclusions(self) -> bool:
        return any(p.exclusion for p in self._patterns)

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is left out."""
        path = clean_path(path)
        parts = path.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for p in self._patterns:
            hit = bool(p.regex.match(path)) or any(p.regex.match(parent) for parent in parents)
            if hit:
                matched = not p.exclusion
        return matched


def parse_dockerignore(data: bytes) -> IgnoreMatcher:
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if not line.lstrip().startswith("#")]
    return IgnoreMatcher(lines)
