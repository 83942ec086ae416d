"""The daemon's log level by containerd's names, changeable while it runs.

The level is the root logger's; the loggers of grpc and asyncio never go
below info, because their debug lines are about event-loop plumbing rather
than the daemon.  The name last set is kept, so "trace" reads back as
"trace" although Python logs it as debug.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["LEVELS", "NOISY", "level", "set_level"]

LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}

#: Loggers kept at info or above whatever the daemon's level.
NOISY = ("grpc", "asyncio")

_lock = threading.Lock()
_current = ["info"]  # the name last set


def set_level(name: str) -> str:
    """Make ``name`` the level of every logger; returns it normalised, ValueError if it is no level."""
    key = name.strip().lower()
    number = LEVELS.get(key)
    if number is None:
        raise ValueError(
            f"invalid log level {name.strip()[:40]!r} (one of trace, debug, info, warn, error, fatal, panic)"
        )
    with _lock:
        logging.getLogger().setLevel(number)
        for noisy in NOISY:
            logging.getLogger(noisy).setLevel(max(logging.INFO, number))
        _current[0] = key
    return key


def level() -> str:
    """The level last set, by the name it was set with."""
    with _lock:
        return _current[0]
