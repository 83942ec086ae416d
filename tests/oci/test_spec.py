"""The default spec, generation, JSON: containerd 1.6's defaults, checked against Debian's ctr."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from pycontainerd.errors import InvalidArgument
from pycontainerd.oci import (
    DEFAULT_CAPABILITIES,
    SPEC_TYPE_URL,
    SPEC_VERSION,
    Spec,
    compose,
    default_spec,
    generate,
    spec_from_json,
    spec_to_json,
    with_hostname,
    with_process_args,
)

CTR = "/usr/bin/ctr"


def test_type_url_and_version() -> None:
    assert SPEC_TYPE_URL == "types.containerd.io/opencontainers/runtime-spec/1/Spec"
    assert default_spec("default", "c")["ociVersion"] == SPEC_VERSION == "1.0.2-dev"


def test_process_defaults() -> None:
    proc = default_spec("default", "c")["process"]
    assert proc["user"] == {"uid": 0, "gid": 0}
    assert proc["cwd"] == "/"
    assert proc["noNewPrivileges"] is True
    assert proc["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert set(proc["capabilities"]) == {"bounding", "effective", "permitted"}
    for caps in proc["capabilities"].values():
        assert caps == list(DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES and len(DEFAULT_CAPABILITIES) == 14
    # containerd's default spec has no env and no args: images and options bring them
    assert "env" not in proc and "args" not in proc and "terminal" not in proc


def test_linux_defaults() -> None:
    spec = default_spec("k8s.io", "web-1")
    linux = spec["linux"]
    assert linux["cgroupsPath"] == "/k8s.io/web-1"
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "network"]
    assert linux["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    assert spec["root"] == {"path": "rootfs"}
    assert "hostname" not in spec


def test_default_mounts() -> None:
    mounts = {m["destination"]: m for m in default_spec("default", "c")["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/run"]
    assert mounts["/sys"]["options"] == ["nosuid", "noexec", "nodev", "ro"]
    assert mounts["/dev/shm"] == {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    }
    assert mounts["/dev/pts"]["options"][-1] == "gid=5"


def test_each_spec_is_fresh() -> None:
    a, b = default_spec("default", "c"), default_spec("default", "c")
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["mounts"][0]["options"].append("ro")
    assert b == default_spec("default", "c")
    assert "CAP_SYS_ADMIN" not in b["process"]["capabilities"]["effective"]


@pytest.mark.parametrize(("ns", "id"), [("", "c"), ("a/b", "c"), ("..", "c"), ("default", "../x"), ("default", "a/b")])
def test_names_that_would_escape_the_cgroup_are_refused(ns: str, id: str) -> None:
    with pytest.raises(InvalidArgument):
        default_spec(ns, id)


def test_empty_id_is_the_namespace_cgroup() -> None:
    assert default_spec("default", "")["linux"]["cgroupsPath"] == "/default"


@pytest.mark.containerd
def test_same_as_ctr_oci_spec() -> None:
    """``ctr oci spec`` prints containerd's default spec for the ``default`` namespace and an empty id."""
    out = subprocess.run([CTR, "oci", "spec"], capture_output=True, check=True, timeout=30).stdout
    assert default_spec("default", "") == json.loads(out)


def test_generate_applies_options_in_order() -> None:
    seen: list[str] = []

    def mark(name: str) -> Any:
        def opt(spec: Spec) -> None:
            seen.append(name)

        return opt

    spec = generate("default", "c", mark("a"), with_hostname("h1"), compose(mark("b"), with_hostname("h2")), mark("c"))
    assert seen == ["a", "b", "c"]
    assert spec["hostname"] == "h2"


def test_generate_stops_at_the_first_error() -> None:
    def boom(spec: Spec) -> None:
        raise InvalidArgument("boom")

    with pytest.raises(InvalidArgument, match="boom"):
        generate("default", "c", boom, with_process_args("never"))


def test_json_round_trip() -> None:
    spec = generate("default", "c", with_process_args("/bin/echo", "héllo"))
    data = spec_to_json(spec)
    assert isinstance(data, bytes) and "héllo".encode() in data
    assert spec_from_json(data) == spec
    assert spec_from_json(data.decode()) == spec


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b"\xff", b'"spec"'])
def test_bad_json_is_invalid_argument(data: bytes) -> None:
    with pytest.raises(InvalidArgument, match="decoding spec"):
        spec_from_json(data)


def test_unjsonable_spec_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="not JSON-able"):
        spec_to_json({"x": object()})
    with pytest.raises(InvalidArgument, match="not JSON-able"):
        spec_to_json({"x": float("nan")})
