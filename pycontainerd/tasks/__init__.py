"""Tasks: the running side of a container — its init process and the processes exec'd beside it.

These records are shared by the daemon's task service and the client: a
process's state as the Tasks API reports it, and how a process ended.
Exit statuses follow containerd: the process's exit code, or 128 plus the
signal that killed it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["IO", "NO_IO", "Exit", "Process", "Status"]


class Status(enum.IntEnum):
    """Wire values of containerd.v1.types.Status."""

    UNKNOWN = 0
    CREATED = 1
    RUNNING = 2
    STOPPED = 3
    PAUSED = 4
    PAUSING = 5

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class IO:
    """Where a process's standard streams go: FIFO paths the client made (empty: nowhere)."""

    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False


NO_IO = IO()


@dataclass(frozen=True)
class Exit:
    status: int
    exited_at: datetime | None
    pid: int = 0


@dataclass(frozen=True)
class Process:
    container_id: str
    id: str
    """The exec id, or the container id for the task's init process."""
    pid: int
    status: Status
    io: IO = NO_IO
    exit_status: int = 0
    exited_at: datetime | None = None
