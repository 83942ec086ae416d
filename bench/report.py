"""Results: one :class:`Metric` per table row, machine facts, and the JSON and Markdown made from them."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.daemons import CONTAINERD, CONTAINERD_NAME, CTR, PYCONTAINERD_NAME, REPO, version_of

Better = Literal["higher", "lower"]
Summary = Literal["best", "median", "p90", "single"]


@dataclass
class Metric:
    """One benchmark row: samples per daemon, the summary of each, and the target on their ratio.

    The ratio is always ``ours`` over ``theirs`` (pycontainerd's value over
    containerd's, unless the row says otherwise, as the Docker rows do);
    ``better`` says which way is good, so the target reads ``ratio >=
    target`` for a throughput and ``ratio <= target`` for a latency or a
    memory size.
    """

    key: str
    label: str
    unit: str
    better: Better
    summary: Summary
    target: float | None
    decimals: int = 1
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    theirs: str = CONTAINERD_NAME
    ours: str = PYCONTAINERD_NAME

    def add(self, daemon: str, value: float) -> None:
        self.samples.setdefault(daemon, []).append(value)

    def fail(self, daemon: str, error: str) -> None:
        self.errors[daemon] = error

    def note(self, daemon: str, text: str) -> None:
        self.notes.setdefault(daemon, []).append(text)

    def value(self, daemon: str) -> float | None:
        """The headline number: best (by ``better``), median, or the only sample."""
        values = self.samples.get(daemon)
        if not values or daemon in self.errors:
            return None
        if self.summary == "best":
            return max(values) if self.better == "higher" else min(values)
        if self.summary == "median":
            return statistics.median(values)
        if self.summary == "p90":
            return sorted(values)[max(0, math.ceil(0.9 * len(values)) - 1)]
        return values[-1]

    def ratio(self) -> float | None:
        ours, theirs = self.value(self.ours), self.value(self.theirs)
        if ours is None or theirs is None or theirs == 0:
            return None
        return ours / theirs

    def met(self) -> bool | None:
        ratio = self.ratio()
        if ratio is None or self.target is None:
            return None
        return ratio >= self.target if self.better == "higher" else ratio <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return "—"
        return f"{'≥' if self.better == 'higher' else '≤'} {self.target:g}x"

    def cell(self, daemon: str) -> str:
        value = self.value(daemon)
        if value is None:
            return "error" if daemon in self.errors else "n/a"
        mark = " †" if self.notes.get(daemon) else ""
        return f"{value:,.{self.decimals}f} {self.unit}{mark}"

    def ratio_text(self) -> str:
        ratio, met = self.ratio(), self.met()
        if ratio is None:
            return "n/a"
        return f"{ratio:.2f}x" + {True: " ✅", False: " ❌", None: ""}[met]

    def as_json(self) -> dict[str, object]:
        per_daemon = {}
        for name in (self.theirs, self.ours):
            if name in self.samples or name in self.errors or name in self.notes:
                values = self.samples.get(name, [])
                per_daemon[name] = {
                    "value": self.value(name),
                    "samples": values,
                    "median": statistics.median(values) if values else None,
                    "error": self.errors.get(name),
                    "notes": self.notes.get(name, []),
                }
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "better": self.better,
            "summary": self.summary,
            "daemons": per_daemon,
            "ratio": self.ratio(),
            "target": None
            if self.target is None
            else {"op": ">=" if self.better == "higher" else "<=", "ratio": self.target},
            "met": self.met(),
        }


def markdown(metrics: list[Metric], footer: str) -> str:
    """The README table: benchmark, theirs, ours, ratio, target; notes and footer below.

    The columns are named by the first row's ``theirs`` and ``ours``: a table
    holds rows of one pair (containerd and pycontainerd, or dockerd and pydockerd).
    """
    theirs, ours = (metrics[0].theirs, metrics[0].ours) if metrics else (CONTAINERD_NAME, PYCONTAINERD_NAME)
    lines = [
        f"| benchmark | {theirs} | {ours} | ratio | target |",
        "|---|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for m in metrics:
        lines.append(f"| {m.label} | {m.cell(m.theirs)} | {m.cell(m.ours)} | {m.ratio_text()} | {m.target_text()} |")
        for daemon in (m.theirs, m.ours):
            notes.extend(f"{daemon}, {m.label}: {text}" for text in m.notes.get(daemon, []))
            if daemon in m.errors:
                notes.append(f"{daemon}, {m.label}: error: {m.errors[daemon].splitlines()[0][:300]}")
    lines.append("")
    lines.append(footer)
    if notes:
        lines.append("")
        lines.extend(f"- † {text}" for text in dict.fromkeys(notes))
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_kib() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _grpc_version() -> str:
    import grpc

    return str(getattr(grpc, "__version__", "unknown"))


def machine_facts() -> dict[str, object]:
    """What a reader needs to judge the numbers: hardware, kernel, and versions of everything measured."""
    uname = platform.uname()
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "mem_total_kib": _mem_total_kib(),
        "kernel": f"{uname.system} {uname.release} {uname.version}",
        "machine": uname.machine,
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", "unknown")
        if hasattr(platform, "freedesktop_os_release")
        else "unknown",
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "grpcio": _grpc_version(),
        "containerd": version_of(CONTAINERD),
        "ctr": version_of(CTR),
        "pycontainerd_commit": _git("rev-parse", "HEAD"),
        "pycontainerd_tree_dirty": bool(dirty) if dirty is not None else None,
    }


def footer(facts: dict[str, object], started_at: str) -> str:
    mem = facts.get("mem_total_kib")
    mem_text = f"{int(mem) / 1024 / 1024:.0f} GiB" if isinstance(mem, int) else "? GiB"
    return (
        f"_Measured {started_at} by `make bench` on {facts['cpu_model']} ({facts['cpus']} CPUs, {mem_text}), "
        f"{facts['kernel'].split()[1] if isinstance(facts['kernel'], str) else ''}, {facts['containerd']}, "
        f"Python {facts['python']}, grpcio {facts['grpcio']}. Ratio = pycontainerd / containerd._"
    )


def write(out: Path, document: dict[str, object], table: str, stem: str = "latest") -> tuple[Path, Path]:
    """Write ``STEM.json`` and ``STEM.md`` into ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(table)
    return json_path, md_path
