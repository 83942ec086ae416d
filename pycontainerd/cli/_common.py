"""What every pyctr command shares: argument parsing that fails in one line, and output.

Output is a rich table when stdout is a terminal and plain aligned columns
otherwise, so scripts can ``awk`` it; sizes and ages read the way ctr prints
them.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from ..client import Client
from ..errors import ContainerdError, InvalidArgument

__all__ = [
    "BarRows",
    "Command",
    "Parser",
    "age",
    "duration_arg",
    "for_each",
    "format_labels",
    "group",
    "human_bytes",
    "human_size",
    "parse_duration",
    "parse_labels",
    "print_table",
    "progress_display",
    "report",
    "subcommand",
    "transfer_bars",
]

Command = Callable[[Client, argparse.Namespace], int | None]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, as every pyctr error is."""

    def error(self, message: str) -> NoReturn:
        report(f"{self.prog.removeprefix('pyctr ')}: {message}" if " " in self.prog else message)
        sys.exit(2)


def report(message: str) -> None:
    """Write one error line; newlines inside the message are folded so it stays one line."""
    line = " ".join(str(message).split())
    try:
        print(f"pyctr: {line}", file=sys.stderr, flush=True)
    except OSError:
        pass


def for_each(items: Sequence[str], action: Callable[[str, bool], object]) -> int:
    """Run ``action(item, is_last)`` on every item, printing those done.

    A failure is one line naming the item and the rest still run, as ctr's
    removals do; the exit status says whether all succeeded.
    """
    rc = 0
    for i, item in enumerate(items):
        try:
            action(item, i == len(items) - 1)
        except ContainerdError as e:
            report(f"{item}: {e}")
            rc = 1
        else:
            print(item, flush=True)
    return rc


def subcommand(sub: Any, name: str, func: Command, help: str, aliases: Sequence[str] = ()) -> Parser:
    """Add a command whose ``func`` runs with a connected client."""
    p: Parser = sub.add_parser(name, help=help, description=help, aliases=list(aliases))
    p.set_defaults(func=func)
    return p


def group(
    sub: Any, name: str, help: str, aliases: Sequence[str] = (), options: Callable[[Parser], object] | None = None
) -> Any:
    """A command with subcommands of its own (``pyctr content ...``); ``options`` adds the group's own flags."""
    p: Parser = sub.add_parser(name, help=help, description=help, aliases=list(aliases))
    if options is not None:
        options(p)
    inner = p.add_subparsers(title="commands", metavar="COMMAND", dest=f"{name}_command")
    inner.required = True
    return inner


# Arguments


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``key=value`` pairs as ctr reads them: a bare ``key`` means ``true``, ``key=`` means empty."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {item!r}: the key is empty")
        labels[key] = value if sep else "true"
    return labels


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """A Go duration (``24h``, ``1h30m``, ``500ms``, ``0``) or a plain number of seconds."""
    s = text.strip()
    try:
        return timedelta(seconds=float(s))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise InvalidArgument(f"invalid duration {text!r} (examples: 90s, 1h30m, 24h)")
    return timedelta(seconds=total)


def duration_arg(text: str) -> timedelta:
    """argparse ``type=``: bad values become argparse's own one-line error."""
    try:
        return parse_duration(text)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# Values


def _scaled(size: float, base: float, units: Sequence[str]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(size: int) -> str:
    """Decimal units, four significant digits (``2.746MB``): ctr's content sizes."""
    value, unit = _scaled(float(size), 1000.0, ("B", "kB", "MB", "GB", "TB", "PB", "EB"))
    return f"{value:.4g}{unit}"


def human_bytes(size: int) -> str:
    """Binary units, one decimal (``12.3 MiB``): ctr's image sizes."""
    value, unit = _scaled(float(size), 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"))
    return f"{value:.1f} {unit}"


def human_duration(d: timedelta) -> str:
    """An approximate age in words, as docker's and ctr's listings show it."""
    seconds = int(d.total_seconds())
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    minutes = seconds // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = int(d.total_seconds() / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(d.total_seconds() / 3600) // 24 // 365} years"


def age(when: datetime, now: datetime | None = None) -> str:
    return human_duration((now or datetime.now(UTC)) - when)


def gc_root_label() -> dict[str, str]:
    """What a user creates by hand stays until removed by hand, as with ctr: a ``containerd.io/gc.root`` label."""
    return {"containerd.io/gc.root": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def format_labels(labels: Mapping[str, str], empty: str = "-") -> str:
    """Sorted ``k=v`` pairs joined by commas."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or empty


# Tables


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A rich table on a terminal; plain columns aligned with spaces otherwise."""
    cells = [[str(c) for c in row] for row in rows]
    if sys.stdout.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        for row in cells:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    out = sys.stdout
    for row in [list(headers), *cells]:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        out.write("   ".join([*padded, row[-1]]).rstrip() + "\n")


@contextlib.contextmanager
def transfer_bars(state_width: int = 0, transient: bool = False) -> Iterator[Any]:
    """rich progress rows on stderr — name, state (when ``state_width``), bar, bytes, speed — for pulls, pushes, ingests."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns: list[Any] = [TextColumn("{task.description}")]
    if state_width:
        columns.append(TextColumn(f"{{task.fields[state]:<{state_width}}}"))
    columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=transient) as bars:
        yield bars


class BarRows:
    """One progress row per subject, added the first time it is seen; callable from several threads."""

    def __init__(self, bars: Any) -> None:
        self._bars = bars
        self._rows: dict[str, Any] = {}
        self._lock = threading.Lock()

    def update(self, key: str, label: str, *, state: str, completed: int, total: int | None) -> None:
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = self._bars.add_task(label, total=total, state=state)
            self._bars.update(row, completed=completed, total=total, state=state)

    def note(self, text: str) -> None:
        """A line above the rows."""
        with self._lock:
            self._bars.console.print(text)


F = TypeVar("F")


@contextlib.contextmanager
def progress_display(
    quiet: bool, lines: Callable[[], F], rows: Callable[[BarRows], F], state_width: int
) -> Iterator[F | None]:
    """How a command shows progress: nothing with -q, ``lines()`` when stderr is no terminal, rich rows on one."""
    if quiet:
        yield None
    elif not sys.stderr.isatty():
        yield lines()
    else:
        with transfer_bars(state_width) as bars:
            yield rows(BarRows(bars))
