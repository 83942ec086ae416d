"""The shim stays lean: what it imports, how fast it answers, and the packages above it import nothing."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pycontainerd.runtime.shim.client as client_module
from pycontainerd.runtime.shim import protocol
from pycontainerd.runtime.shim.client import ShimClient

from .conftest import Harness, run

ROOT = str(Path(client_module.__file__).resolve().parents[3])

# What the shim loads in the end: everything, as the fork server imports it before forking shims.
PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
import pycontainerd.runtime.shim._forkserver
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_shim_imports_only_the_stdlib_and_itself() -> None:
    out = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, ROOT], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    ours = [m for m in loaded if m.startswith("pycontainerd")]
    assert set(ours) <= {
        "pycontainerd",
        "pycontainerd.runtime",
        "pycontainerd.runtime.shim",
        *(
            f"pycontainerd.runtime.shim.{m}"
            for m in (
                "_main",
                "_forkserver",
                "_service",
                "_cgroups",
                "_cjson",
                "_linux",
                "_loop",
                "_process",
                "_runc",
                "_stdio",
                "protocol",
            )
        ),
    }
    third_party = [
        m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("pycontainerd")
    ]
    assert third_party == []
    heavy = ["asyncio", "grpc", "google", "subprocess", "threading", "logging", "argparse", "ctypes.util"]
    # The pure-Python halves of signal, socket and json bring in enum, re and functools: a megabyte a shim.
    heavy += ["enum", "re", "functools", "collections", "json", "socket", "signal", "selectors", "array"]
    assert [m for m in heavy if m in loaded] == []


@pytest.mark.parametrize("name", ["pycontainerd", "pycontainerd.runtime", "pycontainerd.runtime.shim"])
def test_packages_on_the_shim_path_import_nothing(name: str) -> None:
    probe = f"import sys; sys.path.insert(0, {ROOT!r}); b = set(sys.modules); import {name}; print(sorted(set(sys.modules) - b))"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True)
    parents = {".".join(name.split(".")[: i + 1]) for i in range(name.count(".") + 1)}
    assert set(eval(out.stdout)) <= parents | {"__future__"}


def test_exports() -> None:
    for name in (
        "pycontainerd.runtime.shim.client",
        "pycontainerd.runtime.shim.protocol",
        "pycontainerd.runtime.shim.spawn",
    ):
        module = importlib.import_module(name)
        assert all(hasattr(module, attr) for attr in module.__all__)
    assert protocol.VERSION == 1


def test_start_up_is_fast(harness: Harness) -> None:
    """Spawn to first reply: the interpreter's start, a few modules, a socket (~30 ms on an idle machine)."""
    bundle, id = harness.bundle("fast", ["true"])

    async def scenario() -> float:
        t = time.perf_counter()
        client = await ShimClient.spawn(bundle, "shimtest", id)
        elapsed = time.perf_counter() - t
        harness.shim_pids.add(client.pid)
        assert await client.shutdown()
        await client.close()
        return elapsed

    elapsed = run(scenario())
    assert elapsed < 1.0  # generous: a loaded CI box; the budget proper is checked by hand (see the report)


def test_launcher_fits_the_task_manager() -> None:
    """The adapter's conversions (its fit to pycontainerd.tasks.manager's protocols is checked by mypy)."""
    from pycontainerd.runtime.shim.launcher import to_event, to_metrics

    exit_ = to_event(
        {
            "seq": 1,
            "topic": "/tasks/exit",
            "container_id": "c",
            "id": "e",
            "pid": 9,
            "exit_status": 137,
            "exited_at": 1_700_000_000_123_456_789,
        }
    )
    assert exit_ is not None and exit_.event.exit_status == 137 and exit_.event.exited_at.nanos == 123_456_789  # type: ignore[attr-defined]
    assert to_event({"seq": 2, "topic": "/tasks/unknown", "container_id": "c"}) is None
    m = to_metrics({"version": 1, "metrics": {"memory": {"usage": {"limit": 5, "usage": 3}}, "pids": {"current": 2}}})
    assert m.memory.usage.limit == 5 and m.pids.current == 2  # type: ignore[attr-defined]
