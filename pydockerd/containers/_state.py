"""A container's lifecycle as Docker reports it: the states, the moves between them, how they read.

created → running ⇄ paused; running or paused → exited (the task ended);
exited → running again (start, restart); any → removing → gone.  A move the
state does not allow raises what dockerd answers: 304 for a start of a
running container or a stop of a stopped one, 409 for a pause of a
container that is not running, and so on.  Pure: times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pycontainerd.errors import ContainerdError

from .._errors import Conflict
from ._jsonlog import format_time

__all__ = ["ZERO_TIME", "NotModified", "State", "human_duration"]

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
STATUSES: Final = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


class NotModified(ContainerdError):
    """Nothing to do (start of a running container, stop of a stopped one): a 304 with no body."""

    http_status = 304


def human_duration(seconds: float) -> str:
    """A duration as Docker words it in ``docker ps`` ("Up 5 seconds", "Exited (0) 2 minutes ago")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if s < 48 * 3600:
        return f"{hours} hours"
    if s < 14 * 86400:
        return f"{s // 86400} days"
    if s < 8 * 7 * 86400:
        return f"{s // (7 * 86400)} weeks"
    if s < 2 * 365 * 86400:
        return f"{s // (30 * 86400)} months"
    return f"{s // (365 * 86400)} years"


@dataclass
class State:
    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_ns: int = 0
    finished_ns: int = 0

    @property
    def running(self) -> bool:
        """Docker's ``Running``: true while paused too."""
        return self.status in ("running", "paused")

    def check_start(self, name: str) -> None:
        if self.status == "paused":
            raise Conflict("cannot start a paused container, try unpause instead")
        if self.running:
            raise NotModified(f"container {name} is already started")
        if self.status == "removing":
            raise Conflict(f"container {name} is marked for removal and cannot be started")

    def started(self, pid: int, now_ns: int) -> None:
        self.status, self.pid, self.started_ns = "running", pid, now_ns
        self.exit_code, self.error, self.oom_killed, self.finished_ns = 0, "", False, 0

    def start_failed(self, error: str, exit_code: int, now_ns: int) -> None:
        """The runtime refused to start it (no such program, a bad user): exited with that error, as dockerd."""
        self.status, self.pid, self.exit_code, self.error, self.finished_ns = "exited", 0, exit_code, error, now_ns

    def exited(self, code: int, now_ns: int) -> None:
        self.status, self.pid, self.exit_code, self.finished_ns = "exited", 0, code, now_ns

    def check_pause(self, id: str) -> None:
        if not self.running:
            raise Conflict(f"Container {id} is not running")
        if self.status == "paused":
            raise Conflict(f"Container {id} is already paused")

    def check_unpause(self, id: str) -> None:
        if self.status != "paused":
            raise Conflict(f"Container {id} is not paused")

    def check_running(self, id: str, what: str) -> None:
        """``what`` needs a running (not paused) container: 409 otherwise."""
        if not self.running:
            raise Conflict(f"{what}: container {id} is not running")
        if self.status == "paused":
            raise Conflict(f"Container {id} is paused, unpause the container before {what}")

    def inspect(self) -> dict[str, Any]:
        return {
            "Status": self.status,
            "Running": self.running,
            "Paused": self.status == "paused",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": format_time(self.started_ns) if self.started_ns else ZERO_TIME,
            "FinishedAt": format_time(self.finished_ns) if self.finished_ns else ZERO_TIME,
        }

    def status_text(self, now_ns: int) -> str:
        """``docker ps``'s STATUS column."""
        if self.status == "removing":
            return "Removal In Progress"
        if self.running:
            up = f"Up {human_duration((now_ns - self.started_ns) / 1e9)}"
            return up + " (Paused)" if self.status == "paused" else up
        if self.status == "exited" and self.finished_ns:
            return f"Exited ({self.exit_code}) {human_duration((now_ns - self.finished_ns) / 1e9)} ago"
        if self.status == "dead":
            return "Dead"
        return "Created"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "error": self.error,
            "oom_killed": self.oom_killed,
            "started_ns": self.started_ns,
            "finished_ns": self.finished_ns,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> State:
        status = str(doc.get("status", "created"))
        return cls(
            status=status if status in STATUSES else "dead",
            pid=int(doc.get("pid", 0)),
            exit_code=int(doc.get("exit_code", 0)),
            error=str(doc.get("error", "")),
            oom_killed=bool(doc.get("oom_killed", False)),
            started_ns=int(doc.get("started_ns", 0)),
            finished_ns=int(doc.get("finished_ns", 0)),
        )
