"""The work the benchmarks time: ``ctr`` runs and raw gRPC calls against one daemon.

Every function here does one measured thing once and returns seconds; the
runner repeats them, interleaving the daemons so a burst of load on the
machine lands on both alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import types
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.daemons import CTR
from pycontainerd.api.services.content.v1 import content_pb2, content_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2, images_pb2_grpc
from pycontainerd.api.services.leases.v1 import leases_pb2, leases_pb2_grpc
from pycontainerd.api.types import descriptor_pb2

NAMESPACE = "default"
LEASE = "bench-list"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 4 << 20
RPC_TIMEOUT = 60.0
MAX_MESSAGE = 64 << 20


class BenchmarkError(Exception):
    """A daemon failed or answered wrongly, so this benchmark has no number for it."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """A file on disk and the content descriptor it will have once ingested."""

    path: Path
    size: int
    digest: str


def make_random_file(path: Path, size: int) -> Blob:
    """Write ``size`` bytes of incompressible, reproducible data to ``path``.

    SHAKE-128 output is as random as the content store can tell and several
    times faster than ``os.urandom`` here.
    """
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        index = 0
        while index * CHUNK < size:
            block = hashlib.shake_128(b"pycontainerd-bench-%d" % index).digest(min(CHUNK, size - index * CHUNK))
            digest.update(block)
            f.write(block)
            index += 1
    return Blob(path=path, size=size, digest="sha256:" + digest.hexdigest())


def _ctr_env() -> dict[str, str]:
    """The environment minus anything that would point ``ctr`` elsewhere than ``-a``/``-n``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}


def ctr(
    address: str, *args: str, stdin: int | None = None, capture: bool = False, timeout: float = 600.0
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run ``ctr -a address -n default args``; return its wall time and result.

    Raises :class:`BenchmarkError` if it exits non-zero.  Uncaptured output
    goes to ``/dev/null`` so terminal speed never enters a measurement.
    """
    argv = [str(CTR), "-a", address, "-n", NAMESPACE, *args]
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=_ctr_env(),
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-1000:]
        raise BenchmarkError(f"`ctr {' '.join(args)}` exited {done.returncode}: {err}")
    return elapsed, done


class Client:
    """gRPC stubs over one long-lived channel to a daemon, in namespace ``default``."""

    def __init__(self, address: str) -> None:
        options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
        self.channel = grpc.insecure_channel(f"unix:{address}", options=options)
        self.content = content_pb2_grpc.ContentStub(self.channel)
        self.images = images_pb2_grpc.ImagesStub(self.channel)
        self.leases = leases_pb2_grpc.LeasesStub(self.channel)
        self.metadata: tuple[tuple[str, str], ...] = (("containerd-namespace", NAMESPACE),)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | types.TracebackType | None) -> None:
        self.channel.close()

    def size_of(self, digest: str) -> int:
        """The stored size of blob ``digest`` (Content.Info)."""
        request = content_pb2.InfoRequest(digest=digest)
        return int(self.content.Info(request, metadata=self.metadata, timeout=RPC_TIMEOUT).info.size)

    def write_blob(self, data: bytes, labels: dict[str, str], metadata: tuple[tuple[str, str], ...]) -> str:
        """Store ``data`` the way containerd's own proxy writer does: STAT, WRITE, COMMIT on one stream."""
        digest = sha256_digest(data)
        ref = f"bench-{digest[7:31]}"
        requests = [
            content_pb2.WriteContentRequest(action=content_pb2.STAT, ref=ref, total=len(data), expected=digest),
            content_pb2.WriteContentRequest(action=content_pb2.WRITE, ref=ref, offset=0, data=data),
            content_pb2.WriteContentRequest(
                action=content_pb2.COMMIT, ref=ref, total=len(data), offset=len(data), expected=digest, labels=labels
            ),
        ]
        replies = list(self.content.Write(iter(requests), metadata=metadata, timeout=RPC_TIMEOUT))
        if not replies or replies[-1].digest != digest:
            got = replies[-1].digest if replies else "no reply"
            raise BenchmarkError(f"writing {digest} committed {got!r}")
        return digest


def ingest(client: Client, address: str, blob: Blob, ref: str) -> float:
    """Time ``ctr content ingest ref < blob``, check the blob arrived whole, then delete it.

    No expected digest is passed: given one, a daemon may skip the transfer
    for content it still holds (containerd does, for a blob removed from the
    namespace but not yet garbage collected).  For the same reason the blob
    is collected synchronously after its removal, so every run starts clean.
    """
    with open(blob.path, "rb") as f:
        elapsed, _ = ctr(address, "content", "ingest", "--expected-size", str(blob.size), ref, stdin=f.fileno())
    try:
        stored = client.size_of(blob.digest)
    except grpc.RpcError as exc:
        raise BenchmarkError(f"ingested blob {blob.digest} missing: {exc.code()} {exc.details()}") from exc
    if stored != blob.size:
        raise BenchmarkError(f"ingested blob has size {stored}, expected {blob.size}")
    ctr(address, "content", "rm", blob.digest)
    collect_garbage(client)
    return elapsed


def collect_garbage(client: Client) -> None:
    """Make the daemon collect garbage now: deleting a lease with ``sync`` waits for a collection."""
    lease = f"bench-gc-{time.time_ns()}"
    client.leases.Create(leases_pb2.CreateRequest(id=lease), metadata=client.metadata, timeout=RPC_TIMEOUT)
    client.leases.Delete(leases_pb2.DeleteRequest(id=lease, sync=True), metadata=client.metadata, timeout=RPC_TIMEOUT)


@dataclass(frozen=True)
class Population:
    """What :func:`populate` stored, and how long it took (setup, not a benchmark)."""

    images: int
    blobs: int
    seconds: float


def _config_blob() -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
    }
    return json.dumps(config, sort_keys=True).encode()


