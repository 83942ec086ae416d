"""A daemon's memory as the kernel accounts it: RSS, PSS and peak RSS over its process tree."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class MemorySample:
    """Memory of one process and all its descendants, in KiB.

    ``rss_kib`` sums ``VmRSS`` (shared pages count once per process),
    ``pss_kib`` sums ``Pss`` from ``smaps_rollup`` (shared pages split among
    their users), ``anon_kib`` sums ``Anonymous`` (heap, stacks: memory
    backed by no file), ``peak_rss_kib`` sums ``VmHWM``, each
    process's high-water mark since it started.

    PSS depends on what else runs: every other containerd (or Python) on the
    machine takes a share of the binary's (or libpython's) pages, and so
    would a private/shared split.  RSS and anonymous memory do not.
    """

    rss_kib: int
    pss_kib: int
    anon_kib: int
    peak_rss_kib: int
    pids: tuple[int, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "rss_kib": self.rss_kib,
            "pss_kib": self.pss_kib,
            "anon_kib": self.anon_kib,
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


def same_executable(pid: int) -> int:
    """How many other live processes run the same executable as ``pid`` (and so share its pages)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return 0
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                count += os.readlink(f"/proc/{entry}/exe") == exe
            except OSError:
                continue
    return count


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
    rss = pss = anon = peak = 0
    pids = process_tree(root)
    for pid in pids:
        status = _kib_fields(f"/proc/{pid}/status", ("VmRSS", "VmHWM"))
        rss += status.get("VmRSS", 0)
        peak += status.get("VmHWM", 0)
        rollup = _kib_fields(f"/proc/{pid}/smaps_rollup", ("Pss", "Anonymous"))
        pss += rollup.get("Pss", 0)
        anon += rollup.get("Anonymous", 0)
    return MemorySample(rss_kib=rss, pss_kib=pss, anon_kib=anon, peak_rss_kib=peak, pids=tuple(pids))
