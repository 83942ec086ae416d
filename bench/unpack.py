"""Pull-and-unpack and snapshot latency, side by side against containerd.

Two images are built here, from this machine's own files, and pushed to the
private registry:

* ``files``: one gzip layer (level 6, as Docker writes them) per directory
  of :data:`FILE_SOURCES` that exists here, about 1 GB and tens of
  thousands of files in all;
* ``debian``: a minimal Debian bookworm root made with debootstrap from the
  Debian mirror this machine reaches (skipped, with a note, when
  debootstrap or the mirror is not there).

Each pull starts from an empty store: the daemon is started for it on a
file system of its own (see :mod:`bench.freshfs`), and checked afterwards
to have recorded and unpacked the image.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import registry, workloads

FILE_SOURCES = (
    "/usr/include",
    "/usr/lib/python3",
    "/usr/share/doc",
    "/usr/share/locale",
    "/usr/lib/x86_64-linux-gnu",
)
DEBOOTSTRAP = Path("/usr/sbin/debootstrap")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _layer_from_dir(layout: Path, source: Path, arcname: str) -> tuple[dict[str, object], str, int, int]:
    """A tar+gzip layer of ``source`` placed at ``arcname``; descriptor, diff id, bytes and files."""
    raw = layout / "layer.tar"
    files = 0
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as tar:

        def count(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            nonlocal files
            if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
                return None
            files += 1
            return info

        tar.add(source, arcname=arcname, filter=count)
    diff_id = _sha_file(raw)
    size = raw.stat().st_size
    gz = layout / "layer.tar.gz"
    with (
        open(raw, "rb") as src,
        open(gz, "wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as dst,
    ):
        shutil.copyfileobj(src, dst, 4 << 20)
    raw.unlink()
    digest = _sha_file(gz)
    blob = layout / "blobs" / "sha256" / digest.split(":")[1]
    os.replace(gz, blob)
    return {"mediaType": LAYER_TYPE, "digest": digest, "size": blob.stat().st_size}, diff_id, size, files


def push_dirs_image(host: str, work: Path, name: str, sources: Sequence[tuple[Path, str]]) -> tuple[str, int, int]:
    """Push an image with one layer per (directory, path in image); returns ref, uncompressed bytes, files."""
    layout = work / name
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    descs, diff_ids, total, files = [], [], 0, 0
    for source, arcname in sources:
        desc, diff_id, size, n = _layer_from_dir(layout, source, arcname)
        descs.append(desc)
        diff_ids.append(diff_id)
        total += size
        files += n
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    ref = registry.push_layout(host, layout, config, descs, repository=f"bench/{name}")
    return ref, total, files


def build_files_image(host: str, work: Path) -> tuple[str, int, int]:
    sources = [(Path(s), s.lstrip("/")) for s in FILE_SOURCES if Path(s).is_dir()]
    return push_dirs_image(host, work, "files", sources)


def build_debian_image(host: str, work: Path) -> tuple[str, int, int]:
    """debootstrap a minimal bookworm and push it as one layer; OSError when that cannot be done here."""
    if not DEBOOTSTRAP.exists():
        raise OSError(f"{DEBOOTSTRAP} is not installed")
    root = work / "debian-root"
    done = subprocess.run(
        [str(DEBOOTSTRAP), "--variant=minbase", "bookworm", str(root), DEBIAN_MIRROR],
        capture_output=True,
        timeout=1200,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(f"debootstrap failed: {done.stderr.decode(errors='replace')[-300:]}")
    try:
        return push_dirs_image(host, work, "debian", [(root, ".")])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def pull_seconds(argv: Sequence[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, timeout=1800, check=False, env=workloads._ctr_env())
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise workloads.BenchmarkError(f"`{' '.join(argv[:6])} …` exited {done.returncode}: {done.stderr[-500:]!r}")
    return seconds


def check_unpacked(address: str, root: Path, ref: str) -> None:
    """The pull left ``ref`` recorded and unpacked: its snapshots committed, their trees on disk under ``root``."""
    _, images = workloads.ctr(address, "images", "ls", "-q", capture=True)
    if ref not in images.stdout.decode().split():
        raise workloads.BenchmarkError(f"{ref} is not listed after its pull")
    _, listing = workloads.ctr(address, "snapshots", "ls", capture=True)
    rows = [r.split() for r in listing.stdout.decode().splitlines()[1:]]
    if not rows or any(r[-1] != "Committed" for r in rows):
        raise workloads.BenchmarkError(f"snapshots after pulling {ref}: {rows[:3]}")
    snapshots = root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots"
    if len(list(snapshots.iterdir())) < len(rows):
        raise workloads.BenchmarkError(f"{snapshots} holds fewer trees than the {len(rows)} snapshots listed")


def _disk_activity() -> tuple[int, ...]:
    """Per block device: sectors written and discarded so far, and I/Os in flight (/proc/diskstats)."""
    out: list[int] = []
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 17 and not fields[2].startswith(("loop", "ram")):
                out += [int(fields[9]), int(fields[11]), int(fields[16])]
    return tuple(out)


def wait_disk_idle(quiet: float = 1.0, limit: float = 60.0) -> None:
    """Wait until no block device has written or discarded anything for ``quiet`` seconds (at most ``limit``).

    Deleting a gigabyte of files goes on in the kernel (journal commits,
    discards) after the daemon's call returns; a pull timed meanwhile would
    pay for the previous one.
    """
    deadline = time.monotonic() + limit
    last = _disk_activity()
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = _disk_activity()
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return


def snapshot_latency(client: workloads.Client, runs: int) -> tuple[float, float]:
    """Median milliseconds of Prepare+Mounts+Remove on an empty parent, and of Commit of a small active snapshot."""
    from pycontainerd.api.services.snapshots.v1 import snapshots_pb2 as spb
    from pycontainerd.api.services.snapshots.v1 import snapshots_pb2_grpc as spb_grpc

    stub = spb_grpc.SnapshotsStub(client.channel)
    md = client.metadata
    sn = "overlayfs"
    pmr: list[float] = []
    commits: list[float] = []
    root_label = {"containerd.io/gc.root": "bench"}
    stub.Prepare(spb.PrepareSnapshotRequest(snapshotter=sn, key="bench-base-a", labels=root_label), metadata=md)
    stub.Commit(
        spb.CommitSnapshotRequest(snapshotter=sn, name="bench-base", key="bench-base-a", labels=root_label), metadata=md
    )
    try:
        for i in range(runs):
            key = f"bench-{i}"
            t0 = time.perf_counter()
            stub.Prepare(
                spb.PrepareSnapshotRequest(snapshotter=sn, key=key, parent="bench-base", labels=root_label), metadata=md
            )
            stub.Mounts(spb.MountsRequest(snapshotter=sn, key=key), metadata=md)
            stub.Remove(spb.RemoveSnapshotRequest(snapshotter=sn, key=key), metadata=md)
            pmr.append((time.perf_counter() - t0) * 1000)
            stub.Prepare(
                spb.PrepareSnapshotRequest(snapshotter=sn, key=key, parent="bench-base", labels=root_label), metadata=md
            )
            t0 = time.perf_counter()
            stub.Commit(
                spb.CommitSnapshotRequest(snapshotter=sn, name=key + "-c", key=key, labels=root_label), metadata=md
            )
            commits.append((time.perf_counter() - t0) * 1000)
            stub.Remove(spb.RemoveSnapshotRequest(snapshotter=sn, key=key + "-c"), metadata=md)
    finally:
        stub.Remove(spb.RemoveSnapshotRequest(snapshotter=sn, key="bench-base"), metadata=md)
    pmr.sort()
    commits.sort()
    return pmr[len(pmr) // 2], commits[len(commits) // 2]
