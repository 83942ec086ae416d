"""Platforms: parsing and normalising ``os/arch/variant``, and matching them against images.

An index lists one manifest per platform; a pull keeps the ones a matcher
accepts, best first (see :func:`only` for which platforms a host runs).
"""

from __future__ import annotations

from ._match import ALL, Matcher, any_of, default_matcher, only, ordered
from ._platform import Platform, default, format, from_oci, normalize, parse, to_oci

__all__ = [
    "ALL",
    "Matcher",
    "Platform",
    "any_of",
    "default",
    "default_matcher",
    "format",
    "from_oci",
    "normalize",
    "only",
    "ordered",
    "parse",
    "to_oci",
]
