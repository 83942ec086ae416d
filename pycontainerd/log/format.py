"""Log lines as containerd writes them: logrus-like text or one JSON object per line.

Both formats carry the same things — time, level, message, then fields —
and put each record on exactly one line, whatever the message or traceback
holds, so a log can be split on newlines and grepped by field.  Fields are
what callers pass with ``extra=`` plus the gRPC call the line was logged
in (``request_id``, ``method``, ``namespace``), which :class:`ContextFilter`
stamps on each record.  The formatters only turn a record into a string.
"""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from . import current

__all__ = [
    "CONTEXT_FIELDS",
    "FORMATS",
    "ContextFilter",
    "JSONFormatter",
    "TextFormatter",
    "fields",
    "formatter",
    "level_name",
    "timestamp",
]

FORMATS = ("text", "json")

#: Fields naming the gRPC call a line was logged in, first after the message.
CONTEXT_FIELDS = ("request_id", "method", "namespace")

_RESERVED = ("time", "level", "msg")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
# logrus leaves a value bare when every character is one of these.
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")


class ContextFilter(logging.Filter):
    """Stamps the gRPC call being served (:data:`pycontainerd.log.current`) on each record.

    A handler filter runs in the thread and context of the logging call, so
    it sees the call's context even on the core thread pool; a field the
    caller passed itself is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = current.get()
        if request is not None:
            d = record.__dict__
            d.setdefault("request_id", request.id)
            d.setdefault("method", request.method)
            d.setdefault("namespace", request.namespace)
        return True


def level_name(levelno: int) -> str:
    """logrus's name for a level ("warning", "fatal"); levels between named ones round down."""
    for number in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= number:
            return _LEVEL_NAMES[number]
    return "debug"


def timestamp(created: float) -> str:
    """RFC 3339 in UTC with nine fixed fractional digits, as containerd's log times are."""
    seconds = int(created)
    micros = round((created - seconds) * 1e6)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}000Z"


def fields(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    """A record's fields in order: the call's context, then the caller's ``extra=`` in the order given."""
    d = record.__dict__
    for key in CONTEXT_FIELDS:
        if key in d:
            yield key, d[key]
    for key, value in d.items():
        if key not in _STANDARD and key not in CONTEXT_FIELDS and not key.startswith("_"):
            yield key, value


def _plain(value: Any) -> str | int | float | bool | None:
    """A field value as JSON can hold it: anything else by its ``str``, NaN and infinities too."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _identity(text: str) -> str:
    return text


class _Formatter(logging.Formatter):
    """What both formats share: fields, and the exception split into its message and its traceback."""

    def __init__(self, clean: Callable[[str], str] | None = None) -> None:
        """``clean`` is applied to every field value and traceback (the message has its own filter)."""
        super().__init__()
        self._clean = clean or _identity

    def items(self, record: logging.LogRecord) -> list[tuple[str, Any]]:
        """``(key, value)`` pairs after time, level and msg; clashing keys are renamed ``fields.<key>``."""
        clean = self._clean
        out: list[tuple[str, Any]] = []
        for key, value in fields(record):
            plain = _plain(value)
            out.append(
                (f"fields.{key}" if key in _RESERVED else key, clean(plain) if isinstance(plain, str) else plain)
            )
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out.append(("error", clean("".join(traceback.format_exception_only(exc)).strip())))
            if record.exc_text is None:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out.append(("traceback", clean(record.exc_text)))
        if record.stack_info:
            out.append(("stack", clean(self.formatStack(record.stack_info))))
        return out


class TextFormatter(_Formatter):
    """``time="..." level=info msg="..." key=value``, quoting as logrus does."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f'time="{timestamp(record.created)}"',
            f"level={level_name(record.levelno)}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in self.items(record):
            parts.append(f"{key}={_text_value(value)}")
        return " ".join(parts)


class JSONFormatter(_Formatter):
    """One JSON object per line: ``time``, ``level``, ``msg``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": level_name(record.levelno),
            "msg": record.getMessage(),
        }
        for key, value in self.items(record):
            doc[key] = value
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)


def formatter(name: str, clean: Callable[[str], str] | None = None) -> _Formatter:
    """The formatter called ``name`` (one of :data:`FORMATS`); ValueError otherwise."""
    if name == "text":
        return TextFormatter(clean)
    if name == "json":
        return JSONFormatter(clean)
    raise ValueError(f"unknown log format {name!r} (one of {', '.join(FORMATS)})")


def _quote(text: str) -> str:
    """``text`` bare when logrus would leave it so, else double-quoted with every control character escaped."""
    if text and all(c in _BARE for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return _quote(value) if isinstance(value, str) else str(value)
