"""``pyctr images pull/push`` and ``pyctr content fetch``: images to and from registries.

The daemon does the transfer when it can (see :mod:`pycontainerd.client`);
this module turns its progress events into a display: on a terminal, one
rich progress row per blob with its state, bytes and speed; otherwise one
plain line each time a blob changes state, so logs stay readable.  Archives,
rich and the registry client are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .. import platforms
from ..errors import InvalidArgument
from ..reference import parse_normalized
from ._common import BarRows, human_size, parse_labels, progress_display, report, subcommand

if TYPE_CHECKING:
    from ..client import Client, Credentials, RegistryOptions
    from ..images import Image
    from ..transfer import Progress, ProgressFunc

__all__ = ["add_archive_commands", "add_content_commands", "add_image_commands"]

_UNPACK_STATES = frozenset({"unpacking", "unpacked", "already unpacked"})
# A migrated image's layers are compressed before a push or export (pycontainerd.migrate.ondemand).
_COMPRESS_STATES = frozenset({"compressing", "compressed"})
_BLOB_STATES = frozenset(
    {"waiting", "downloading", "uploading", "exporting", "importing", "complete", "already exists", "mounted"}
    | _UNPACK_STATES
    | _COMPRESS_STATES
)
# A layer being unpacked has all its bytes: its bar stays full.
_DONE_STATES = frozenset({"complete", "already exists", "mounted", "compressed"} | _UNPACK_STATES)


class _Lines:
    """Progress as plain lines: top-level events, and each blob's state changes."""

    def __init__(self) -> None:
        self._state: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, p: Progress) -> None:
        with self._lock:
            if p.event not in _BLOB_STATES:
                if p.event != "saved":
                    print(p.event, file=sys.stderr, flush=True)
                return
            if self._state.get(p.name) == p.event:
                return
            self._state[p.name] = p.event
            size = f" ({human_size(p.total)})" if p.total and p.event in _DONE_STATES else ""
            print(f"{p.name}: {p.event}{size}", file=sys.stderr, flush=True)


def _rows(rows: BarRows) -> ProgressFunc:
    def show(p: Progress) -> None:
        if p.event not in _BLOB_STATES:
            if p.event != "saved":
                rows.note(p.event)
            return
        completed = p.total if p.event in _DONE_STATES else p.progress
        rows.update(p.name, _short(p.name), state=p.event, completed=completed, total=p.total or None)

    return show


def _display(quiet: bool) -> AbstractContextManager[ProgressFunc | None]:
    return progress_display(quiet, _Lines, _rows, state_width=14)


def _short(name: str) -> str:
    kind, _, digest = name.partition("-")
    return f"{kind}-{digest.partition(':')[2][:12]}" if digest else name


def _credentials(args: argparse.Namespace) -> Credentials | None:
    """``--user`` for every host, else the Docker CLI's config file."""
    from ..remotes.docker import credentials_from_docker_config

    if args.user:
        user, sep, password = args.user.partition(":")
        if not user:
            raise InvalidArgument("--user needs a user name: USER[:PASSWORD]")
        if not sep:
            if not sys.stdin.isatty():
                raise InvalidArgument("--user without a password needs a terminal to ask for it")
            import getpass

            password = getpass.getpass(f"Password for {user}: ")
        return lambda host: (user, password)
    return credentials_from_docker_config()


def _registry(args: argparse.Namespace) -> RegistryOptions:
    from ..client import RegistryOptions

    return RegistryOptions(plain_http=args.plain_http, credentials=_credentials(args), hosts_dir=args.hosts_dir)


def _platforms(args: argparse.Namespace) -> list[platforms.Platform]:
    return [platforms.parse(p) for spec in args.platform for p in spec.split(",") if p]


def _pull_and_print(
    client: Client,
    args: argparse.Namespace,
    ps: list[platforms.Platform],
    every: bool,
    metadata: bool,
    *,
    unpack: bool = False,
) -> int:
    with _display(args.quiet) as progress:
        image = client.pull(
            args.ref,
            platforms=ps,
            all_platforms=every,
            all_metadata=metadata,
            registry=_registry(args),
            labels=parse_labels(args.label),
            progress=progress,
            local=args.local,
            unpack=unpack,
            snapshotter=args.snapshotter,
        )
    print(f"{image.name} {image.target.digest}")
    return 0


def _pull(client: Client, args: argparse.Namespace) -> int:
    """Fetch an image and all it needs for the platforms asked (default: this host)."""
    if args.all_platforms and args.platform:
        raise InvalidArgument("--platform and --all-platforms cannot be used together")
    # Unpacked is the first platform asked for, or this host's (with --all-platforms too).
    ps = _platforms(args)
    return _pull_and_print(client, args, ps, args.all_platforms, not args.skip_metadata, unpack=not args.skip_unpack)


def _fetch(client: Client, args: argparse.Namespace) -> int:
    """Fetch every platform of an image (or those asked) and record it, as ``ctr content fetch`` does."""
    ps = _platforms(args)
    return _pull_and_print(client, args, ps, not ps, False)


def _push(client: Client, args: argparse.Namespace) -> int:
    with _display(args.quiet) as progress:
        client.push(
            args.ref,
            args.local_ref or "",
            platforms=_platforms(args),
            registry=_registry(args),
            progress=progress,
            local=args.local,
        )
    return 0


