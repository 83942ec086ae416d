"""Which platforms an image may be used on, and which of several to prefer.

``only(p)`` is containerd's rule: a platform also runs the ones its hardware
executes natively (amd64 runs 386; arm64 runs arm v8, v7, v6, v5; arm v7
runs v6 and v5), preferring the closest.
"""

from __future__ import annotations

from typing import Protocol

from ._platform import Platform, default, normalize

__all__ = ["ALL", "Matcher", "any_of", "default_matcher", "only", "ordered"]


class Matcher(Protocol):
    def match(self, p: Platform) -> bool: ...

    def less(self, a: Platform, b: Platform) -> bool:
        """Whether ``a`` is preferred over ``b``."""
        ...


class _All:
    def match(self, p: Platform) -> bool:
        return True

    def less(self, a: Platform, b: Platform) -> bool:
        return False

    def __repr__(self) -> str:
        return "platforms.ALL"


ALL: Matcher = _All()


def _same(want: Platform, got: Platform) -> bool:
    """Equal once both are normalised (so arm64/v8 is arm64, and arm is arm/v7)."""
    g = normalize(got)
    return (want.os, want.architecture, want.variant) == (g.os, g.architecture, g.variant)


class _Ordered:
    """Platforms in order of preference: the first that matches wins."""

    def __init__(self, ps: list[Platform]) -> None:
        self._ps = [normalize(p) for p in ps]

    def _rank(self, p: Platform) -> int:
        for i, want in enumerate(self._ps):
            if _same(want, p):
                return i
        return len(self._ps)

    def match(self, p: Platform) -> bool:
        return self._rank(p) < len(self._ps)

    def less(self, a: Platform, b: Platform) -> bool:
        return self._rank(a) < self._rank(b)

    def __repr__(self) -> str:
        return f"platforms.ordered({', '.join(map(str, self._ps))})"


class _Any(_Ordered):
    """Any of the platforms, with no preference among them."""

    def less(self, a: Platform, b: Platform) -> bool:
        return False


def _compatible(p: Platform) -> list[Platform]:
    p = normalize(p)
    out = [p]
    if p.os in {"linux", "windows"}:
        if p.architecture == "amd64":
            out.append(Platform(p.os, "386"))
        elif p.architecture == "arm64":
            out += [Platform(p.os, "arm", v) for v in ("v8", "v7", "v6", "v5")]
        elif p.architecture == "arm":
            versions = ["v8", "v7", "v6", "v5"]
            if p.variant in versions:
                out += [Platform(p.os, "arm", v) for v in versions[versions.index(p.variant) + 1 :]]
    return out


def ordered(*ps: Platform) -> Matcher:
    return _Ordered(list(ps))


def any_of(*ps: Platform) -> Matcher:
    return _Any(list(ps))


def only(p: Platform) -> Matcher:
    return _Ordered(_compatible(p))


def default_matcher() -> Matcher:
    return only(default())
