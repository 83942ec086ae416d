"""sd_notify: telling systemd (or anything speaking its protocol) that the daemon is ready or stopping.

The protocol is one datagram of ``KEY=VALUE`` lines sent to the unix socket
named by ``NOTIFY_SOCKET``; a name starting with ``@`` is in the abstract
namespace.  The variable is taken out of the environment when read: the
daemon's children (shims, and runc under them) must not inherit it, since
runc gives a container a socket of its own when it sees one.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

__all__ = ["Notifier", "datagram_address"]

ENV = "NOTIFY_SOCKET"


def datagram_address(name: str) -> str | bytes:
    """The address to send to for a ``NOTIFY_SOCKET`` value; ValueError if it names no unix socket."""
    if name.startswith("@") and len(name) > 1:
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    raise ValueError(f"{ENV}={name[:100]!r} is neither an absolute path nor an abstract name (@...)")


class Notifier:
    """The notify socket this process was started with, if any (read once, at construction)."""

    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.name = env.pop(ENV, "")

    @property
    def enabled(self) -> bool:
        return bool(self.name)

    def notify(self, *states: str) -> bool:
        """Send ``states`` (e.g. "READY=1") as one datagram; False when not enabled, OSError or ValueError if sending fails."""
        if not self.name:
            return False
        address = datagram_address(self.name)
        message = "\n".join(states).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
        return True

    def ready(self) -> bool:
        return self.notify("READY=1", f"MAINPID={os.getpid()}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")
