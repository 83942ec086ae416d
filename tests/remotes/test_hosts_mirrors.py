"""hosts.toml mirrors: the parser with strings, then pulls through real registries standing in as mirrors."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd._duration import parse_duration
from pycontainerd.errors import InvalidArgument, NotFound, Unavailable
from pycontainerd.images import Descriptor
from pycontainerd.images import mediatypes as mt
from pycontainerd.remotes.docker import DockerResolver, HostOptions
from pycontainerd.remotes.docker._hosts import (
    ALL_CAPABILITIES,
    HostConfig,
    host_directory,
    parse_hosts,
    registry_hosts,
)
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.registry import Registry, RegistryFactory, _free_port
from tests.ocibuild import Image

from .support import busybox_image, push_image

# -- the parser ---------------------------------------------------------------

FULL = """
server = "https://registry.example.com:5000"
ca = "server-ca.pem"
skip_verify = false

[host."http://127.0.0.1:5001"]
  capabilities = ["pull", "resolve"]
  [host."http://127.0.0.1:5001".header]
    X-Mirror = "one"
    X-List = ["a", "b"]

[host."mirror.example.com/prefix"]
  capabilities = ["PULL"]
  ca = ["/etc/ca/a.pem", "b.pem"]
  client = [["c.cert", "c.key"], "both.pem"]
  skip_verify = true
  override_path = true
  dial_timeout = "1m30s"
