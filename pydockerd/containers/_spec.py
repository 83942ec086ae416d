"""A Docker container's OCI runtime spec, built the way ``pyctr run`` builds one.

containerd's defaults (:func:`pycontainerd.oci.generate`), then the merged
container config as the image config (entrypoint and command, env, working
directory, user looked up in the container's own /etc/passwd), then the host
config: terminal, host name, mounts (binds, tmpfs, and the container's
/etc/hostname, /etc/hosts and /etc/resolv.conf kept in its directory, as
dockerd does), network namespace, memory and CPU limits.  The rootfs is
read for the user lookup only; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pycontainerd import oci
from pycontainerd.errors import InvalidArgument, NotFound

from ._config import HostSettings, env_list

__all__ = ["BRIDGE_WARNING", "CPU_PERIOD", "DEFAULT_ENV_PATH", "ETC_FILES", "build_spec", "network_warning"]

CPU_PERIOD: Final = 100_000
BRIDGE_WARNING: Final = (
    "no bridge network in pydockerd: the container has a private network namespace with loopback only"
)
DEFAULT_ENV_PATH: Final = oci.DEFAULT_PATH_ENV
ETC_FILES: Final = ("hostname", "hosts", "resolv.conf")
CGROUP_MOUNT: Final[Mapping[str, Any]] = {
    "destination": "/sys/fs/cgroup",
    "type": "cgroup",
    "source": "cgroup",
    "options": ["ro", "nosuid", "noexec", "nodev"],
}


def network_warning(settings: HostSettings) -> list[str]:
    """What create answers in ``Warnings`` about the network it gives."""
    if settings.network_mode == "bridge":
        return [BRIDGE_WARNING]
    return []


def process_env(config: Mapping[str, Any], hostname: str) -> list[str]:
    """The process's environment as dockerd makes it: PATH if missing, HOSTNAME."""
    env = env_list(config.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    out = []
    if "PATH" not in keys:
        out.append(DEFAULT_ENV_PATH)
    out.append(f"HOSTNAME={hostname}")
    return out + env  # TERM=xterm comes with the terminal (oci.with_tty)


def build_spec(
    namespace: str,
    id: str,
    config: Mapping[str, Any],
    settings: HostSettings,
    *,
    rootfs: str,
    hostname: str,
    etc_dir: str,
) -> oci.Spec:
    """The spec of container ``id`` from its merged ``config`` and host ``settings``."""
    user = str(config.get("User") or "")
    image_config: dict[str, Any] = {
        "Env": process_env(config, hostname),
        "Entrypoint": config.get("Entrypoint") or [],
        "Cmd": config.get("Cmd") or [],
        "WorkingDir": config.get("WorkingDir") or "",
        "User": config.get("User") or "",
    }
    opts: list[oci.SpecOpt] = [oci.with_image_config({**image_config, "User": ""}, rootfs=rootfs)]
    if user:
        opts.append(with_user(user, rootfs))
    opts.append(oci.with_hostname(hostname))
    if config.get("Tty"):
        opts.append(oci.with_tty())
    targets = {m.target for m in settings.mounts}
    mounts: list[Mapping[str, Any]] = [
        {"destination": f"/etc/{name}", "type": "bind", "source": f"{etc_dir}/{name}", "options": ["rbind", "rprivate"]}
        for name in ETC_FILES
        if f"/etc/{name}" not in targets
    ]
    # As dockerd: a private cgroup namespace, the container's own cgroup read-only at /sys/fs/cgroup.
    mounts.append(CGROUP_MOUNT)
    mounts += [m.to_spec() for m in settings.mounts]
    opts += [oci.with_mounts(mounts), oci.with_linux_namespace("cgroup")]
    if settings.network_mode == "host":
        opts.append(oci.with_host_namespace("network"))
    if settings.memory:
        opts.append(oci.with_memory_limit(settings.memory))
    if settings.nano_cpus:
        opts.append(oci.with_cpu_cfs(settings.nano_cpus * CPU_PERIOD // 1_000_000_000, CPU_PERIOD))
    elif settings.cpu_quota or settings.cpu_period:
        opts.append(oci.with_cpu_cfs(settings.cpu_quota or -1, settings.cpu_period or CPU_PERIOD))
    if settings.cpu_shares:
        opts.append(oci.with_cpu_shares(settings.cpu_shares))
    return oci.generate(namespace, id, *opts)


def etc_files(hostname: str, host_network: bool, host_hosts: str, host_resolv: str) -> dict[str, str]:
    """The contents of the container's /etc/hostname, /etc/hosts and /etc/resolv.conf."""
    if host_network:
        hosts = host_hosts
    else:
        hosts = (
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
            f"127.0.1.1\t{hostname}\n"
        )
    return {"hostname": hostname + "\n", "hosts": hosts, "resolv.conf": host_resolv}


def exec_process(
    spec: Mapping[str, Any], argv: Sequence[str], *, env: Sequence[str], tty: bool, user: str, cwd: str, rootfs: str
) -> dict[str, Any]:
    """An exec's OCI process: the container's own with this command, extra env, terminal, user and cwd.

    ``rootfs`` is where the container's files are seen (``/proc/<pid>/root``), for the user lookup.
    """
    process = dict(spec.get("process") or {})
    process["args"] = list(argv)
    process["terminal"] = tty
    current = [e for e in process.get("env") or [] if isinstance(e, str)]
    extra = env_list(env)
    if tty and not any(e.startswith("TERM=") for e in extra):
        extra = ["TERM=xterm", *extra]
    process["env"] = oci.replace_or_append_env(current, extra)
    if cwd:
        process["cwd"] = cwd
    if user:
        holder: oci.Spec = {"process": {**process, "user": {"uid": 0, "gid": 0}}}
        with_user(user, rootfs)(holder)
        process["user"] = holder["process"]["user"]
    return process


def with_user(user: str, rootfs: str) -> oci.SpecOpt:
    """The user and its groups; an unknown user is the request's fault (400), never a 404 "no such image"."""
    opts = [oci.with_user(user, rootfs=rootfs)]

    def apply(spec: oci.Spec) -> None:
        try:
            oci.apply_opts(spec, opts)
            oci.with_additional_gids(str(spec["process"]["user"]["uid"]), rootfs=rootfs)(spec)
        except NotFound as e:
            raise InvalidArgument(f"unable to find user {user}: {e}") from None

    return apply
