"""The config file: containerd's keys, warnings for the unknown, refusal for the invalid."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf.empty_pb2 import Empty

from pycontainerd.api.services.introspection.v1 import introspection_pb2 as ipb
from pycontainerd.server import builtins
from pycontainerd.server.config import (
    DEFAULT_ADDRESS,
    DEFAULT_MAX_MESSAGE,
    Config,
    ConfigError,
    Duration,
    decode_plugin_config,
    load,
    parse_duration,
)
from pycontainerd.server.server import Server
from tests.daemon.conftest import Stubs, channel_to
from tests.fixtures.daemon import DaemonFactory

GC = 'plugins."io.containerd.gc.v1.scheduler"'


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load(path)


def test_defaults_without_a_file() -> None:
    cfg = load(None)
    assert cfg.root == Path("/var/lib/pycontainerd")
    assert cfg.state == Path("/run/pycontainerd")
    assert cfg.grpc.address == DEFAULT_ADDRESS == "/run/pycontainerd/pycontainerd.sock"
    assert cfg.grpc.max_recv_message_size == cfg.grpc.max_send_message_size == DEFAULT_MAX_MESSAGE == 16 << 20
    assert cfg.debug.level == "info"
    assert cfg.warnings == []


def test_containerd_keys(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        """
        version = 2
        root = "/srv/r"
        state = "/srv/s"
        disabled_plugins = ["io.containerd.grpc.v1.leases"]
        [grpc]
          address = "/srv/x.sock"
          uid = 10
          gid = 20
          max_recv_message_size = 1024
          max_send_message_size = 2048
        [debug]
          level = "debug"
          format = "json"
          address = "/srv/debug.sock"
          gid = 7
        [metrics]
          address = "127.0.0.1:1338"
          grpc_histogram = true
        [plugins."io.containerd.gc.v1.scheduler"]
          schedule_delay = "250ms"
        """,
    )
    assert (cfg.root, cfg.state) == (Path("/srv/r"), Path("/srv/s"))
    assert (cfg.grpc.address, cfg.grpc.uid, cfg.grpc.gid) == ("/srv/x.sock", 10, 20)
    assert (cfg.grpc.max_recv_message_size, cfg.grpc.max_send_message_size) == (1024, 2048)
    assert (cfg.debug.level, cfg.debug.format, cfg.debug.address) == ("debug", "json", "/srv/debug.sock")
    assert (cfg.debug.uid, cfg.debug.gid) == (None, 7)
    assert (cfg.metrics.address, cfg.metrics.grpc_histogram) == ("127.0.0.1:1338", True)
    assert cfg.disabled_plugins == ["io.containerd.grpc.v1.leases"]
    assert cfg.plugin_section("io.containerd.gc.v1", "scheduler") == (
        "io.containerd.gc.v1.scheduler",
        {"schedule_delay": "250ms"},
    )
    assert cfg.warnings == []


def test_unknown_and_unsupported_keys_warn(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        """
        version = 2
        oom_score = -999
        colour = "blue"
        [grpc]
          tcp_address = "0.0.0.0:1"
          speed = 3
        [ttrpc]
          address = "/x"
        [metrics]
          colour = 1
        """,
    )
    assert sorted(cfg.warnings) == [
        "colour: unknown configuration key, ignored",
        "grpc.speed: unknown configuration key, ignored",
        "grpc.tcp_address: not supported by pycontainerd, ignored",
        "metrics.colour: unknown configuration key, ignored",
        "oom_score: not supported by pycontainerd, ignored",
        "ttrpc: not supported by pycontainerd, ignored",
    ]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("version = 3", "version"),
        ('version = "2"', "version"),
        ("version = 2\nroot = 5", "root"),
        ('version = 2\n[grpc]\nuid = "root"', "grpc.uid"),
        ("version = 2\n[grpc]\ngid = -1", "grpc.gid"),
        ("version = 2\n[grpc]\nmax_recv_message_size = true", "grpc.max_recv_message_size"),
        ('version = 2\n[grpc]\naddress = ""', "grpc.address"),
        ('version = 2\n[debug]\nlevel = "loud"', "debug.level"),
        ('version = 2\n[debug]\nformat = "xml"', "debug.format"),
        ("version = 2\n[debug]\naddress = 1", "debug.address"),
        ('version = 2\n[metrics]\naddress = "localhost"', "metrics.address"),
        ('version = 2\n[metrics]\naddress = "127.0.0.1:99999"', "metrics.address"),
        ('version = 2\n[metrics]\ngrpc_histogram = "yes"', "metrics.grpc_histogram"),
        ('version = 2\ndisabled_plugins = ["cri"]', "disabled_plugins"),
        ("version = 2\ngrpc = 1", "grpc"),
        ("version = 2\n[plugins.scheduler]\nx = 1", 'plugins."scheduler"'),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text)
    assert str(e.value).startswith(f"{key}:")


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, "version = = 2")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("100ms", 0.1), ("1h30m", 5400.0), ("1.5s", 1.5), ("250us", 0.00025), ("2m3s", 123.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "ms", "1d", "1s2", "-"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@dataclass(frozen=True)
class _Spec:
    n: int = 1
    f: float = 0.5
    s: str = "x"
    b: bool = False
    d: Duration = 2.0


def test_plugin_config_decoding() -> None:
    values, warnings = decode_plugin_config("p", {"n": 3, "f": 1, "d": "1m", "zz": 0}, _Spec)
    assert values == {"n": 3, "f": 1.0, "s": "x", "b": False, "d": 60.0}
    assert warnings == ["p.zz: unknown configuration key, ignored"]
    bad: list[tuple[dict[str, object], str]] = [
        ({"n": 1.5}, "p.n"),
        ({"b": 1}, "p.b"),
        ({"d": "soon"}, "p.d"),
        ({"s": 1}, "p.s"),
    ]
    for raw, key in bad:
        with pytest.raises(ConfigError, match=f"^{key}:"):
            decode_plugin_config("p", raw, _Spec)


def test_plugin_sections_are_checked_before_anything_starts(tmp_path: Path) -> None:
    cfg = _load(tmp_path, f'version = 2\n[{GC}]\npause_threshold = 2.0\nstartup_delay = "-1s"')
    with pytest.raises(ConfigError, match=rf"^{GC}\.(pause_threshold|startup_delay):"):
        Server(cfg)
    cfg = _load(tmp_path, 'version = 2\n[plugins."io.containerd.metadata.v1.sqlite"]\ncontent_sharing_policy = "bogus"')
    with pytest.raises(ConfigError, match="content_sharing_policy"):
        Server(cfg)
    cfg = _load(tmp_path, 'version = 2\nrequired_plugins = ["io.containerd.snapshotter.v1.zfs"]')
    with pytest.raises(ConfigError, match="required_plugins"):
        Server(cfg)


def test_unknown_plugin_sections_warn(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nx = 1\n[plugins."io.containerd.grpc.v1.version"]\ny = 1',
    )
    assert sorted(Server(cfg).warnings) == [
        'plugins."io.containerd.grpc.v1.cri": no such plugin, ignored',
        'plugins."io.containerd.grpc.v1.version": plugin takes no configuration, ignored',
    ]


def test_version_1_keys_plugins_by_id(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '[plugins.scheduler]\nschedule_delay = "1s"')
    assert cfg.version == 1
    assert cfg.plugin_section("io.containerd.gc.v1", "scheduler")[1] == {"schedule_delay": "1s"}


def test_every_builtin_config_has_defaults() -> None:
    for b in builtins.BUILTINS:
        if b.config is not None:
            values, warnings = decode_plugin_config("p", {}, b.config)
            assert warnings == []
            b.config(**values)


# -- the daemon with a config file ---------------------------------------------------------------


def _refused(factory: DaemonFactory, config: str) -> str:
    d = factory(config=config, start=False)
    res = subprocess.run(d.command(), capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 1
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert not Path(d.address).exists()
    return res.stderr


def test_daemon_refuses_invalid_config_naming_the_key(pycontainerd_daemon_factory: DaemonFactory) -> None:
    err = _refused(pycontainerd_daemon_factory, 'version = 2\n[grpc]\nmax_send_message_size = "big"')
    assert err == "pycontainerd: grpc.max_send_message_size: must be an integer, not 'big'\n"
    err = _refused(pycontainerd_daemon_factory, f'version = 2\n[{GC}]\nschedule_delay = "soon"')
    assert err.startswith(f"pycontainerd: {GC}.schedule_delay: invalid duration 'soon'")


def test_daemon_warns_about_unknown_keys_and_starts(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(config="version = 2\nflavour = 1\n")
    assert 'msg="config: flavour: unknown configuration key, ignored"' in d.log()
    assert "level=warning" in d.log()


def test_flags_override_the_file(pycontainerd_daemon_factory: DaemonFactory) -> None:
    d = pycontainerd_daemon_factory(start=False)
    d.config_path = d.base / "config.toml"
    d.config_path.write_text(
        f'version = 2\nroot = "{d.base}/file-root"\n[grpc]\naddress = "{d.base}/file.sock"\n'
        f'[debug]\nlevel = "debug"\n[{GC}]\nstartup_delay = "2s"\n'
    )
    d.start()  # --root, --state and --address come from the fixture
    assert d.root.is_dir() and not (d.base / "file-root").exists()
    assert not (d.base / "file.sock").exists()
    assert "level=debug" in d.log()
    with channel_to(d.address) as ch:
        resp = Stubs(ch).introspection.Plugins(ipb.PluginsRequest(filters=["id==scheduler"]))
    assert resp.plugins[0].exports["startup_delay"] == "2.0s"
    d.stop()
    d.args = ["--log-level", "error"]
    size = len(d.log())
    d.start()
    assert "level=info" not in d.log()[size:]
    with channel_to(d.address) as ch:
        Stubs(ch).version.Version(Empty())
