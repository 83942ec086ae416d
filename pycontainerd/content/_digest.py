"""Digest strings: parsing, validation and incremental hashing."""

from __future__ import annotations

import hashlib
import re

from ..errors import InvalidArgument, quote

_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is ``algorithm:hex`` for a supported algorithm.

    Digests name files on disk, so anything else is refused before use.
    """
    algo, sep, hexpart = digest.partition(":")
    if not sep or algo not in _ALGORITHMS:
        raise InvalidArgument(f"invalid digest {quote(digest)}: unsupported or missing algorithm")
    if len(hexpart) != _ALGORITHMS[algo] or not _HEX.match(hexpart):
        raise InvalidArgument(f"invalid digest {quote(digest)}: malformed {algo} hex")
    return digest


class Digester:
    """A running hash that names its algorithm the way digests do."""

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in _ALGORITHMS:
            raise InvalidArgument(f"unsupported digest algorithm {quote(algorithm)}")
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> str:
        return f"{self.algorithm}:{self._h.hexdigest()}"

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> str:
        d = cls(algorithm)
        d.update(data)
        return d.digest()
