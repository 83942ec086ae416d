"""pyctr's start-up: a command imports what it uses and nothing heavy besides.

Most of a short command's time is Python importing modules, so each
command loads only its own command module, and the client, transfer and
registry packages load their parts when first used.  The tests run pyctr
for real and list ``sys.modules`` at its exit, so a module-level import
that drags in something heavy shows here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pycontainerd.client
import pycontainerd.remotes.docker
import pycontainerd.transfer
from pycontainerd import cli
from pycontainerd.cli import Parser, command_word
from pycontainerd.cmd.pyctr import build_parser
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import image

from ..distribution.support import seed

# Run pyctr as its console script does, and write the modules loaded by then to $MODULES_OUT.
_RUN = """
import atexit, os, runpy, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "pyctr"
runpy.run_module("pycontainerd.cmd.pyctr", run_name="__main__")
"""

# Loaded by commands that need them only: the registry client, the pull and push machinery, the
# unpacker and differ, archives, runtime specs, tasks and containers, terminal output.
HEAVY = (
    "urllib3",
    "pycontainerd.remotes.docker._resolver",
    "pycontainerd.remotes.docker._session",
    "pycontainerd.transfer._pull",
    "pycontainerd.transfer._push",
    "pycontainerd.unpack",
    "pycontainerd.diff",
    "pycontainerd.archive",
    "pycontainerd.oci",
    "pycontainerd.client._tasks",
    "pycontainerd.client._containers",
    "pycontainerd.client._cio",
    "pycontainerd.cli._run",
    "pycontainerd.cli._tasks",
    "pycontainerd.cli._containers",
    "rich",
)


def modules_of(tmp_path: Path, *args: str, ok: bool = True) -> set[str]:
    out = tmp_path / f"modules-{len(list(tmp_path.iterdir()))}.txt"
    r = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MODULES_OUT": str(out)},
        check=False,
    )
    assert (r.returncode == 0) == ok, r.stderr
    return set(out.read_text().split())


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_commands_against_the_daemon_load_nothing_heavy(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    seed(registry, image([{"etc/hello": b"hi\n"}, {"etc/motd": b"motd\n"}]), "lean/img:1", tmp_path)
    ref = f"{registry.host}/lean/img:1"
    # The daemon fetches and unpacks: this side needs neither the registry client nor the unpacker.
    pulled = modules_of(tmp_path, "-a", d.address, "images", "pull", "-q", ref)
    assert heavy(pulled) == []
    assert "pycontainerd.cli._images" in pulled and "pycontainerd.cli._snapshots" not in pulled
    for args in (["version"], ["images", "ls"], ["namespaces", "ls"], ["content", "ls"], ["snapshots", "ls"]):
        assert heavy(modules_of(tmp_path, "-a", d.address, *args)) == [], args
    helped = modules_of(tmp_path, "--help")  # lists every command, so loads every command module
    assert "pycontainerd.cli._run" in helped and "urllib3" not in helped
    # A pull in this process does load them: the listing sees what it should.
    local = modules_of(tmp_path, "-a", d.address, "images", "pull", "-q", "--local", ref)
    assert {"urllib3", "pycontainerd.transfer._pull", "pycontainerd.unpack"} <= local


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["images", "pull", "x"], "images"),
        (["-a", "/s", "-n", "ns", "i", "ls"], "i"),
        (["--address=/s", "--timeout", "5s", "run", "img"], "run"),
        (["--addr", "/s", "--snap", "native", "snapshots", "ls"], "snapshots"),
        (["-a/s", "-nx", "version"], "version"),
        (["--", "tasks"], "tasks"),
        (["-h", "images"], None),
        (["--he"], None),
        (["-a", "/s"], None),
        ([], None),
    ],
)
def test_command_word(argv: list[str], word: str | None) -> None:
    assert command_word(argv) == word


def _subparsers(p: argparse.ArgumentParser) -> argparse._SubParsersAction[Parser]:
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))


def test_each_group_answers_to_the_words_listed_for_it() -> None:
    everything = _subparsers(build_parser())
    listed: set[str] = set()
    for module, _, words in cli._GROUPS:
        only = _subparsers(build_parser([words[0]]))
        assert set(only.choices) == set(words), module
        assert only.choices[words[0]].prog == everything.choices[words[0]].prog
        listed |= set(words)
    assert set(everything.choices) == listed


def test_global_value_options_are_pyctrs() -> None:
    parser = build_parser()
    takes_value = {
        o
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction) and a.nargs is None and a.option_strings
        for o in a.option_strings
    }
    assert takes_value == set(cli.GLOBAL_VALUE_OPTIONS)


@pytest.mark.parametrize("package", [pycontainerd.client, pycontainerd.transfer, pycontainerd.remotes.docker])
def test_lazy_exports_name_their_modules(package: object) -> None:
    homes: dict[str, str] = package._HOME_OF  # type: ignore[attr-defined]
    exported = set(package.__all__)  # type: ignore[attr-defined]
    assert set(homes) <= exported
    for name in exported:
        assert getattr(package, name) is not None
    if package is pycontainerd.transfer:
        assert callable(pycontainerd.transfer.pull) and callable(pycontainerd.transfer.push)