def _export(client: Client, args: argparse.Namespace) -> int:
    """Write images to a tar file, replacing FILE only once the archive is complete."""
    import tempfile

    from ..archive import ExportOptions, export

    if args.all_platforms and args.platform:
        raise InvalidArgument("--platform and --all-platforms cannot be used together")
    ps = _platforms(args)
    if args.all_platforms:
        matcher: platforms.Matcher = platforms.ALL
    else:
        matcher = platforms.ordered(*ps) if ps else platforms.default_matcher()
    records = [client.images.get(str(parse_normalized(ref))) for ref in args.refs]
    if args.file == "-":
        with _display(args.quiet) as progress:
            records = _with_blobs(client, records, progress)
            export(
                client.content,
                records,
                sys.stdout.buffer,
                ExportOptions(args.format, matcher, progress=progress or _ignore),
            )
        sys.stdout.buffer.flush()
        return 0
    directory = os.path.dirname(os.path.abspath(args.file))
    fd, tmp = tempfile.mkstemp(prefix=".pyctr-export-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, _display(args.quiet) as progress:
            records = _with_blobs(client, records, progress)
            export(client.content, records, out, ExportOptions(args.format, matcher, progress=progress or _ignore))
        os.replace(tmp, args.file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return 0


def _with_blobs(client: Client, records: list[Image], progress: ProgressFunc | None) -> list[Image]:
    """The records with the layer blobs of migrated images made (here: the views are mounted by this process)."""
    from ..migrate.ondemand import materialize

    return [materialize(client, record, progress=progress) for record in records]


def _import(client: Client, args: argparse.Namespace) -> int:
    """Read images from an OCI layout or Docker archive (``-``: stdin) and record them."""
    import shutil
    import tempfile

    from ..archive import ImportOptions, import_archive

    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(_display(args.quiet))
        opts = ImportOptions(
            base_name=args.base_name,
            index_name=args.index_name,
            matcher=platforms.ALL if not args.platform else platforms.ordered(*_platforms(args)),
            labels=parse_labels(args.label),
            progress=progress or _ignore,
        )
        if args.file == "-":
            src: Any = stack.enter_context(tempfile.TemporaryFile())
            shutil.copyfileobj(sys.stdin.buffer, src, 1 << 20)
            src.seek(0)
        else:
            try:
                src = stack.enter_context(open(args.file, "rb"))
            except OSError as e:
                raise InvalidArgument(f"{args.file}: {e.strerror}") from None
        leased = stack.enter_context(client.lease())
        images = import_archive(leased.content, leased.images, src, opts)
    for image in images:
        print(f"{image.name} {image.target.digest}")
    if not images:
        report("the archive holds no named image (name them with --base-name or --index-name)")
        return 1
    return 0


def _ignore(_: Progress) -> None:
    pass


def _registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS (localhost always may)")
    p.add_argument("-u", "--user", default="", metavar="USER[:PASSWORD]", help="registry credentials")
    p.add_argument(
        "--hosts-dir",
        default="",
        metavar="DIR",
        help="per-registry mirrors, CAs and settings: DIR/<host>/hosts.toml, *.crt",
    )
    p.add_argument("--local", action="store_true", help="transfer in this process, not in the daemon")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--platform", action="append", default=[], metavar="OS/ARCH[/VARIANT]", help="a platform (repeatable)"
    )


def add_image_commands(images: Any) -> None:
    p = subcommand(images, "pull", _pull, "fetch an image from a registry and record it")
    _registry_flags(p)
    p.add_argument("--all-platforms", action="store_true", help="every platform of the image")
    p.add_argument("--skip-metadata", action="store_true", help="only the wanted platforms' manifests and configs")
    p.add_argument("--skip-unpack", action="store_true", help="fetch only; do not unpack into the snapshotter")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="label the image record")
    p.add_argument("ref", metavar="REF")
    p = subcommand(images, "push", _push, "push an image and everything it references to a registry")
    _registry_flags(p)
    p.add_argument("ref", metavar="REMOTE")
    p.add_argument("local_ref", nargs="?", metavar="LOCAL", help="the image to push (default: REMOTE)")


def add_archive_commands(images: Any) -> None:
    p = subcommand(images, "export", _export, "write images to a tar archive (OCI layout or docker save format)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--format", choices=("oci", "docker"), default="oci", help="archive format (default: oci)")
    p.add_argument("--all-platforms", action="store_true", help="every platform (all must be in the store)")
    p.add_argument(
        "--platform", action="append", default=[], metavar="OS/ARCH[/VARIANT]", help="a platform (repeatable)"
    )
    p.add_argument("file", metavar="FILE", help="the archive to write; - for stdout")
    p.add_argument("refs", nargs="+", metavar="REF")
    p = subcommand(images, "import", _import, "read images from a tar archive (OCI layout or docker save format)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--base-name", default="", metavar="NAME", help="name for entries that carry only a tag")
    p.add_argument("--index-name", default="", metavar="NAME", help="also record the archive's index as NAME")
    p.add_argument("--platform", action="append", default=[], metavar="OS/ARCH[/VARIANT]", help="only these platforms")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="label the image records")
    p.add_argument("file", metavar="FILE", help="the archive to read; - for stdin")


def add_content_commands(content: Any) -> None:
    p = subcommand(content, "fetch", _fetch, "fetch every platform of an image (or those asked) into the store")
    _registry_flags(p)
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="label the image record")
    p.add_argument("ref", metavar="REF")
