"""``pyctr version``, ``pyctr info`` and ``pyctr plugins``: what the daemon is and what it loaded."""

from __future__ import annotations

import argparse
import platform
import sys
from collections import defaultdict
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


def _info(client: Client, args: argparse.Namespace) -> int:
    version, revision = client.version()
    uuid = client.server()
    plugins = client.plugins()
    counts = {s: sum(p.status == s for p in plugins) for s in ("ok", "skip", "error")}
    out = sys.stdout
    out.write(f"Server:\n  Address:   {client.address}\n  Version:   {version}\n  Revision:  {revision}\n")
    out.write(f"  UUID:      {uuid}\n  Namespace: {client.namespace}\n\n")
    out.write(f"Plugins: {len(plugins)} ({counts['ok']} ok, {counts['skip']} skipped, {counts['error']} failed)\n")
    by_type: dict[str, list[str]] = defaultdict(list)
    for p in plugins:
        by_type[p.type].append(p.id if p.status == "ok" else f"{p.id} ({p.status})")
    print_table(("TYPE", "IDS"), [(t, ",".join(sorted(ids))) for t, ids in sorted(by_type.items())])
    return 0


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
    subcommand(sub, "info", _info, "show the server's identity, version and a summary of its plugins")
    plugins = group(sub, "plugins", "provides information about the daemon's plugins", aliases=["plugin"])
    p = subcommand(plugins, "ls", _plugins_ls, "list plugins", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="print only the plugin ids")
    p.add_argument("-d", "--detailed", action="store_true", help="print everything known about each plugin")
    p.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. type==io.containerd.content.v1")
