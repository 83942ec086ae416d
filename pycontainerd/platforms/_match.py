"""Which platforms an image may be used on, and which of several to prefer.

Matching compares os, architecture and variant after normalising both sides
(``os.version`` and ``os.features`` are not compared, as in containerd 1.6).
:func:`only` is containerd's rule for a host: it also runs what its hardware
executes natively, closest first.
"""

from __future__ import annotations

import re
from typing import Protocol

from ._host import default
from ._platform import Platform, normalize

__all__ = ["ALL", "Matcher", "any_of", "compatible", "default_matcher", "only", "only_strict", "ordered"]


class Matcher(Protocol):
    """Decides which platforms are wanted and, among those, which is preferred."""

    def match(self, p: Platform) -> bool: ...

    def less(self, a: Platform, b: Platform) -> bool:
        """Whether ``a`` is preferred over ``b`` (a strict order: never both ways)."""
        ...


class _All:
    def match(self, p: Platform) -> bool:
        return True

    def less(self, a: Platform, b: Platform) -> bool:
        return False

    def __repr__(self) -> str:
        return "platforms.ALL"


ALL: Matcher = _All()
"""Every platform, with no preference: for pulls and exports of all platforms."""


def _key(p: Platform) -> tuple[str, str, str]:
    n = normalize(p)
    return n.os, n.architecture, n.variant


class _Ordered:
    """Platforms in order of preference: matching the first beats matching a later one."""

    _name = "ordered"

    def __init__(self, ps: tuple[Platform, ...]) -> None:
        self._keys = [_key(p) for p in ps]

    def _rank(self, p: Platform) -> int:
        k = _key(p)
        for i, want in enumerate(self._keys):
            if want == k:
                return i
        return len(self._keys)

    def match(self, p: Platform) -> bool:
        return self._rank(p) < len(self._keys)

    def less(self, a: Platform, b: Platform) -> bool:
        return self._rank(a) < self._rank(b)

    def __repr__(self) -> str:
        return f"platforms.{self._name}({', '.join('/'.join(x for x in k if x) for k in self._keys)})"


class _Any(_Ordered):
    """Any of the platforms; a match is preferred over a non-match, and that is all."""

    _name = "any_of"

    def less(self, a: Platform, b: Platform) -> bool:
        return self.match(a) and not self.match(b)


_VERSION = re.compile(r"^v?([0-9]+)$")


def _number(variant: str) -> int | None:
    m = _VERSION.match(variant)
    return int(m.group(1)) if m else None


def compatible(p: Platform) -> list[Platform]:
    """``p`` and what a machine of that platform also runs, most preferred first.

    amd64/vN runs amd64/vN-1 … v1, then 386; arm/vN runs arm down to v5;
    arm64 runs arm from its own variant (v8 when unset) down to v5.
    """
    p = normalize(p)
    out = [p]
    n = _number(p.variant)

    def like(arch: str, variant: str = "") -> Platform:
        return Platform(p.os, arch, variant, p.os_version, p.os_features)

    if p.architecture == "amd64":
        if n is not None and n > 1:
            out += [like("amd64", f"v{v}") for v in range(n - 1, 0, -1)]
        out.append(like("386"))
    elif p.architecture == "arm":
        if n is not None and n > 5:
            out += [like("arm", f"v{v}") for v in range(n - 1, 4, -1)]
    elif p.architecture == "arm64":
        out += compatible(like("arm", p.variant or "v8"))
    return out


def ordered(*ps: Platform) -> Matcher:
    """Any of ``ps``, preferring earlier ones."""
    return _Ordered(ps)


def any_of(*ps: Platform) -> Matcher:
    """Any of ``ps``, none preferred over another."""
    return _Any(ps)


def only(p: Platform) -> Matcher:
    """``p`` and the platforms it runs natively, closest first (see :func:`compatible`)."""
    return _Ordered(tuple(compatible(p)))


def only_strict(p: Platform) -> Matcher:
    """Exactly ``p`` (after normalisation): arm/v7 does not take arm/v6, amd64 not 386."""
    return _Ordered((p,))


def default_matcher() -> Matcher:
    """What this host runs: ``only(default())``."""
    return only(default())