"""


def test_parse_hosts_in_order_server_last() -> None:
    mirror, prefixed, server = parse_hosts(FULL, "/certs.d/reg", "reg/hosts.toml")
    assert mirror == HostConfig(
        "http", "127.0.0.1:5001", "/v2", frozenset({"pull", "resolve"}), headers={"X-Mirror": "one", "X-List": "a, b"}
    )
    assert prefixed == HostConfig(
        scheme="https",  # a name without a scheme is HTTPS, as in containerd
        host="mirror.example.com",
        path="/prefix",  # override_path: the path is the API root, no /v2 added
        capabilities=frozenset({"pull"}),
        ca_files=("/etc/ca/a.pem", "/certs.d/reg/b.pem"),
        client_pairs=(("/certs.d/reg/c.cert", "/certs.d/reg/c.key"), ("/certs.d/reg/both.pem", "")),
        skip_verify=True,
        dial_timeout=90.0,
    )
    assert server == HostConfig(
        "https", "registry.example.com:5000", "/v2", ALL_CAPABILITIES, ("/certs.d/reg/server-ca.pem",), (), False
    )


@pytest.mark.parametrize(
    ("url", "override", "path"),
    [
        ("https://r.io", False, "/v2"),
        ("https://r.io/", False, "/v2"),
        ("https://r.io/v2", False, "/v2"),
        ("https://r.io/mirror/", False, "/mirror/v2"),
        ("https://r.io/a/../b", False, "/b/v2"),
        ("https://r.io/api", True, "/api"),
        ("https://r.io", True, ""),
    ],
)
def test_api_root(url: str, override: bool, path: str) -> None:
    text = f'[host."{url}"]\noverride_path = {str(override).lower()}\n'
    assert parse_hosts(text)[0].path == path


def test_without_server_the_registry_itself_is_last_with_every_capability() -> None:
    """As containerd: top-level capabilities and override_path need a ``server`` to apply to."""
    text = (
        'capabilities = ["pull"]\noverride_path = true\nca = "ca.pem"\n[host."http://m:1"]\ncapabilities = ["pull"]\n'
    )
    mirror, own = parse_hosts(text, "/d")
    assert mirror.host == "m:1" and mirror.capabilities == {"pull"}
    assert own == HostConfig(ca_files=("/d/ca.pem",))  # host "": the registry's own name, scheme left to defaults
    assert parse_hosts("") == (HostConfig(),)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("server = [", "f.toml: not valid TOML"),
        ("server = 5", "f.toml: server"),
        ('server = "ftp://r.io"', "f.toml: server"),
        ('server = "https://"', "f.toml: server"),
        ("host = 1", "f.toml: host"),
        ('[host]\n"http://m" = 1', 'f.toml: host."http://m"'),
        ('[host."http://m"]\ncapabilities = ["pul"]', 'f.toml: host."http://m".capabilities'),
        ('[host."http://m"]\ncapabilities = "pull"', 'f.toml: host."http://m".capabilities'),
        ('[host."http://m"]\nca = 1', 'f.toml: host."http://m".ca'),
        ('[host."http://m"]\nclient = [["a"]]', 'f.toml: host."http://m".client'),
        ('[host."http://m"]\nskip_verify = "yes"', 'f.toml: host."http://m".skip_verify'),
        ('[host."http://m"]\noverride_path = 1', 'f.toml: host."http://m".override_path'),
        ('[host."http://m"]\ndial_timeout = "5"', 'f.toml: host."http://m".dial_timeout'),
        ('[host."http://m"]\ndial_timeout = "-5s"', 'f.toml: host."http://m".dial_timeout'),
        ('[host."http://m".header]\nX = 1', 'f.toml: host."http://m".header.X'),
        ("header = 1", "f.toml: header"),
        ('dial_timeout = "soon"', "f.toml: dial_timeout"),
    ],
)
def test_bad_hosts_toml_names_file_and_key(text: str, where: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_hosts(text, "/d", "f.toml")
    assert str(e.value).startswith(where), str(e.value)
    assert "\n" not in str(e.value)


def test_go_durations() -> None:
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("-1.5ms") == pytest.approx(-0.0015)
    assert parse_duration("0") == 0.0 and parse_duration("+3µs") == pytest.approx(3e-6)
    for bad in ("", "5", "s", "1x", " 1s", "1s ", "--1s", "1.s5"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_host_directory_names(tmp_path: Path) -> None:
    """``name_port_`` first, then ``name:port``, then ``_default``, as containerd looks them up."""
    assert host_directory(str(tmp_path), "r.io:5000") is None
    (tmp_path / "_default").mkdir()
    assert host_directory(str(tmp_path), "r.io:5000") == tmp_path / "_default"
    (tmp_path / "r.io:5000").mkdir()
    assert host_directory(str(tmp_path), "r.io:5000") == tmp_path / "r.io:5000"
    (tmp_path / "r.io_5000_").mkdir()
    assert host_directory(str(tmp_path), "r.io:5000") == tmp_path / "r.io_5000_"
    assert host_directory("", "r.io") is None


def test_certificate_files_belong_to_the_server(tmp_path: Path) -> None:
    d = tmp_path / "r.io"
    d.mkdir()
    for name in ("ca.crt", "me.cert", "me.key", "only.cert"):
        (d / name).write_text("x")
    (d / "hosts.toml").write_text('[host."http://m:1"]\n')
    mirror, server = registry_hosts(str(tmp_path), "r.io")
    assert mirror.ca_files == () and mirror.client_pairs == ()
    assert server.ca_files == (str(d / "ca.crt"),)
    assert server.client_pairs == ((str(d / "me.cert"), str(d / "me.key")), (str(d / "only.cert"), ""))


# -- pulls through mirrors ----------------------------------------------------


def _hosts_toml(tmp: Path, registry: str, text: str) -> str:
    d = tmp / "certs.d" / registry
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts.toml").write_text(text)
    return str(tmp / "certs.d")


def _fetch_all(r: DockerResolver, ref: str, img: Image) -> None:
    """Resolve ``ref`` and fetch every blob of ``img``, checking each digest."""
    name, root = r.resolve(ref)
    assert root == Descriptor(mt.OCI_MANIFEST, img.digest, len(img.manifest_bytes))
    f = r.fetcher(name)
    for digest, data in img.blobs.items():
        media_type = mt.OCI_MANIFEST if digest == img.digest else mt.OCI_LAYER_GZIP
        with f.fetch(Descriptor(media_type, digest, len(data))) as s:
            assert s.read() == data


@pytest.fixture
def two(registry_factory: RegistryFactory) -> Iterator[tuple[Registry, Registry]]:
    """(server, mirror): two plain registries."""
    yield registry_factory("plain"), registry_factory("plain")


def test_pull_through_the_mirror_with_the_server_stopped(two: tuple[Registry, Registry], tmp_path: Path) -> None:
    server, mirror = two
    img = busybox_image()
    with DockerResolver() as r:
        push_image(r.pusher(f"{mirror.host}/lib/busybox:1"), img)
    hosts = _hosts_toml(tmp_path, server.host, f'server = "http://{server.host}"\n[host."http://{mirror.host}"]\n')
    server.stop()
    with DockerResolver(HostOptions(hosts_dir=hosts), retries=0) as r:
        _fetch_all(r, f"{server.host}/lib/busybox:1", img)
        # Nothing anywhere: the error is one line about the server, the last host, with the mirror's answer.
        with pytest.raises(Unavailable) as e:
            r.resolve(f"{server.host}/lib/nothing:1")
    msg = str(e.value)
    assert "\n" not in msg and msg.index(server.host) < msg.index(mirror.host), msg
    assert "cannot reach" in msg and "not found" in msg, msg


@pytest.mark.parametrize("server_line", [True, False], ids=["server", "no-server"])
def test_mirror_down_falls_back_to_the_server(registry: Registry, tmp_path: Path, server_line: bool) -> None:
    """Without ``server``, the registry's own name is the last host (over HTTP: it is local), as in containerd."""
    img = busybox_image()
    with DockerResolver() as r:
        push_image(r.pusher(f"{registry.host}/lib/busybox:1"), img)
    dead = f"127.0.0.1:{_free_port()}"
    server = f'server = "http://{registry.host}"\n' if server_line else ""
    hosts = _hosts_toml(tmp_path, registry.host, f'{server}[host."http://{dead}"]\n')
    with DockerResolver(HostOptions(hosts_dir=hosts), retries=0) as r:
        _fetch_all(r, f"{registry.host}/lib/busybox:1", img)
        with pytest.raises(NotFound) as e:  # the server had the last word
            r.resolve(f"{registry.host}/lib/nothing:1")
    assert registry.host in str(e.value) and dead in str(e.value) and "\n" not in str(e.value)


