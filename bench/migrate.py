"""The migration benchmark: ``pyctr migrate docker`` of a Docker root against ``docker save`` of its images.

Issue 9's target: migrating a store that holds a large image (about 1 GB,
tens of thousands of files) takes at most the time ``docker save`` takes
for the same images on the same machine, since both rebuild every layer's
tar stream from tar-split and write its bytes out once: save into its
archive, the migration into the files of the snapshot it makes (it stores
only each layer's small tar-split record beside it; blobs for a push are
made when one is asked for, see :mod:`pycontainerd.migrate.ondemand`).

The image is made here from this machine's own files (the directories of
:data:`bench.unpack.FILE_SOURCES`, one layer each) as a ``docker save``
archive and given to a private Debian dockerd with ``docker load``: no
network.  Each run then times ``docker save -o`` of every tag into a file
beside the root (dockerd running), stops dockerd, and times ``pyctr
migrate docker -q`` of the stopped root into a pycontainerd started on a
fresh root for that run, the two in alternating order; dockerd is started
again on the same root for the next run.  Caches are dropped before each
timing with ``--cold``.  Prints each time, the medians and their ratio
(migrate / save; the target is ≤ 1.0).

File creation is what the two differ in (the save creates one file, the
migration tens of thousands), and on these machines creating files right
after tens of thousands were deleted is many times slower (see
:mod:`bench.freshfs`), so each migration gets a new file system for the
pycontainerd root it writes, as each pull of the pull benchmark does; the
Docker root and the save's archive stay on the shared disk.

Run as root: ``.venv/bin/python -m bench.migrate [--runs N] [--cold]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import daemons
from bench.daemons import PYCONTAINERD_NAME, scratch
from bench.engines import Engine, EngineUnavailable, _spawn, _terminate, _wait_ping, dockerd, kill_mentioning
from bench.freshfs import fresh_fs
from bench.unpack import FILE_SOURCES
from bench.workloads import BenchmarkError

PYCTR = daemons.REPO / ".venv" / "bin" / "pyctr"
TAGS = ("bench/files:1", "bench/files:latest")
LOAD_TIMEOUT = 1800.0
RUN_TIMEOUT = 3600.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _layer(work: Path, source: Path, arcname: str) -> tuple[Path, str, int]:
    """An uncompressed tar of ``source`` under ``arcname``; its path, diff id and file count."""
    files = 0

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        nonlocal files
        if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
            return None
        files += 1
        return info

    path = work / f"layer-{arcname.replace('/', '_')}.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(source, arcname=arcname, filter=keep)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
    return path, "sha256:" + h.hexdigest(), files


def save_archive(work: Path) -> tuple[Path, int, int]:
    """A ``docker save`` archive of one image (layers from this machine's files) tagged :data:`TAGS`.

    Returns the archive, the layers' bytes and their files.
    """
    layers = [_layer(work, Path(s), s.lstrip("/")) for s in FILE_SOURCES if Path(s).is_dir()]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d, _ in layers]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": list(TAGS), "Layers": [p.name for p, _, _ in layers]}]
    archive = work / "image.tar"
    with tarfile.open(archive, "w") as out:
        for name, data in ((config_name, config), ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        for path, _, _ in layers:
            out.add(path, arcname=path.name)
            path.unlink()
    return archive, archive.stat().st_size, sum(n for _, _, n in layers)


def drop_caches() -> None:
    os.sync()
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def stop(engine: Engine) -> None:
    """dockerd and its containerd stopped; the root stays for the migration to read."""
    for proc in engine.procs:
        _terminate(proc)
    kill_mentioning(engine.base)


def restart(engine: Engine) -> None:
    """dockerd again on the same root, as :func:`bench.engines.dockerd` started it (which still owns the directory)."""
    launched = time.monotonic()
    argv = [str(a) for a in engine.procs[0].args]  # type: ignore[union-attr]
    engine.procs[:] = [_spawn(argv, engine.log, engine.base)]
    _wait_ping(engine, launched)


def time_save(engine: Engine, out: Path, cold: bool) -> float:
    if cold:
        drop_caches()
    seconds, _ = engine.docker("save", "-o", str(out), *TAGS, timeout=RUN_TIMEOUT)
    size = out.stat().st_size
    out.unlink()
    log(f"docker save: {seconds:.1f} s ({size / 1e6:,.0f} MB archive)")
    return seconds


def time_migrate(root: Path, cold: bool) -> float:
    """``pyctr migrate docker`` of ``root`` into a pycontainerd on a fresh root on a file system of its own."""
    with fresh_fs() as fs:
        base = fs / "pycontainerd"
        base.mkdir()
        daemon = daemons.launch(PYCONTAINERD_NAME, base)
        try:
            daemons.wait_ready(daemon)
            if cold:
                drop_caches()
            argv = [str(PYCTR), "-a", daemon.address, "migrate", "docker", "-q", "--from", str(root)]
            started = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise BenchmarkError(f"pyctr migrate docker exited {done.returncode}: {done.stdout}{done.stderr}")
            log(f"pyctr migrate docker: {seconds:.1f} s ({done.stdout.strip().splitlines()[-1]})")
            return seconds
        finally:
            daemons.stop(daemon)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.migrate", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="timings of each (default 1)")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each timing")
    args = parser.parse_args(argv)
    saves: list[float] = []
    migrations: list[float] = []
    with scratch("bench-migrate-") as work:
        log("making the image's archive from this machine's files")
        archive, size, files = save_archive(work)
        log(f"archive: {size / 1e6:,.0f} MB, {files:,} files")
        engine_parent = work / "engine"
        engine_parent.mkdir()
        try:
            with dockerd("127.0.0.1:1", engine_parent) as engine:
                seconds, _ = engine.docker("load", "-q", "-i", str(archive), timeout=LOAD_TIMEOUT)
                archive.unlink()
                log(f"docker load: {seconds:.1f} s")
                for run in range(args.runs):
                    save_first = run % 2 == 0
                    if save_first:
                        saves.append(time_save(engine, work / "saved.tar", args.cold))
                    stop(engine)
                    migrations.append(time_migrate(engine.base / "root", args.cold))
                    if not save_first or run + 1 < args.runs:
                        restart(engine)
                    if not save_first:
                        saves.append(time_save(engine, work / "saved.tar", args.cold))
        except (EngineUnavailable, daemons.DaemonUnavailable, BenchmarkError) as exc:
            print(f"bench.migrate: {exc}", file=sys.stderr)
            return 1
    save, migrate = statistics.median(saves), statistics.median(migrations)
    print(f"image: {size / 1e6:,.0f} MB, {files:,} files, {len(TAGS)} tags; {args.runs} run(s), cold={args.cold}")
    print(f"docker save (dockerd 20.10):  {save:7.1f} s")
    print(f"pyctr migrate docker:         {migrate:7.1f} s")
    print(f"ratio migrate / save:         {migrate / save:7.2f}x (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
