"""Platforms: parsing, normalising, the host's platform and matching, checked against containerd's rules."""

from __future__ import annotations

import platform as host

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd import platforms
from pycontainerd.errors import InvalidArgument
from pycontainerd.platforms import Platform
from pycontainerd.platforms._host import cpu_variant, host_architecture
from pycontainerd.platforms._parse import KNOWN_ARCHITECTURES, KNOWN_OS

P = platforms.parse
HERE = platforms.default()


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("linux/arm64/v9", "linux/arm64/v9"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/arm/5", "linux/arm/v5"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armhf/v6", "linux/arm/v7"),  # the alias decides the variant
        ("linux/armel", "linux/arm/v6"),
        ("linux/i386", "linux/386"),
        ("linux/i386/v7", "linux/386"),
        ("LINUX/AMD64", "linux/amd64"),
        ("Windows/AMD64", "windows/amd64"),
        ("macos/arm64", "darwin/arm64"),
        ("freebsd/riscv64", "freebsd/riscv64"),
        ("windows", "windows/" + platforms.format(HERE).split("/", 1)[1]),
    ],
)
def test_parse_normalises(spec: str, want: str) -> None:
    assert platforms.format(P(spec)) == want


@pytest.mark.parametrize(
    ("spec", "arch", "variant"),
    [
        ("amd64", "amd64", ""),
        ("arm64", "arm64", ""),
        ("arm64/v8", "arm64", ""),
        ("armhf", "arm", "v7"),
        ("s390x", "s390x", ""),
    ],
)
def test_architecture_alone_is_on_this_host(spec: str, arch: str, variant: str) -> None:
    assert P(spec) == Platform(HERE.os, arch, variant)


def test_os_alone_is_this_hosts_architecture() -> None:
    assert P("linux") == Platform("linux", HERE.architecture, HERE.variant)


@pytest.mark.parametrize(
    "spec",
    ["", "/", "linux/", "/amd64", "a/b/c/d", "linux/amd 64", "linux/*", "*", "linux/amd64/v1.0", "notanos",
     "notanos/amd64", "plan10/amd64/v1", "linux/amd64/", "lïnux/amd64"],
)  # fmt: skip
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        P(spec)
    assert f'"{spec}"' in str(e.value)
    assert "\n" not in str(e.value)


@given(
    st.sampled_from(sorted(KNOWN_OS)),
    st.sampled_from(sorted(KNOWN_ARCHITECTURES)),
    st.sampled_from(["", "v5", "v6", "v7", "v8", "v9", "v1", "v2", "v3"]),
)
def test_format_parse_round_trip(os_: str, arch: str, variant: str) -> None:
    p = platforms.normalize(Platform(os_, arch, variant))
    assert P(platforms.format(p)) == p
    assert platforms.from_oci(platforms.to_oci(p)) == p


@given(st.text(max_size=40))
def test_parse_raises_only_invalid_argument(spec: str) -> None:
    try:
        p = P(spec)
    except InvalidArgument:
        return
    assert platforms.normalize(p) == p
    assert P(platforms.format(p)) == p


@given(st.text(max_size=12), st.text(max_size=12), st.text(max_size=6))
def test_normalize_is_idempotent(os_: str, arch: str, variant: str) -> None:
    once = platforms.normalize(Platform(os_, arch, variant))
    assert platforms.normalize(once) == once


def test_normalize_fills_in_the_host_os_and_keeps_the_rest() -> None:
    p = platforms.normalize(Platform("", "x86_64", "", "10.0.17763", ("win32k",)))
    assert p == Platform(HERE.os, "amd64", "", "10.0.17763", ("win32k",))


@pytest.mark.parametrize(
    ("p", "want"),
    [
        (Platform("linux", "amd64"), "linux/amd64"),
        (Platform("linux", "arm", "v7"), "linux/arm/v7"),
        (Platform("linux", ""), "linux"),
        (Platform("", "amd64"), "unknown"),
        (Platform("unknown", "unknown"), "unknown/unknown"),
    ],
)
def test_format(p: Platform, want: str) -> None:
    assert platforms.format(p) == want == str(p)


def test_oci_conversion() -> None:
    p = Platform("windows", "amd64", "", "10.0.17763.1", ("win32k",))
    doc = platforms.to_oci(p)
    assert doc == {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1", "os.features": ["win32k"]}
    assert platforms.from_oci(doc) == p
    assert platforms.to_oci(Platform("linux", "arm", "v6")) == {"os": "linux", "architecture": "arm", "variant": "v6"}
    # as written: a descriptor's platform is not normalised on the way in
    assert platforms.from_oci({"os": "linux", "architecture": "aarch64"}) == Platform("linux", "aarch64")
    assert platforms.from_oci({"os": "linux", "architecture": "arm", "variant": None}) == Platform("linux", "arm")


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        "linux/amd64",
        {"os": 1, "architecture": "amd64"},
        {"os": "linux", "architecture": ["amd64"]},
        {"os": "linux", "architecture": "amd64", "variant": 7},
        {"os": "linux", "architecture": "amd64", "os.version": {}},
        {"os": "linux", "architecture": "amd64", "os.features": "win32k"},
        {"os": "linux", "architecture": "amd64", "os.features": [1]},
    ],
)
def test_from_oci_rejects(obj: object) -> None:
    with pytest.raises(InvalidArgument):
        platforms.from_oci(obj)


