"""A pull through a hosts.toml mirror, end to end: pyctr, the client's transfer, and the daemon's config_path.

Two real registries: the image is only on the second (the mirror), and the
first (the server the reference names) is stopped before the pull.
"""

from __future__ import annotations

from pathlib import Path

from pycontainerd.client import Client, RegistryOptions
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon
from tests.fixtures.registry import Registry, RegistryFactory
from tests.ocibuild import Image, busybox_files, image

from .support import one_line_error, pyctr, seed


def _mirrored(registry_factory: RegistryFactory, tmp_path: Path) -> tuple[Registry, Registry, Image, Path]:
    """(server, mirror, image, hosts dir): the image seeded on the mirror only, the server stopped."""
    server, mirror = registry_factory("plain"), registry_factory("plain")
    img = image([busybox_files(), {"etc/mirrored": b"yes\n"}])
    seed(mirror, img, "lib/busybox:1", tmp_path)
    hosts = tmp_path / "certs.d"
    (hosts / server.host).mkdir(parents=True)
    (hosts / server.host / "hosts.toml").write_text(
        f'server = "http://{server.host}"\n\n[host."http://{mirror.host}"]\n  capabilities = ["pull", "resolve"]\n'
    )
    server.stop()
    return server, mirror, img, hosts


def _blobs(address: str) -> set[str]:
    with Client(address) as c:
        return {info.digest for info in c.content.walk()}


def test_pull_through_a_mirror(
    pycontainerd_daemon: PycontainerdDaemon, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    server, mirror, img, hosts = _mirrored(registry_factory, tmp_path)
    ref = f"{server.host}/lib/busybox:1"

    line = one_line_error(pyctr(d, "images", "pull", "-q", ref, ok=False))  # no hosts dir: the server only
    assert server.host in line, line

    out = pyctr(d, "images", "pull", "-q", "--hosts-dir", str(hosts), ref)
    assert out.stdout.split() == [ref, img.digest]
    assert _blobs(d.address) == set(img.blobs)

    with Client(d.address) as c:
        c.images.delete(ref, sync=True)
        assert _blobs(d.address) == set()
        # The client's transfer (the daemon pulls), then the client pulling by itself.
        assert c.pull(ref, registry=RegistryOptions(hosts_dir=str(hosts))).target.digest == img.digest
        assert _blobs(d.address) == set(img.blobs)
        c.images.delete(ref, sync=True)
        assert c.pull(ref, registry=RegistryOptions(hosts_dir=str(hosts)), local=True).target.digest == img.digest
        assert _blobs(d.address) == set(img.blobs)

    # The mirror gone as well: one line, naming the server (tried last) and what the mirror said.
    mirror.stop()
    line = one_line_error(
        pyctr(d, "images", "pull", "-q", "--hosts-dir", str(hosts), f"{server.host}/lib/x:1", ok=False)
    )
    assert server.host in line and mirror.host in line, line


def test_bad_hosts_toml_is_one_line(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path
) -> None:
    hosts = tmp_path / "certs.d"
    (hosts / registry.host).mkdir(parents=True)
    toml = hosts / registry.host / "hosts.toml"
    toml.write_text('server = "http://x"\n[host."http://127.0.0.1:1"]\nskip_verify = "no"\n')
    line = one_line_error(
        pyctr(pycontainerd_daemon, "images", "pull", "-q", "--hosts-dir", str(hosts), f"{registry.host}/a:1", ok=False)
    )
    assert str(toml) in line and 'host."http://127.0.0.1:1".skip_verify' in line, line


def test_daemon_config_path(
    pycontainerd_daemon_factory: DaemonFactory, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """The transfer plugin's config_path serves pulls that name no hosts directory."""
    server, _mirror, img, hosts = _mirrored(registry_factory, tmp_path)
    config = f'version = 2\n[plugins."io.containerd.grpc.v1.transfer"]\n  config_path = "{hosts}"\n'
    d = pycontainerd_daemon_factory(config=config)
    ref = f"{server.host}/lib/busybox:1"
    out = pyctr(d, "images", "pull", "-q", ref)
    assert out.stdout.split() == [ref, img.digest]
    assert _blobs(d.address) == set(img.blobs)
    detailed = pyctr(d, "plugins", "ls", "-d", "id==transfer").stdout
    assert f"config_path  {hosts}" in detailed, detailed
