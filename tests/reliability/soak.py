"""How hard the reliability suites push, and the record of what they tried.

``make test`` runs each suite briefly; ``make soak`` sets
``PYCONTAINERD_SOAK=1`` and the suites run long.  Every suite calls
:func:`record` once per thing it tried, so ``make soak`` can print one table
(``python -m tests.reliability.report``) of what was tried and what held.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass

SOAK = os.environ.get("PYCONTAINERD_SOAK") == "1"
REPORT = os.environ.get("PYCONTAINERD_SOAK_REPORT", "")


def scale(short: int, long: int) -> int:
    """``long`` under ``make soak``, ``short`` otherwise."""
    return long if SOAK else short


@dataclass(frozen=True)
class Row:
    area: str  # "fuzzing", "crash consistency", "faults", "load", "access"
    tried: str  # what was done, e.g. "SIGKILL of the daemon during pull"
    count: int  # how many times (inputs, points, calls, containers)
    held: str  # what was checked afterwards, e.g. "pyctr check clean, pull repeated"
    problems: int = 0  # failures, leaks or escapes found (the test fails when this is not 0)


def record(area: str, tried: str, count: int, held: str, problems: int = 0) -> None:
    """Append one row to the soak report, when one is being written."""
    if not REPORT:
        return
    line = json.dumps(asdict(Row(area, tried, count, held, problems))) + "\n"
    with open(REPORT, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(line)