def test_only_amd64_also_runs_386_after_itself() -> None:
    m = platforms.only(P("linux/amd64"))
    assert m.match(P("linux/amd64")) and m.match(P("linux/386"))
    assert m.match(Platform("linux", "x86_64"))  # matching normalises what it is given
    assert not m.match(P("linux/arm64")) and not m.match(P("windows/amd64")) and not m.match(P("linux/amd64/v2"))
    assert m.less(P("linux/amd64"), P("linux/386"))
    assert not m.less(P("linux/386"), P("linux/amd64"))
    assert m.less(P("linux/386"), P("linux/arm64"))
    assert not m.less(P("linux/arm64"), P("linux/s390x"))


def test_only_with_microarchitecture_levels() -> None:
    assert platforms.compatible(P("linux/amd64/v3")) == [
        Platform("linux", "amd64", "v3"),
        Platform("linux", "amd64", "v2"),
        Platform("linux", "amd64", "v1"),
        Platform("linux", "386"),
    ]
    m = platforms.only(P("linux/amd64/v3"))
    assert m.match(P("linux/amd64")) and m.less(P("linux/amd64/v2"), P("linux/amd64"))


def test_only_arm() -> None:
    assert [platforms.format(p) for p in platforms.compatible(P("linux/arm64"))] == [
        "linux/arm64",
        "linux/arm/v8",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/arm/v5",
    ]
    v7 = platforms.only(P("linux/arm/v7"))
    assert v7.match(P("linux/arm/v6")) and v7.match(P("linux/arm/v5")) and v7.match(P("linux/arm"))
    assert not v7.match(P("linux/arm/v8")) and not v7.match(P("linux/arm64"))
    assert v7.less(P("linux/arm/v6"), P("linux/arm/v5"))
    assert platforms.compatible(P("linux/arm/v5")) == [Platform("linux", "arm", "v5")]
    assert platforms.only(P("windows/arm64")).match(P("windows/arm/v7"))


def test_only_strict() -> None:
    m = platforms.only_strict(P("linux/arm/v7"))
    assert m.match(Platform("linux", "armhf")) and not m.match(P("linux/arm/v6"))


def test_ordered_prefers_earlier_platforms() -> None:
    m = platforms.ordered(P("linux/arm64"), P("linux/amd64"))
    assert m.match(P("linux/amd64")) and m.match(P("linux/arm64")) and not m.match(P("linux/386"))
    assert m.less(P("linux/arm64"), P("linux/amd64"))
    assert not m.less(P("linux/amd64"), P("linux/arm64"))
    assert m.less(P("linux/amd64"), P("linux/386"))
    assert not m.less(P("linux/amd64"), P("linux/amd64"))
    assert not platforms.ordered().match(P("linux/amd64"))


def test_any_of_has_no_preference_among_matches() -> None:
    m = platforms.any_of(P("linux/arm64"), P("linux/amd64"))
    assert m.match(P("linux/amd64")) and not m.match(P("linux/386"))
    assert not m.less(P("linux/arm64"), P("linux/amd64")) and not m.less(P("linux/amd64"), P("linux/arm64"))
    assert m.less(P("linux/amd64"), P("linux/386")) and not m.less(P("linux/386"), P("linux/amd64"))


def test_all_matches_everything_without_preference() -> None:
    assert platforms.ALL.match(Platform("plan9", "sparc")) and platforms.ALL.match(Platform("", ""))
    assert not platforms.ALL.less(P("linux/amd64"), P("linux/386"))


@pytest.mark.skipif(host.system() != "Linux" or host.machine() != "x86_64", reason="the expected host")
def test_default_is_this_host() -> None:
    assert platforms.default() == Platform("linux", "amd64")
    m = platforms.default_matcher()
    assert m.match(P("linux/386")) and not m.match(P("linux/arm64"))


@pytest.mark.parametrize(
    ("machine", "arch"),
    [("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm"), ("armv6l", "arm"), ("i686", "386"),
     ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64"), ("loongarch64", "loong64")],
)  # fmt: skip
def test_host_architecture(machine: str, arch: str) -> None:
    assert host_architecture(machine) == arch


PI1 = """processor\t: 0
model name\t: ARMv6-compatible processor rev 7 (v6l)
BogoMIPS\t: 697.95
CPU architecture: 7
CPU variant\t: 0x0
"""
PI4 = """processor\t: 0
model name\t: ARMv7 Processor rev 3 (v7l)
CPU architecture: 7
processor\t: 1
CPU architecture: 8
"""


@pytest.mark.parametrize(
    ("cpuinfo", "arch", "variant"),
    [
        (PI1, "arm", "v6"),  # the kernel says 7; the model name tells the truth
        (PI1, "arm64", "v7"),  # the quirk is only for 32-bit hosts
        (PI4, "arm", "v7"),  # the first core is enough
        ("CPU architecture: 8\n", "arm64", "v8"),
        ("cpu architecture : AArch64\n", "arm64", "v8"),
        ("CPU architecture: 5TEJ\n", "arm", "v5"),
        ("CPU architecture: ?(12)\n", "arm", "v7"),
        ("CPU architecture: 4T\n", "arm", "v4"),
        ("CPU architecture: 9\n", "arm64", "unknown"),
        ("processor: 0\n", "arm", ""),
        ("", "arm", ""),
    ],
)
def test_cpu_variant_from_cpuinfo(cpuinfo: str, arch: str, variant: str) -> None:
    assert cpu_variant(cpuinfo, arch) == variant
