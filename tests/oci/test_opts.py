"""Each option that needs nothing but the spec, with containerd 1.6's semantics."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.oci import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH_ENV,
    IDMapping,
    Spec,
    current_capabilities,
    default_spec,
    device_from_path,
    generate,
    host_devices,
    replace_or_append_env,
    with_added_capabilities,
    with_ambient_capabilities,
    with_annotations,
    with_capabilities,
    with_cgroup,
    with_cpu_cfs,
    with_cpu_shares,
    with_cpus,
    with_cpuset_cpus,
    with_cpuset_mems,
    with_default_path_env,
    with_default_unix_devices,
    with_device,
    with_dropped_capabilities,
    with_env,
    with_host_namespace,
    with_hostname,
    with_linux_namespace,
    with_masked_paths,
    with_memory_limit,
    with_memory_swap,
    with_mounts,
    with_netns_path,
    with_new_privileges,
    with_no_new_privileges,
    with_parent_cgroup_devices,
    with_pids_limit,
    with_privileged,
    with_process_args,
    with_process_cwd,
    with_readonly_paths,
    with_readonly_rootfs,
    with_rootfs,
    with_tty,
    with_user_namespace,
    without_mounts,
)
from pycontainerd.oci.spec import SpecOpt


def spec_with(*opts: SpecOpt) -> Spec:
    return generate("default", "c1", *opts)


# -- process --------------------------------------------------------------------------------------


def test_process_args_replace() -> None:
    spec = spec_with(with_process_args("a", "b"), with_process_args("/bin/sh", "-c", "echo hi"))
    assert spec["process"]["args"] == ["/bin/sh", "-c", "echo hi"]
    assert "args" not in spec_with(with_process_args())["process"]


def test_process_args_on_an_empty_spec_make_a_process() -> None:
    spec: Spec = {}
    with_process_args("x")(spec)
    assert spec == {"process": {"user": {"uid": 0, "gid": 0}, "cwd": "", "args": ["x"]}}


def test_cwd() -> None:
    assert spec_with(with_process_cwd("/srv"))["process"]["cwd"] == "/srv"
    with pytest.raises(InvalidArgument, match="absolute"):
        with_process_cwd("srv")


@pytest.mark.parametrize(
    ("defaults", "overrides", "expected"),
    [
        ([], ["A=1"], ["A=1"]),
        (["A=1", "B=2"], ["A=3"], ["A=3", "B=2"]),
        (["A=1", "B=2"], ["C=3", "A="], ["A=", "B=2", "C=3"]),
        (["A=1", "B=2"], ["A"], ["B=2"]),
        (["A=1"], ["Z"], ["A=1"]),
        (["A=x=y"], ["A=1=2"], ["A=1=2"]),
        (["A=1"], ["B=1", "B=2"], ["A=1", "B=2"]),
    ],
)
def test_replace_or_append_env(defaults: list[str], overrides: list[str], expected: list[str]) -> None:
    assert replace_or_append_env(defaults, overrides) == expected


def test_env() -> None:
    spec = spec_with(with_env(["A=1", "B=2"]), with_env(["A=9", "C=3"]), with_env(["B"]))
    assert spec["process"]["env"] == ["A=9", "C=3"]
    assert "env" not in spec_with(with_env([]))["process"]
    assert "env" not in spec_with(with_env(["A=1"]), with_env(["A"]))["process"]
    with pytest.raises(InvalidArgument):
        with_env([1])  # type: ignore[list-item]


def test_default_path_env() -> None:
    spec = spec_with(with_env(["PATH=/x", "A=1"]), with_default_path_env())
    assert spec["process"]["env"] == [DEFAULT_PATH_ENV, "A=1"]


def test_tty() -> None:
    proc = spec_with(with_env(["A=1"]), with_tty())["process"]
    assert proc["terminal"] is True
    assert proc["env"] == ["A=1", "TERM=xterm"]


def test_hostname() -> None:
    assert spec_with(with_hostname("box"))["hostname"] == "box"
    assert "hostname" not in spec_with(with_hostname("box"), with_hostname(""))
    with pytest.raises(InvalidArgument):
        with_hostname("x" * 65)


def test_new_privileges() -> None:
    assert "noNewPrivileges" not in spec_with(with_new_privileges())["process"]
    assert spec_with(with_new_privileges(), with_no_new_privileges())["process"]["noNewPrivileges"] is True


def test_capabilities() -> None:
    caps = spec_with(with_capabilities(["CAP_KILL"]))["process"]["capabilities"]
    assert caps == {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
    caps = spec_with(with_added_capabilities(["CAP_SYS_ADMIN", "CAP_KILL", "CAP_SYS_ADMIN"]))["process"]["capabilities"]
    assert caps["bounding"] == [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"] == caps["effective"] == caps["permitted"]
    caps = spec_with(with_dropped_capabilities(["CAP_KILL", "CAP_CHOWN"]))["process"]["capabilities"]
    assert caps["bounding"] == [c for c in DEFAULT_CAPABILITIES if c not in ("CAP_KILL", "CAP_CHOWN")]
    assert "bounding" not in spec_with(with_capabilities([]))["process"]["capabilities"]
    caps = spec_with(with_ambient_capabilities(["CAP_NET_BIND_SERVICE"]))["process"]["capabilities"]
    assert caps["ambient"] == caps["inheritable"] == ["CAP_NET_BIND_SERVICE"]
    with pytest.raises(InvalidArgument, match="CAP_ prefix"):
        with_added_capabilities(["SYS_ADMIN"])


# -- root and mounts ------------------------------------------------------------------------------


def test_rootfs() -> None:
    assert spec_with(with_rootfs("/var/lib/r"), with_readonly_rootfs())["root"] == {
        "path": "/var/lib/r",
        "readonly": True,
    }
    with pytest.raises(InvalidArgument):
        with_rootfs("")


def test_mounts_append_both_forms() -> None:
    given: dict[str, Any] = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]}
    spec = spec_with(with_mounts([given, "type=tmpfs,src=tmpfs,dst=/scratch,options=size=1m"]))
    assert spec["mounts"][-2:] == [
        given,
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]
    given["options"].append("changed")  # the option copied what it was given
    assert spec["mounts"][-2]["options"] == ["rbind", "ro"]


def test_mounts_are_copied_for_each_spec() -> None:
    opt = with_mounts(["type=bind,src=/a,dst=/b,options=rbind"])
    one, two = spec_with(opt), spec_with(opt)
    one["mounts"][-1]["options"].append("ro")
    assert two["mounts"][-1]["options"] == ["rbind"]


def test_bad_mounts() -> None:
    with pytest.raises(InvalidArgument, match="no destination"):
        with_mounts([{"type": "tmpfs"}])
    with pytest.raises(InvalidArgument, match="destination"):
        with_mounts(["type=tmpfs"])


def test_without_mounts() -> None:
    dests = [m["destination"] for m in spec_with(without_mounts("/run", "/dev/shm/"))["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys"]


# -- namespaces -----------------------------------------------------------------------------------


def namespaces(spec: Spec) -> list[dict[str, str]]:
    return spec["linux"]["namespaces"]  # type: ignore[no-any-return]


def test_host_namespace() -> None:
    assert [n["type"] for n in namespaces(spec_with(with_host_namespace("network")))] == ["pid", "ipc", "uts", "mount"]
    with pytest.raises(InvalidArgument, match="unknown Linux namespace"):
        with_host_namespace("net")


def test_netns_path_replaces_the_network_namespace() -> None:
    ns = namespaces(spec_with(with_netns_path("/var/run/netns/cni-1")))
    assert ns[4] == {"type": "network", "path": "/var/run/netns/cni-1"} and len(ns) == 5
    ns = namespaces(spec_with(with_host_namespace("network"), with_netns_path("/proc/1/ns/net")))
    assert ns[-1] == {"type": "network", "path": "/proc/1/ns/net"}
    with pytest.raises(InvalidArgument):
        with_netns_path("")
    with pytest.raises(InvalidArgument, match="absolute"):
        with_linux_namespace("ipc", "proc/1/ns/ipc")


def test_user_namespace() -> None:
    spec = spec_with(
        with_user_namespace([IDMapping(0, 100000, 65536)], [IDMapping(0, 200000, 65536)]),
        with_user_namespace([(65536, 300000, 1)], []),  # type: ignore[list-item]
    )
    assert [n["type"] for n in namespaces(spec)].count("user") == 1
    assert spec["linux"]["uidMappings"] == [
        {"containerID": 0, "hostID": 100000, "size": 65536},
        {"containerID": 65536, "hostID": 300000, "size": 1},
    ]
    assert spec["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 65536}]


# -- cgroup and resources -------------------------------------------------------------------------


def test_cgroup() -> None:
    assert spec_with(with_cgroup("/custom/path"))["linux"]["cgroupsPath"] == "/custom/path"
    assert "cgroupsPath" not in spec_with(with_cgroup(""))["linux"]


def test_resources() -> None:
    res = spec_with(
        with_memory_limit(64 << 20),
        with_memory_swap(128 << 20),
        with_pids_limit(20),
        with_cpu_shares(512),
        with_cpuset_cpus("0-1"),
        with_cpuset_mems("0"),
        with_cpus(1.5),
    )["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert res["pids"] == {"limit": 20}
    assert res["cpu"] == {"shares": 512, "cpus": "0-1", "mems": "0", "quota": 150000, "period": 100000}
    assert res["devices"] == [{"allow": False, "access": "rwm"}]


@pytest.mark.parametrize(("cpus", "quota"), [(0.5, 50000), (2, 200000), (0.01, 1000), (0.333333, 33333)])
def test_cpus_as_ctr(cpus: float, quota: int) -> None:
    assert spec_with(with_cpus(cpus))["linux"]["resources"]["cpu"] == {"quota": quota, "period": 100000}


def test_cpu_cfs() -> None:
    assert spec_with(with_cpu_cfs(-1, 250000))["linux"]["resources"]["cpu"] == {"quota": -1, "period": 250000}


@pytest.mark.parametrize(
    "make",
    [
        lambda: with_cpus(0),
        lambda: with_cpus(-1),
        lambda: with_cpus(float("inf")),
        lambda: with_cpus(float("nan")),
        lambda: with_cpus(0.001),
        lambda: with_memory_limit(0),
        lambda: with_memory_limit(-5),
        lambda: with_memory_limit(2**63),
        lambda: with_memory_limit(True),
        lambda: with_memory_limit(1.5),  # type: ignore[arg-type]
        lambda: with_pids_limit(2**63),
        lambda: with_cpu_shares(1),
    ],
)
def test_bad_resource_values(make: Any) -> None:
    with pytest.raises(InvalidArgument):
        make()


def test_option_on_a_spec_with_a_wrong_section_type() -> None:
    spec = default_spec("default", "c")
    spec["linux"]["resources"] = ["not", "an", "object"]
    with pytest.raises(InvalidArgument, match=r"linux\.resources is not an object"):
        with_memory_limit(1 << 20)(spec)


# -- confinement and devices ----------------------------------------------------------------------


def test_masked_and_readonly_paths() -> None:
    linux = spec_with(with_masked_paths(["/proc/x"]), with_readonly_paths([]))["linux"]
    assert linux["maskedPaths"] == ["/proc/x"]
    assert "readonlyPaths" not in linux


def test_privileged() -> None:
    spec = default_spec("default", "c")
    spec["process"]["apparmorProfile"] = "cri-containerd.apparmor.d"
    spec["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0"
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO"}
    spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]})
    with_privileged()(spec)
    caps = spec["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == current_capabilities()
    assert "CAP_SYS_ADMIN" in caps["bounding"]  # the tests run as root
    linux = spec["linux"]
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux and "seccomp" not in linux
    assert "apparmorProfile" not in spec["process"] and "selinuxLabel" not in spec["process"]
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert by_dest["/sys"]["options"] == ["nosuid", "noexec", "nodev", "rw"]
    assert by_dest["/sys/fs/cgroup"]["options"] == ["rw"]
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


def test_default_unix_devices() -> None:
    rules = spec_with(with_default_unix_devices())["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules  # /dev/null
    assert {"allow": True, "type": "c", "major": 136, "access": "rwm"} in rules  # every pty
    assert len(rules) == 10


def test_parent_cgroup_devices() -> None:
    assert "devices" not in spec_with(with_parent_cgroup_devices())["linux"]["resources"]


def test_device() -> None:
    dev = device_from_path("/dev/null")
    assert dev is not None and dev["type"] == "c" and (dev["major"], dev["minor"]) == (1, 3)
    assert device_from_path("/dev") is None
    with pytest.raises(NotFound):
        device_from_path("/dev/does-not-exist")
    spec = spec_with(with_device("/dev/null", "/dev/mynull", "rw"))
    assert spec["linux"]["devices"][0]["path"] == "/dev/mynull"
    assert spec["linux"]["resources"]["devices"][-1] == {
        "allow": True,
        "type": "c",
        "major": 1,
        "minor": 3,
        "access": "rw",
    }
    with pytest.raises(InvalidArgument, match="permissions"):
        with_device("/dev/null", permissions="rwx")
    with pytest.raises(InvalidArgument, match="not a device"):
        spec_with(with_device("/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd"))


def test_host_devices() -> None:
    paths = {d["path"] for d in host_devices()}
    assert "/dev/null" in paths and "/dev/console" not in paths
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/")) for p in paths)


def test_annotations() -> None:
    spec = spec_with(with_annotations({"a": "1", "b": "2"}), with_annotations({"a": "3"}))
    assert spec["annotations"] == {"a": "3", "b": "2"}
    assert "annotations" not in spec_with(with_annotations({}))
    with pytest.raises(InvalidArgument):
        with_annotations({"a": 1})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "mapping", [IDMapping(0, 1, 0), IDMapping(-1, 0, 1), IDMapping(0, 2**32 - 1, 2), IDMapping(0, 0, 2**32 + 1)]
)
def test_bad_user_namespace_mappings(mapping: IDMapping) -> None:
    with pytest.raises(InvalidArgument):
        with_user_namespace([mapping], [])