def _manifest_blob(index: int, config_digest: str, config_size: int) -> bytes:
    layer = hashlib.sha256(b"layer-%d" % index).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": LAYER_TYPE, "digest": "sha256:" + layer, "size": 1024 * (index + 1)}],
        "annotations": {"org.opencontainers.image.ref.name": f"img-{index:04d}"},
    }
    return json.dumps(manifest, sort_keys=True).encode()


def populate(client: Client, count: int) -> Population:
    """Store ``count`` images, each with its own OCI manifest; all share one config blob.

    Everything is written under a lease, as a pull would, so the daemon's
    garbage collector cannot take content between its write and the image
    that roots it; manifests carry the ``gc.ref`` label to their config.
    """
    started = time.perf_counter()
    client.leases.Create(leases_pb2.CreateRequest(id=LEASE), metadata=client.metadata, timeout=RPC_TIMEOUT)
    leased = (*client.metadata, ("containerd-lease", LEASE))
    config = _config_blob()
    config_digest = client.write_blob(config, {}, leased)
    for index in range(count):
        manifest = _manifest_blob(index, config_digest, len(config))
        labels = {"containerd.io/gc.ref.content.config": config_digest}
        digest = client.write_blob(manifest, labels, leased)
        target = descriptor_pb2.Descriptor(media_type=MANIFEST_TYPE, digest=digest, size=len(manifest))
        image = images_pb2.Image(name=f"bench/img-{index:04d}:latest", target=target)
        client.images.Create(images_pb2.CreateImageRequest(image=image), metadata=leased, timeout=RPC_TIMEOUT)
    return Population(images=count, blobs=count + 1, seconds=time.perf_counter() - started)


def check_listing(address: str, what: str, expected_rows: int) -> list[str]:
    """Run ``ctr <what> ls`` once (a warm-up), check its row count; return anything it logged."""
    _, done = ctr(address, what, "ls", capture=True)
    rows = len(done.stdout.decode(errors="replace").splitlines()) - 1
    if rows != expected_rows:
        raise BenchmarkError(f"`ctr {what} ls` listed {rows} rows, expected {expected_rows}")
    logged = done.stderr.decode(errors="replace").strip().splitlines()
    return [f"`ctr {what} ls` logged: {line[:300]}" for line in logged[:3]]


def ctr_list(address: str, what: str) -> float:
    """Wall time of one ``ctr <what> ls`` process."""
    return ctr(address, what, "ls")[0]


def rpc_images_list(client: Client, expected: int) -> float:
    """Latency of one Images.List over an open channel."""
    started = time.perf_counter()
    reply = client.images.List(images_pb2.ListImagesRequest(), metadata=client.metadata, timeout=RPC_TIMEOUT)
    elapsed = time.perf_counter() - started
    if len(reply.images) != expected:
        raise BenchmarkError(f"Images.List returned {len(reply.images)} images, expected {expected}")
    return elapsed


def rpc_content_list(client: Client, expected: int) -> float:
    """Latency of one Content.List (a server stream, read to its end) over an open channel."""
    started = time.perf_counter()
    stream = client.content.List(content_pb2.ListContentRequest(), metadata=client.metadata, timeout=RPC_TIMEOUT)
    count = sum(len(reply.info) for reply in stream)
    elapsed = time.perf_counter() - started
    if count != expected:
        raise BenchmarkError(f"Content.List returned {count} blobs, expected {expected}")
    return elapsed
