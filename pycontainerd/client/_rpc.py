"""The connection every client-side store shares, and the one gRPC error translation.

A :class:`Connection` is an immutable view of a channel: which namespace and
lease the calls carry and how long a call may take.  Stores hold one and call
through it, so every request sends the same metadata and every failure a
server reports becomes a :mod:`pycontainerd.errors` class in
:func:`translated`, and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import grpc

from .. import errors
from ..leases import GRPC_HEADER as LEASE_HEADER
from ..namespaces import GRPC_HEADER as NAMESPACE_HEADER

__all__ = ["MAX_MESSAGE", "Connection", "dial", "target", "translated"]

Resp = TypeVar("Resp")
Stub = TypeVar("Stub")

# containerd's default limit both ways; streamed data is chunked far below it.
MAX_MESSAGE = 16 << 20


def target(address: str) -> str:
    """The gRPC target of a containerd address: a socket path gets the ``unix:`` scheme."""
    if "://" in address or address.startswith("unix:"):
        return address
    if os.path.isabs(address):
        return f"unix://{address}"
    return f"unix:{address}"


def dial(address: str) -> grpc.Channel:
    """A lazily connecting channel with containerd's message limits."""
    return grpc.insecure_channel(
        target(address),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ],
    )


_CONNECT = re.compile(r"failed to connect to all addresses.*?addr: (?P<addr>\S+) error: (?P<why>[^)\n]+)", re.S)


def _plain(details: str | None) -> str | None:
    """grpc's account of a refused connection, cut to what a person needs."""
    m = _CONNECT.search(details or "")
    if m is None:
        return details
    why = m["why"].strip()
    hint = "does this user have the socket's group?" if "denied" in why.lower() else "is the daemon running?"
    return f"cannot connect to {m['addr']}: {why} ({hint})"


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn a gRPC failure into our error class: the single place this happens."""
    try:
        yield
    except grpc.RpcError as e:
        code = e.code() if callable(getattr(e, "code", None)) else None
        details = e.details() if callable(getattr(e, "details", None)) else None
        raise errors.from_grpc(code, _plain(details) or str(code or "rpc failed")) from None
    except ValueError as e:
        # grpc's own refusals, such as a call on a channel already closed.
        if isinstance(e, errors.ContainerdError):
            raise
        raise errors.FailedPrecondition(str(e)) from None


@dataclass(frozen=True)
class Connection:
    """A channel plus the namespace, lease and deadline its calls carry."""

    channel: grpc.Channel
    namespace: str
    timeout: float | None = None
    lease: str | None = None
    # Shared by every Connection derived from this one, as the channel is.
    closed: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def __post_init__(self) -> None:
        # grpc refuses such header values only when sending, with a C-core log line besides.
        for key, value in self.metadata:
            if not all(" " <= ch <= "~" for ch in value):
                raise errors.InvalidArgument(f"{key} {value!r}: only printable ASCII can be sent")

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        md = [(NAMESPACE_HEADER, self.namespace)]
        if self.lease:
            md.append((LEASE_HEADER, self.lease))
        return tuple(md)

    def stub(self, factory: Callable[[grpc.Channel], Stub]) -> Stub:
        """A service stub on the channel; refused once closed (grpc crashes making one then)."""
        if self.closed.is_set():
            raise errors.FailedPrecondition("the client is closed")
        return factory(self.channel)

    def close(self) -> None:
        self.closed.set()
        self.channel.close()

    def with_namespace(self, namespace: str) -> Connection:
        return replace(self, namespace=namespace)

    def with_lease(self, lease: str | None) -> Connection:
        return replace(self, lease=lease)

    def unary(self, method: Callable[..., Resp], request: Any, *, endless: bool = False) -> Resp:
        """One request, one reply, bounded by the deadline unless ``endless`` (a Wait for an exit)."""
        with translated():
            return method(request, metadata=self.metadata, timeout=None if endless else self.timeout)

    def stream(self, method: Callable[..., Any], request: Any, *, endless: bool = False) -> Iterator[Any]:
        """The replies of a server stream; the call is cancelled if the caller stops early.

        An ``endless`` stream (an event subscription) has no deadline.
        """
        with translated():
            call = method(request, metadata=self.metadata, timeout=None if endless else self.timeout)
            try:
                yield from call
            finally:
                call.cancel()
