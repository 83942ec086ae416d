"""Namespaces: the tenants of one daemon.

Every image, lease, content record (and later container and snapshot) lives
in exactly one namespace; a gRPC call names its namespace in the
``containerd-namespace`` metadata key.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..errors import FailedPrecondition, InvalidArgument, quote
from ..identifiers import validate

__all__ = ["DEFAULT", "GRPC_HEADER", "GRPC_HEADER_TTRPC", "Store", "from_metadata", "validate_namespace"]

DEFAULT = "default"
GRPC_HEADER = "containerd-namespace"
GRPC_HEADER_TTRPC = "containerd-namespace-ttrpc"
_RESERVED = frozenset({"version"})


@functools.lru_cache(maxsize=1024)
def validate_namespace(name: str) -> str:
    """A namespace name usable for storage; raises InvalidArgument."""
    if name in _RESERVED:
        raise InvalidArgument(f"namespace {quote(name)} is reserved")
    return validate("namespace", name)


def from_metadata(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The namespace a call carries; FailedPrecondition if there is none."""
    for key, value in metadata or ():
        if key == GRPC_HEADER:
            ns = value.decode() if isinstance(value, bytes) else value
            try:
                return validate_namespace(ns)
            except InvalidArgument as e:
                raise InvalidArgument(f"namespace validation: {e}") from None
    raise FailedPrecondition("namespace is required: the containerd-namespace header is missing")


class Store(Protocol):
    """The namespace records themselves."""

    def create(self, name: str, labels: Mapping[str, str]) -> None:
        """Raises AlreadyExists, InvalidArgument."""
        ...

    def labels(self, name: str) -> dict[str, str]:
        """Raises NotFound."""
        ...

    def set_label(self, name: str, key: str, value: str) -> None:
        """An empty value removes the label.  Raises NotFound."""
        ...

    def list(self) -> builtins.list[str]: ...

    def delete(self, name: str) -> None:
        """Raises NotFound, and FailedPrecondition while the namespace holds objects."""
        ...
