"""``pycontainerd config default`` and ``config dump``: the TOML they print, read back by the daemon."""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.server._toml import dumps
from pycontainerd.server.config import format_duration, parse_duration
from tests.fixtures.daemon import DaemonFactory

GC = "io.containerd.gc.v1.scheduler"


def pycontainerd(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pycontainerd.cmd.daemon", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_default_names_every_configurable_plugin_and_round_trips(tmp_path: Path) -> None:
    r = pycontainerd("config", "default")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    doc = tomllib.loads(r.stdout)
    assert doc["version"] == 2 and doc["root"] == "/var/lib/pycontainerd"
    assert doc["grpc"]["address"] == "/run/pycontainerd/pycontainerd.sock"
    assert set(doc["plugins"]) >= {
        GC,
        "io.containerd.metadata.v1.sqlite",
        "io.containerd.grpc.v1.diff",
        "io.containerd.grpc.v1.transfer",
        "io.containerd.runtime.v2.task",
        "io.containerd.service.v1.snapshots-service",
        "io.containerd.snapshotter.v1.overlayfs",
    }
    assert doc["plugins"][GC]["startup_delay"] == "100ms"
    config = tmp_path / "config.toml"
    config.write_text(r.stdout)
    again = pycontainerd("--config", str(config), "config", "dump")
    assert again.returncode == 0 and again.stderr == ""
    assert again.stdout == r.stdout


def test_dump_shows_the_file_and_the_flags_over_it(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'version = 2\nroot = "/srv/a"\nmystery = 1\n[plugins."{GC}"]\nstartup_delay = "90s"\n'
        '[plugins."io.containerd.metadata.v1.sqlite"]\ncontent_sharing_policy = "isolated"\n'
    )
    r = pycontainerd("--config", str(config), "--state", "/srv/state", "config", "dump")
    assert r.returncode == 0
    assert r.stderr == "pycontainerd: warning: mystery: unknown configuration key, ignored\n"
    doc = tomllib.loads(r.stdout)
    assert (doc["root"], doc["state"]) == ("/srv/a", "/srv/state")
    assert doc["plugins"][GC]["startup_delay"] == "1m30s"
    assert doc["plugins"][GC]["interval"] == "1h0m0s"  # what the file left out, at its default
    assert doc["plugins"]["io.containerd.metadata.v1.sqlite"]["content_sharing_policy"] == "isolated"


def test_dump_refuses_an_invalid_value_naming_its_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'version = 2\n[plugins."{GC}"]\npause_threshold = 2.0\n')
    r = pycontainerd("--config", str(config), "config", "dump")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f'pycontainerd: plugins."{GC}".pause_threshold: ') and r.stderr.count("\n") == 1


def test_the_daemon_starts_on_the_printed_default(pycontainerd_daemon_factory: DaemonFactory) -> None:
    text = pycontainerd("config", "default").stdout
    d = pycontainerd_daemon_factory(config=text)  # root, state and address come from the fixture's flags
    r = subprocess.run(
        ["ctr", "-a", d.address, "plugins", "ls"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "io.containerd.gc.v1" in r.stdout and "scheduler" in r.stdout
    assert "warning" not in d.log().lower()


_scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
)
_key = st.text(min_size=1)
_doc = st.recursive(
    st.dictionaries(_key, st.one_of(_scalar, st.lists(st.one_of(st.integers(), st.text()), max_size=4)), max_size=4),
    lambda children: st.dictionaries(_key, children, min_size=1, max_size=3),
    max_leaves=12,
)


@given(_doc)
def test_toml_written_reads_back_the_same(doc: dict[str, object]) -> None:
    assert tomllib.loads(dumps(doc)) == doc


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_durations_read_back_the_same(ns: int) -> None:
    seconds = ns / 1e9
    assert math.isclose(parse_duration(format_duration(seconds)), seconds, rel_tol=1e-12, abs_tol=1e-12)
