"""One process of the container — its init or an exec'd one — and the shim's failure type.

States follow containerd's ``pkg/process``: created → running ⇄ paused →
stopped → deleted.  An exec'd process reports ``paused`` while the whole
container is paused.
"""

from __future__ import annotations

import os

from ._stdio import Console, Stdio

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Failure", "Process"]

CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"
DELETED = "deleted"


class Failure(Exception):
    """An operation refused, with the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def exit_status(wait_status: int) -> int:
    """An exit code, or 128 + the signal that killed the process, as containerd reports it."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


class Process:
    def __init__(self, container_id: str, exec_id: str, io: dict[str, Any], spec: dict[str, Any] | None = None) -> None:
        self.container_id = container_id
        self.exec_id = exec_id
        self.id = exec_id or container_id
        self.io = io
        self.spec = spec
        self.pid = 0
        self.status = CREATED
        self.exit_status = 0
        self.exited_at = 0
        self.stdio: Stdio | None = None
        self.console: Console | None = None
        self.waiters: list[tuple[Any, int]] = []

    @property
    def alive(self) -> bool:
        return self.status in (RUNNING, PAUSED)

    def state(self, container_status: str) -> dict[str, Any]:
        status = self.status
        if self.exec_id and status == RUNNING and container_status == PAUSED:
            status = PAUSED
        return {
            "id": self.id,
            "exec_id": self.exec_id,
            "pid": self.pid,
            "status": status,
            "stdin": self.io.get("stdin", ""),
            "stdout": self.io.get("stdout", ""),
            "stderr": self.io.get("stderr", ""),
            "terminal": bool(self.io.get("terminal", False)),
            "exit_status": self.exit_status,
            "exited_at": self.exited_at,
        }

    def exit(self) -> dict[str, Any]:
        return {"pid": self.pid, "exit_status": self.exit_status, "exited_at": self.exited_at}

    def close_io(self) -> None:
        """Release the process's stdio once it exited (the terminal copy finishes on its own)."""
        if self.stdio is not None:
            self.stdio.runtime_done()
            self.stdio.close_stdin()
            if self.console is None:
                self.stdio.close(keep_relay=True)  # what the process wrote last is still on its way

    def release(self) -> None:
        """Everything, at delete."""
        if self.console is not None:
            self.console.close()
            self.console = None
        if self.stdio is not None:
            self.stdio.close()
            self.stdio = None
