"""Platforms: parsing and normalising ``os/arch/variant``, and matching them against images.

An index lists one manifest per platform; a pull keeps the ones a matcher
accepts, best first (see :func:`only` for which platforms a host runs).
The rules are containerd's (``platforms`` package of containerd 1.6).
"""

from __future__ import annotations

from ._host import default
from ._match import ALL, Matcher, any_of, compatible, default_matcher, only, only_strict, ordered
from ._parse import parse
from ._platform import Platform, format, from_oci, normalize, to_oci

__all__ = [
    "ALL",
    "Matcher",
    "Platform",
    "any_of",
    "compatible",
    "default",
    "default_matcher",
    "format",
    "from_oci",
    "normalize",
    "only",
    "only_strict",
    "ordered",
    "parse",
    "to_oci",
]
