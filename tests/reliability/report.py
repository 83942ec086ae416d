"""Print the table of a soak run: ``python -m tests.reliability.report FILE``."""

from __future__ import annotations

import json
import sys
from collections import defaultdict

from .soak import Row


def table(rows: list[Row]) -> str:
    """Rows with the same area and attempt are summed, in the order first seen."""
    merged: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        m = merged[(r.area, r.tried, r.held)]
        m[0] += r.count
        m[1] += r.problems
    out = ["| area | what was tried | times | what held | problems found |", "|---|---|---:|---|---:|"]
    for (area, tried, held), (count, problems) in merged.items():
        out.append(f"| {area} | {tried} | {count:,} | {held} | {problems} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.reliability.report FILE", file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8") as f:
            rows = [Row(**json.loads(line)) for line in f if line.strip()]
    except OSError as e:
        print(f"report: {e.strerror}: {argv[0]}", file=sys.stderr)
        return 1
    print(table(rows))
    return 1 if any(r.problems for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
