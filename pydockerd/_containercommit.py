"""``docker commit``: the image config a commit writes, from the container's config, the body and ``changes``.

As dockerd: the request's config (the body) is taken first, the ``changes``
(Dockerfile instructions, parsed by the builder's parser, ``$VAR`` expanded
with the config's environment) are applied to it, then every field it left
empty is filled from the container's config — environment variables and
labels merged by key, exposed ports and volumes joined.  Only the fields of
an image config are kept.  Pure; the snapshot is turned into a layer by
:mod:`pydockerd._commit`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pycontainerd.errors import InvalidArgument
from pycontainerd.oci import replace_or_append_env

from .builder._parser import Instruction, parse_dockerfile
from .builder._shell import Expander

__all__ = ["COMMIT_COMMANDS", "commit_config", "parse_changes"]

COMMIT_COMMANDS: Final = frozenset(
    {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL"}
)
IMAGE_CONFIG_KEYS: Final = (
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal",
    "OnBuild", "Healthcheck", "Shell", "ArgsEscaped",
)  # fmt: skip
_SCALARS: Final = ("User", "Cmd", "Entrypoint", "WorkingDir", "StopSignal", "OnBuild", "Healthcheck", "Shell")


def parse_changes(changes: Sequence[str]) -> list[Instruction]:
    """Each ``changes`` value as one instruction; 400 for a syntax error or a command commit does not take."""
    out: list[Instruction] = []
    for change in changes:
        if not change.strip():
            continue
        df = parse_dockerfile(b"FROM scratch\n" + change.encode())
        for instr in df.instructions[1:]:
            if instr.cmd not in COMMIT_COMMANDS:
                raise InvalidArgument(f"{instr.cmd.lower()} is not a valid change command")
            out.append(instr)
    return out


def _env_map(env: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _apply(config: dict[str, Any], instr: Instruction) -> None:
    x = Expander()
    env = _env_map(config.get("Env") or [])
    cmd = instr.cmd
    if cmd in ("CMD", "ENTRYPOINT"):
        value = list(instr.args) if instr.json_form else ["/bin/sh", "-c", instr.args[0] if instr.args else ""]
        config["Cmd" if cmd == "CMD" else "Entrypoint"] = value
    elif cmd == "ENV":
        current = list(config.get("Env") or [])
        for i in range(0, len(instr.args), 2):
            current = replace_or_append_env(current, [f"{x.word(instr.args[i], env)}={x.word(instr.args[i + 1], env)}"])
        config["Env"] = current
    elif cmd == "LABEL":
        labels = dict(config.get("Labels") or {})
        for i in range(0, len(instr.args), 2):
            labels[x.word(instr.args[i], env)] = x.word(instr.args[i + 1], env)
        config["Labels"] = labels
    elif cmd == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for word in instr.args:
            for port in x.words(word, env):
                number, _, proto = port.partition("/")
                first, _, last = number.partition("-")
                if not first.isdigit() or (last and not last.isdigit()):
                    raise InvalidArgument(f"invalid containerPort: {number}")
                ports[f"{number}/{(proto or 'tcp').lower()}"] = {}
        config["ExposedPorts"] = ports
    elif cmd == "VOLUME":
        volumes = dict(config.get("Volumes") or {})
        paths = (
            [x.word(a, env) for a in instr.args]
            if instr.json_form
            else [w for a in instr.args for w in x.words(a, env)]
        )
        for p in paths:
            if not p.strip():
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes[p] = {}
        config["Volumes"] = volumes
    elif cmd == "WORKDIR":
        path = x.word(instr.args[0], env)
        base = str(config.get("WorkingDir") or "/")
        config["WorkingDir"] = path if path.startswith("/") else base.rstrip("/") + "/" + path
    elif cmd == "USER":
        config["User"] = x.word(instr.args[0], env)
    elif cmd == "STOPSIGNAL":
        config["StopSignal"] = x.word(instr.args[0], env)
    elif cmd == "ONBUILD":
        config["OnBuild"] = [*(config.get("OnBuild") or []), instr.args[0]]


def commit_config(container: Mapping[str, Any], body: Any, changes: Sequence[Instruction]) -> dict[str, Any]:
    """The committed image's config: ``body`` (or nothing) with ``changes``, then filled from ``container``."""
    if body is not None and not isinstance(body, dict):
        raise InvalidArgument("the commit body must be a container config object")
    user = copy.deepcopy({k: v for k, v in (body or {}).items() if k in IMAGE_CONFIG_KEYS})
    base_env = user.get("Env") if user.get("Env") else container.get("Env")
    if changes:
        # ENV and $VAR see the container's environment, as they would in the container
        user.setdefault("Env", list(base_env or []))
    for instr in changes:
        _apply(user, instr)
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in container.items() if k in IMAGE_CONFIG_KEYS}
    for key in _SCALARS:
        if user.get(key):
            out[key] = user[key]
    env = list(user.get("Env") or [])
    for item in container.get("Env") or []:
        if item.partition("=")[0] not in _env_map(env):
            env.append(item)
    if env:
        out["Env"] = env
    labels = {**(container.get("Labels") or {}), **(user.get("Labels") or {})}
    if labels:
        out["Labels"] = labels
    for key in ("ExposedPorts", "Volumes"):
        joined = {**(container.get(key) or {}), **(user.get(key) or {})}
        if joined:
            out[key] = joined
    return out
