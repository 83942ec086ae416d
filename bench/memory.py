"""A daemon's memory as the kernel accounts it: RSS, PSS and peak RSS over its process tree."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class MemorySample:
    """Memory of one process and all its descendants, in KiB.

    ``rss_kib`` sums ``VmRSS`` (shared pages count once per process),
    ``pss_kib`` sums ``Pss`` from ``smaps_rollup`` (shared pages split among
    their users), ``peak_rss_kib`` sums ``VmHWM``, each process's high-water
    mark since it started.
    """

    rss_kib: int
    pss_kib: int
    peak_rss_kib: int
    pids: tuple[int, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "rss_kib": self.rss_kib,
            "pss_kib": self.pss_kib,
            "peak_rss_kib": self.peak_rss_kib,
            "pids": list(self.pids),
        }


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1])


def process_tree(root: int) -> list[int]:
    """``root`` followed by every live descendant (found through ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def _kib_fields(path: str, names: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in names:
                    found[key] = int(rest.split()[0])
    except OSError:
        pass
    return found


def sample(root: int) -> MemorySample:
    """Read the memory of ``root`` and its descendants right now."""
    rss = pss = peak = 0
    pids = process_tree(root)
    for pid in pids:
        status = _kib_fields(f"/proc/{pid}/status", ("VmRSS", "VmHWM"))
        rss += status.get("VmRSS", 0)
        peak += status.get("VmHWM", 0)
        pss += _kib_fields(f"/proc/{pid}/smaps_rollup", ("Pss",)).get("Pss", 0)
    return MemorySample(rss_kib=rss, pss_kib=pss, peak_rss_kib=peak, pids=tuple(pids))