def test_mirror_errors_and_missing_blobs_fall_back(two: tuple[Registry, Registry], tmp_path: Path) -> None:
    """A mirror lacking a blob, or answering 500, is passed over; it is asked with the registry's name as ns."""
    server, mirror = two
    proxy = FaultyProxy(mirror.host)  # to see what the mirror was asked, and to make it fail
    try:
        img = busybox_image(b"mostly mirrored")
        with DockerResolver() as r:
            push_image(r.pusher(f"{server.host}/lib/busybox:1"), img)
            missing = next(d for d, data in img.blobs.items() if d != img.digest and b"mostly mirrored" not in data)
            pusher = r.pusher(f"{mirror.host}/lib/busybox:1")
            for digest, data in img.blobs.items():  # every blob but one, and no manifest
                if digest not in (missing, img.digest):
                    pusher.push(Descriptor(mt.OCI_LAYER_GZIP, digest, len(data)), lambda data=data: io.BytesIO(data))
        text = f'server = "http://{server.host}"\n[host."http://{proxy.host}"]\n'
        hosts = _hosts_toml(tmp_path, server.host, text)
        with DockerResolver(HostOptions(hosts_dir=hosts), retries=0) as r:
            _fetch_all(r, f"{server.host}/lib/busybox:1", img)
            ns = "ns=" + server.host.replace(":", "%3A")
            assert proxy.faults.seen and all(ns in p for _, p, _ in proxy.faults.seen)
            asked = {p.split("/")[-1].split("?")[0] for m, p, _ in proxy.faults.seen if m == "GET"}
            assert set(img.blobs) - {img.digest} <= asked  # every blob was asked of the mirror first
            proxy.faults.fail_next = 100
            before = len(proxy.faults.seen)
            _fetch_all(r, f"{server.host}/lib/busybox:1", img)
            assert len(proxy.faults.seen) > before  # asked again, failed, passed over
    finally:
        proxy.close()


