"""``pyctr version``, ``pyctr info`` and ``pyctr plugins``: what the daemon is and what it loaded."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import grpc

from .. import __version__
from ..client import Client, PluginInfo
from ._common import group, print_table, subcommand


def _version(client: Client, args: argparse.Namespace) -> int:
    out = sys.stdout
    out.write(f"Client:\n  Version:  {__version__} (pycontainerd)\n  Python:   {platform.python_version()}\n\n")
    out.flush()
    version, revision = client.version()
    uuid = client.server()
    out.write(f"Server:\n  Version:  {version}\n  Revision: {revision}\n  UUID:     {uuid}\n")
    return 0


_CONTENT = "io.containerd.content.v1"
_SNAPSHOTTER = "io.containerd.snapshotter.v1"
_RUNTIMES = ("io.containerd.runtime.v1", "io.containerd.runtime.v2")
_GC = "io.containerd.gc.v1"


def _parent_of_plugin_dir(path: str, p: PluginInfo) -> str | None:
    """The daemon's root (or state) when ``path`` is the plugin's own ``<dir>/<type>.<id>``, as containerd lays them."""
    d = PurePosixPath(path)
    return str(d.parent) if path and d.name == f"{p.type}.{p.id}" else None


def summarize(plugins: Sequence[PluginInfo], client_default_snapshotter: str = "overlayfs") -> dict[str, Any]:
    """What ``pyctr info`` reports, from the Introspection service's plugin list alone.

    Works for containerd as for pycontainerd: directories come from the
    exports containerd's plugins have (the content store's ``root``, each
    snapshotter's ``root``, the metadata store's ``path``); the root is the
    directory holding the content plugin's, the state the one holding the
    task runtime's ``state``.  What a daemon does not export is None.
    ``metrics_address`` and ``debug_address`` exports, from any plugin, are
    shown when a daemon has them.  containerd names no default snapshotter;
    its clients' own (``client_default_snapshotter``) is reported for it.
    """
    content = next((p for p in plugins if p.type == _CONTENT and p.status == "ok"), None)
    metadata = next((p for p in plugins if p.type == "io.containerd.metadata.v1" and p.status == "ok"), None)
    runtimes = [p for p in plugins if p.type in _RUNTIMES]
    root = _parent_of_plugin_dir(content.exports.get("root", ""), content) if content else None
    state = next(
        (s for p in runtimes if (s := _parent_of_plugin_dir(p.exports.get("state", ""), p))),
        None,
    )
    service = next((p for p in plugins if p.type == "io.containerd.service.v1" and p.id == "snapshots-service"), None)
    exported_default = service.exports.get("default", "") if service else ""
    transfer = next((p for p in plugins if p.type == "io.containerd.grpc.v1" and p.id == "transfer"), None)
    gc = next((p for p in plugins if p.type == _GC), None)

    def anywhere(key: str) -> str | None:
        return next((p.exports[key] for p in plugins if p.exports.get(key)), None)

    by_type: dict[str, list[str]] = defaultdict(list)
    for p in plugins:
        by_type[p.type].append(p.id if p.status == "ok" else f"{p.id} ({p.status})")
    return {
        "root": root,
        "state": state,
        "content_root": content.exports.get("root") if content else None,
        "metadata": (
            {"id": metadata.id, "path": metadata.exports.get("path"), "policy": metadata.exports.get("policy")}
            if metadata
            else None
        ),
        "default_snapshotter": exported_default or client_default_snapshotter,
        "default_snapshotter_from": "daemon" if exported_default else "client",
        "snapshotters": [
            {"id": p.id, "status": p.status, "root": p.exports.get("root"), "error": _error(p)}
            for p in plugins
            if p.type == _SNAPSHOTTER
        ],
        "runtimes": [
            {
                "id": f"{p.type}.{p.id}",
                "status": p.status,
                "runtime_type": p.exports.get("runtime_type"),
                "binary": p.exports.get("binary_name"),
                "error": _error(p),
            }
            for p in runtimes
        ],
        "gc": dict(sorted(gc.exports.items())) if gc else None,
        "registry_config_path": (transfer.exports.get("config_path") or None) if transfer else None,
        "metrics_address": anywhere("metrics_address"),
        "debug_address": anywhere("debug_address"),
        "plugins": {
            "total": len(plugins),
            **{s: sum(p.status == s for p in plugins) for s in ("ok", "skip", "error")},
            "by_type": {t: sorted(ids) for t, ids in sorted(by_type.items())},
        },
    }


def _error(p: PluginInfo) -> str | None:
    return " ".join(p.init_error.message.split()) if p.init_error is not None else None


def _info(client: Client, args: argparse.Namespace) -> int:
    version, revision = client.version()
    uuid = client.server()
    info = {
        "address": client.address,
        "namespace": client.namespace,
        "version": version,
        "revision": revision,
        "uuid": uuid,
        **summarize(client.plugins()),
    }
    if args.format == "json":
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    _print_info(info)
    return 0


def _print_info(info: dict[str, Any]) -> None:
    out = sys.stdout

    def line(label: str, value: object) -> None:
        out.write(f"  {label + ':':<10} {'-' if value is None else value}\n")

    out.write("Server:\n")
    for label, key in (("Address", "address"), ("Version", "version"), ("Revision", "revision"), ("UUID", "uuid")):
        line(label, info[key])
    line("Namespace", info["namespace"])
    line("Root", info["root"])
    line("State", info["state"])
    line("Content", info["content_root"])
    meta = info["metadata"]
    line("Metadata", meta and f"{meta['path'] or '-'} ({meta['id']}, content sharing {meta['policy'] or '-'})")
    line("Hosts dir", info["registry_config_path"])
    line("Metrics", info["metrics_address"])
    line("Debug", info["debug_address"])

    where = "" if info["default_snapshotter_from"] == "daemon" else ": the client's, as the daemon names none"
    out.write(f"\nSnapshotters (default {info['default_snapshotter']}{where}):\n")
    print_table(
        ("ID", "STATUS", "ROOT"),
        [(s["id"], s["status"], s["root"] or s["error"] or "-") for s in info["snapshotters"]],
    )
    out.write("\nRuntimes:\n")
    print_table(
        ("ID", "STATUS", "RUNTIME TYPE", "BINARY"),
        [(r["id"], r["status"], r["runtime_type"] or "-", r["binary"] or "-") for r in info["runtimes"]],
    )
    if info["gc"]:
        out.write("\nGarbage collection:\n")
        width = max(len(k) for k in info["gc"]) + 1
        out.write("".join(f"  {k + ':':<{width}} {v}\n" for k, v in info["gc"].items()))
    counts = info["plugins"]
    out.write(f"\nPlugins: {counts['total']} ({counts['ok']} ok, {counts['skip']} skipped, {counts['error']} failed)\n")
    print_table(("TYPE", "IDS"), [(t, ",".join(ids)) for t, ids in counts["by_type"].items()])


def _code_name(code: int) -> str:
    for c in grpc.StatusCode:
        if c.value[0] == code:
            return str(c.name)
    return str(code)


def _detailed(plugins: list[PluginInfo]) -> None:
    out = sys.stdout
    for i, p in enumerate(plugins):
        if i:
            out.write("\n")
        out.write(f"Type:          {p.type}\nID:            {p.id}\n")
        if p.requires:
            out.write("Requires:\n" + "".join(f"               {r}\n" for r in p.requires))
        if p.platforms:
            out.write(f"Platforms:     {','.join(sorted(set(p.platforms)))}\n")
        if p.exports:
            out.write("Exports:\n" + "".join(f"               {k}  {v}\n" for k, v in sorted(p.exports.items())))
        if p.capabilities:
            out.write(f"Capabilities:  {','.join(p.capabilities)}\n")
        if p.init_error is not None:
            out.write(f"Error:\n               Code:     {_code_name(p.init_error.code)}\n")
            out.write(f"               Message:  {' '.join(p.init_error.message.split())}\n")


def _plugins_ls(client: Client, args: argparse.Namespace) -> int:
    plugins = client.plugins(args.filters)
    if args.quiet:
        sys.stdout.write("".join(f"{p.id}\n" for p in plugins))
    elif args.detailed:
        _detailed(plugins)
    else:
        rows = [(p.type, p.id, ",".join(sorted(set(p.platforms))) or "-", p.status) for p in plugins]
        print_table(("TYPE", "ID", "PLATFORMS", "STATUS"), rows)
    return 0


def register(sub: Any) -> None:
    subcommand(sub, "version", _version, "print the client and server versions")
    p = subcommand(sub, "info", _info, "show the daemon: identity, directories, snapshotters, runtimes, GC and plugins")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    plugins = group(sub, "plugins", "provides information about the daemon's plugins", aliases=["plugin"])
    p = subcommand(plugins, "ls", _plugins_ls, "list plugins", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the plugin ids")
    p.add_argument("-d", "--detailed", action="store_true", help="print everything known about each plugin")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. type==io.containerd.content.v1")
