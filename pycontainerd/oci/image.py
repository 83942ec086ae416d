"""What an image's config contributes to a container: process defaults and the stop signal.

``config`` here is the ``config`` object of an OCI image config (or a Docker
one): ``Env``, ``Entrypoint``, ``Cmd``, ``WorkingDir``, ``User``,
``StopSignal``.  It comes from a registry, so every field is type-checked and
a wrong one is InvalidArgument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..errors import InvalidArgument, quote
from . import _sections as sec
from .opts import replace_or_append_env
from .spec import DEFAULT_PATH_ENV, Spec, SpecOpt
from .user import Rootfs, with_additional_gids, with_user

__all__ = [
    "DEFAULT_STOP_SIGNAL",
    "STOP_SIGNAL_LABEL",
    "image_stop_signal",
    "parse_signal",
    "with_image_config",
]

STOP_SIGNAL_LABEL: Final = "io.containerd.image.config.stop-signal"
"""The container label containerd keeps the image's stop signal in."""

DEFAULT_STOP_SIGNAL: Final = "SIGTERM"

_SIGRTMIN: Final = 34  # as glibc reserves the first two real-time signals
_SIGRTMAX: Final = 64
_SIGNALS: Final = {
    "ABRT": 6,
    "ALRM": 14,
    "BUS": 7,
    "CHLD": 17,
    "CLD": 17,
    "CONT": 18,
    "FPE": 8,
    "HUP": 1,
    "ILL": 4,
    "INT": 2,
    "IO": 29,
    "IOT": 6,
    "KILL": 9,
    "PIPE": 13,
    "POLL": 29,
    "PROF": 27,
    "PWR": 30,
    "QUIT": 3,
    "SEGV": 11,
    "STKFLT": 16,
    "STOP": 19,
    "SYS": 31,
    "TERM": 15,
    "TRAP": 5,
    "TSTP": 20,
    "TTIN": 21,
    "TTOU": 22,
    "URG": 23,
    "USR1": 10,
    "USR2": 12,
    "VTALRM": 26,
    "WINCH": 28,
    "XCPU": 24,
    "XFSZ": 25,
    "RTMIN": _SIGRTMIN,
    "RTMAX": _SIGRTMAX,
    **{f"RTMIN+{i}": _SIGRTMIN + i for i in range(1, 16)},
    **{f"RTMAX-{i}": _SIGRTMAX - i for i in range(1, 15)},
}
"""Linux's signal names (x86 and arm numbering) without the SIG prefix, as containerd (moby/sys/signal) knows them."""


def parse_signal(text: str) -> int:
    """A signal number from ``SIGTERM``, ``term``, ``TERM`` or ``15``; InvalidArgument for anything else."""
    if text.isascii() and text.isdigit():
        number = int(text)
        if 1 <= number <= _SIGRTMAX:
            return number
    else:
        name = text.upper()
        number_or_none = _SIGNALS.get(name.removeprefix("SIG"))
        if number_or_none is not None:
            return number_or_none
    raise InvalidArgument(f"invalid signal {quote(text)}")


def _str(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"image config {key} must be a string, got {type(value).__name__}")
    return value


def _strs(config: Mapping[str, Any], key: str) -> list[str]:
    value = config.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"image config {key} must be a list of strings")
    return list(value)


def image_stop_signal(config: Mapping[str, Any] | None, default: str = DEFAULT_STOP_SIGNAL) -> int:
    """The signal that stops a container of this image: its ``StopSignal``, else ``default``, as a number."""
    parse_signal(default)  # a bad default is an error even when the image has its own
    raw = _str(config or {}, "StopSignal") or default
    return parse_signal(raw)


def with_image_config(
    config: Mapping[str, Any] | None,
    *,
    args: Sequence[str] | None = None,
    rootfs: Rootfs | None = None,
) -> SpecOpt:
    """The process defaults of an image, as containerd's ``WithImageConfigArgs`` for Linux.

    * env: the image's ``Env`` (containerd's default PATH if it has none),
      with the variables already in the spec applied over it;
    * args: ``Entrypoint`` followed by ``args`` when given, else by ``Cmd``;
    * cwd: ``WorkingDir``, or ``/``;
    * user: ``User`` resolved in the rootfs (:func:`~pycontainerd.oci.user.with_user`)
      and its supplementary groups; with no ``User``, root's supplementary groups.

    The user lookups read the rootfs (``rootfs=``, else an absolute root path
    in the spec), so an image config is applied once the rootfs exists.
    """
    c: Mapping[str, Any] = config or {}
    if not isinstance(c, Mapping):
        raise InvalidArgument("image config must be an object")
    env = _strs(c, "Env")
    entrypoint, cmd = _strs(c, "Entrypoint"), _strs(c, "Cmd")
    cwd, user = _str(c, "WorkingDir") or "/", _str(c, "User")
    if args is not None:
        if isinstance(args, str) or not all(isinstance(a, str) for a in args):
            raise InvalidArgument("process args must be strings")
        if args:
            cmd = list(args)
    argv = entrypoint + cmd
    user_opt = with_user(user, rootfs=rootfs) if user else None

    def apply(spec: Spec) -> None:
        proc = sec.process(spec)
        current = sec.seq(proc, "env", "process")
        if not all(isinstance(e, str) for e in current):
            raise InvalidArgument("spec process.env must be a list of strings")
        proc["env"] = replace_or_append_env(env or [DEFAULT_PATH_ENV], current)
        sec.drop(proc, "env")
        proc["args"] = list(argv)
        sec.drop(proc, "args")
        proc["cwd"] = cwd
        if user_opt is not None:
            user_opt(spec)
            with_additional_gids(str(sec.user(spec)["uid"]), rootfs=rootfs)(spec)
        else:
            with_additional_gids("root", rootfs=rootfs)(spec)

    return apply