def test_pull_only_mirror_does_not_resolve_tags(two: tuple[Registry, Registry], tmp_path: Path) -> None:
    """Tags come from the server; the digests it names are fetched from the mirror."""
    server, mirror = two
    img, stale = busybox_image(), busybox_image(b"stale")
    with DockerResolver() as r:
        push_image(r.pusher(f"{server.host}/lib/busybox:1"), img)
        push_image(r.pusher(f"{mirror.host}/lib/busybox:1"), stale)  # the mirror's tag is out of date
        push_image(r.pusher(f"{mirror.host}/lib/busybox:current"), img)  # but it has the content
    text = f'server = "http://{server.host}"\n[host."http://{mirror.host}"]\ncapabilities = ["pull"]\n'
    hosts = _hosts_toml(tmp_path, server.host, text)
    ref = f"{server.host}/lib/busybox:1"
    with DockerResolver(HostOptions(hosts_dir=hosts), retries=0) as r:
        assert r.resolve(ref)[1].digest == img.digest
        server.stop()
        f = r.fetcher(ref)  # the server is gone: what follows can only come from the mirror
        for digest, data in img.blobs.items():
            media_type = mt.OCI_MANIFEST if digest == img.digest else mt.OCI_LAYER_GZIP
            with f.fetch(Descriptor(media_type, digest, len(data))) as s:
                assert s.read() == data
        assert r.resolve(f"{server.host}/lib/busybox@{img.digest}")[1].digest == img.digest  # a digest: any puller


def test_push_goes_to_the_first_push_host(two: tuple[Registry, Registry], tmp_path: Path) -> None:
    server, mirror = two
    img = busybox_image()
    text = (
        f'server = "http://{server.host}"\n'
        f'[host."http://{mirror.host}"]\ncapabilities = ["pull", "resolve"]\n'
        f'[host."http://{mirror.host}/"]\ncapabilities = ["push"]\n'  # the same registry, another entry
    )
    hosts = _hosts_toml(tmp_path, server.host, text)
    with DockerResolver(HostOptions(hosts_dir=hosts), retries=0) as r:
        assert push_image(r.pusher(f"{server.host}/lib/pushed:1"), img) == ["pushed"] * 3
    with DockerResolver() as r:
        assert r.resolve(f"{mirror.host}/lib/pushed:1")[1].digest == img.digest
        with pytest.raises(NotFound):
            r.resolve(f"{server.host}/lib/pushed:1")


def test_no_host_with_the_capability(registry: Registry, tmp_path: Path) -> None:
    text = f'server = "http://{registry.host}"\ncapabilities = ["pull"]\n'
    hosts = _hosts_toml(tmp_path, registry.host, text)
    with DockerResolver(HostOptions(hosts_dir=hosts)) as r, pytest.raises(NotFound) as e:
        r.resolve(f"{registry.host}/lib/busybox:1")
    assert "'resolve' capability" in str(e.value)


def test_bad_hosts_toml_is_one_clear_error(registry: Registry, tmp_path: Path) -> None:
    hosts = _hosts_toml(tmp_path, registry.host, '[host."http://m:1"]\ncapabilities = ["pul"]\n')
    with DockerResolver(HostOptions(hosts_dir=hosts)) as r, pytest.raises(InvalidArgument) as e:
        r.resolve(f"{registry.host}/lib/busybox:1")
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "certs.d" / registry.host / "hosts.toml")), msg
    assert 'host."http://m:1".capabilities' in msg and "'pul'" in msg and "\n" not in msg
