"""``pyctr info``: the daemon's directories, snapshotters, runtimes and GC, from the Introspection API alone.

Run against pycontainerd (with a config that moves things around) and
against Debian's containerd 1.6, whose plugins export less.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pycontainerd.cli._system import summarize
from pycontainerd.client import InitError, PluginInfo
from tests.distribution.support import pyctr
from tests.fixtures.containerd import Containerd
from tests.fixtures.daemon import DaemonFactory


def _json(address: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(pyctr(address, "info", "--format", "json").stdout)
    return out


def test_info_of_pycontainerd(pycontainerd_daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    native_root = tmp_path / "native-elsewhere"
    hosts = tmp_path / "certs.d"
    config = f"""version = 2
[plugins."io.containerd.snapshotter.v1.native"]
  root_path = "{native_root}"
[plugins."io.containerd.service.v1.snapshots-service"]
  default = "native"
[plugins."io.containerd.gc.v1.scheduler"]
  interval = "10m"
[plugins."io.containerd.grpc.v1.transfer"]
  config_path = "{hosts}"
"""
    d = pycontainerd_daemon_factory(config=config)
    info = _json(d.address)
    assert info["address"] == d.address and info["namespace"] == "default"
    assert info["root"] == str(d.root) and info["state"] == str(d.state)
    assert info["content_root"] == str(d.root / "io.containerd.content.v1.content")
    assert info["metadata"] == {
        "id": "sqlite",
        "path": str(d.root / "io.containerd.metadata.v1.sqlite" / "meta.db"),
        "policy": "shared",
    }
    assert (info["default_snapshotter"], info["default_snapshotter_from"]) == ("native", "daemon")
    assert info["snapshotters"] == [
        {"id": "native", "status": "ok", "root": str(native_root), "error": None},
        {
            "id": "overlayfs",
            "status": "ok",
            "root": str(d.root / "io.containerd.snapshotter.v1.overlayfs"),
            "error": None,
        },
    ]
    assert info["runtimes"] == [
        {
            "id": "io.containerd.runtime.v2.task",
            "status": "ok",
            "runtime_type": "io.containerd.runc.v2",
            "binary": shutil.which("runc"),
            "error": None,
        }
    ]
    assert info["gc"]["interval"] == "600.0s"
    assert info["registry_config_path"] == str(hosts)
    assert info["plugins"]["error"] == 0 and info["plugins"]["total"] == info["plugins"]["ok"]
    assert "transfer" in info["plugins"]["by_type"]["io.containerd.grpc.v1"]

    text = pyctr(d.address, "info").stdout
    for line in (
        f"  Root:      {d.root}\n",
        f"  State:     {d.state}\n",
        f"  Hosts dir: {hosts}\n",
        "Snapshotters (default native):\n",
        "  interval:        600.0s\n",
    ):
        assert line in text, text
    assert f"native      ok       {native_root}" in text, text
    assert "io.containerd.runtime.v2.task   ok       io.containerd.runc.v2" in text, text


@pytest.mark.containerd
def test_info_of_containerd(containerd: Containerd) -> None:
    """containerd 1.6 exports the content, overlayfs and metadata paths and the GC thresholds, not its state."""
    info = _json(containerd.address)
    assert info["version"].startswith("1.")
    assert info["root"] == str(containerd.root)
    assert info["state"] is None
    assert info["content_root"] == str(containerd.root / "io.containerd.content.v1.content")
    assert info["metadata"]["id"] == "bolt" and info["metadata"]["path"].startswith(str(containerd.root))
    assert (info["default_snapshotter"], info["default_snapshotter_from"]) == ("overlayfs", "client")
    overlay = next(s for s in info["snapshotters"] if s["id"] == "overlayfs")
    assert overlay == {
        "id": "overlayfs",
        "status": "ok",
        "root": str(containerd.root / "io.containerd.snapshotter.v1.overlayfs"),
        "error": None,
    }
    assert "io.containerd.runtime.v2.task" in [r["id"] for r in info["runtimes"]]
    assert info["gc"]["PauseThreshold"] == "0.02"
    assert info["registry_config_path"] is None and info["metrics_address"] is None

    text = pyctr(containerd.address, "info").stdout
    assert f"  Root:      {containerd.root}\n" in text and "  State:     -\n" in text, text
    assert "Snapshotters (default overlayfs: the client's, as the daemon names none):" in text, text
    assert "Plugins: " in text and "io.containerd.content.v1" in text


def test_summary_of_failed_and_foreign_plugins() -> None:
    """A failed snapshotter shows its error; a root that is not the plugin's own directory names no daemon root."""
    plugins = [
        PluginInfo("io.containerd.content.v1", "content", exports={"root": "/data/blobs"}),
        PluginInfo("io.containerd.snapshotter.v1", "btrfs", init_error=InitError(9, "not a btrfs\n filesystem")),
        PluginInfo("io.containerd.runtime.v2", "task", exports={"state": "/run/x/io.containerd.runtime.v2.task"}),
        PluginInfo("io.containerd.internal.v1", "debug", exports={"debug_address": "/run/x/debug.sock"}),
    ]
    info = summarize(plugins, "native")
    assert info["root"] is None and info["content_root"] == "/data/blobs"
    assert info["state"] == "/run/x"
    assert info["snapshotters"] == [{"id": "btrfs", "status": "error", "root": None, "error": "not a btrfs filesystem"}]
    assert (info["default_snapshotter"], info["default_snapshotter_from"]) == ("native", "client")
    assert info["debug_address"] == "/run/x/debug.sock" and info["metrics_address"] is None
    assert info["gc"] is None and info["metadata"] is None
    assert info["plugins"]["total"] == 4 and info["plugins"]["error"] == 1
