"""The classic builder's executor: a parsed Dockerfile run stage by stage, one image per step.

Each instruction of a stage makes an image on the one before, as Docker's
classic builder does: metadata instructions (ENV, CMD, LABEL, ...) a config
change with an ``empty_layer`` history entry, filesystem ones (RUN, COPY,
ADD, WORKDIR) a layer from their snapshot's diff.  A step first asks the
layer cache (unless ``nocache``); a hit is ``Using cache`` and the same
image ID as before.  Stages are FROM an image (pulled when absent, or always
with ``pull``), ``scratch`` or an earlier stage; ``COPY --from`` reads
another stage's or an image's tree.  Messages go to ``emit`` in Docker's
stream format; a failing step raises, with Docker's wording.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycontainerd.client import Client
from pycontainerd.errors import ContainerdError, InvalidArgument, NotFound
from pycontainerd.mount import Mount, mounted
from pycontainerd.oci import replace_or_append_env

from .._auth import AuthConfig
from .._commit import Committed, ImageBase, ImageCommitter, history_entry
from .._images import ImageService
from .._progress import Message
from .._refs import familiar, parse_docker
from ._cache import LayerCache, cache_key
from ._context import BuildContext
from ._copy import CopyError, Source, copy_sources, find_sources, resolve_chown, scoped, source_digest
from ._parser import Dockerfile, Instruction
from ._run import run_in_container
from ._shell import Expander

__all__ = ["BuildError", "BuildOptions", "Builder"]

DEFAULT_SHELL = ("/bin/sh", "-c")
_PREDEFINED_ARGS = frozenset(
    {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy",
     "ALL_PROXY", "all_proxy"}
)  # fmt: skip
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


class BuildError(InvalidArgument):
    """A build step that failed (its message is Docker's)."""


@dataclass(frozen=True)
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    quiet: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    pull: bool = False
    platform: str = ""
    auth: AuthConfig | None = None


@dataclass
class _Stage:
    name: str
    image: ImageBase
    config: dict[str, Any]
    args: dict[str, str | None] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False
    author: str | None = None
    committed: Committed | None = None  # set once a step of this build made ``image`` (else: the FROM image)


def _short(image_id: str) -> str:
    return image_id.partition(":")[2][:12]


def _duration(text: str, flag: str) -> int:
    total, pos = 0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += int(float(m[1]) * _UNIT_NS[m[2]])
        pos = m.end()
    if pos != len(text) or not text:
        raise BuildError(f"time: invalid duration {text!r} for --{flag}")
    return total


def _split_stages(df: Dockerfile) -> tuple[list[Instruction], list[list[Instruction]]]:
    meta: list[Instruction] = []
    stages: list[list[Instruction]] = []
    for instr in df.instructions:
        if instr.cmd == "FROM":
            stages.append([instr])
        elif stages:
            stages[-1].append(instr)
        else:
            meta.append(instr)
    return meta, stages


class Builder:
    """One build: a Dockerfile over a context, to an image ID."""

    def __init__(
        self,
        client: Client,
        images: ImageService,
        committer: ImageCommitter,
        *,
        options: BuildOptions,
        context: BuildContext,
        emit: Callable[[Message], None],
        cancel: threading.Event,
    ) -> None:
        self.client = client  # holds the build's lease
        self.images = images
        self.committer = committer
        self.options = options
        self.context = context
        self.emit = emit
        self.cancel = cancel
        self.cache = LayerCache(client, committer.snapshotter)
        self.sn = client.snapshotter(committer.snapshotter)
        self.stages: list[_Stage] = []
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.expander = Expander()

    # -- output -------------------------------------------------------------

    def say(self, text: str) -> None:
        if not self.options.quiet:
            self.emit({"stream": text})

    # -- the build ----------------------------------------------------------

    def build(self, df: Dockerfile) -> tuple[str, Committed | None]:
        """Run every stage up to the target; the final image's ID, and its documents if this build made it."""
        self.expander = Expander(df.escape)
        meta, stages = _split_stages(df)
        for instr in meta:
            for word in instr.args:
                name, eq, default = word.partition("=")
                value = self.expander.word(default, {}) if eq else None
                if name in self.options.build_args:
                    value = self.options.build_args[name]
                    self.used_args.add(name)
                self.meta_args[name] = value
        last = len(stages) - 1
        if self.options.target:
            names = [s[0].args[2].lower() if len(s[0].args) == 3 else "" for s in stages]
            if self.options.target.lower() not in names:
                raise BuildError(f"failed to reach build target {self.options.target} in Dockerfile")
            last = names.index(self.options.target.lower())
        todo = stages[: last + 1]
        if self.options.labels:
            pairs = [x for k, v in self.options.labels.items() for x in (k, v)]
            label = Instruction("LABEL", "LABEL " + " ".join(f"{k}={v}" for k, v in self.options.labels.items()), 0)
            todo[-1] = [*todo[-1], Instruction(label.cmd, label.original, 0, tuple(pairs), True)]
        total = sum(len(s) for s in todo)
        step = 0
        for instructions in todo:
            for instr in instructions:
                if self.cancel.is_set():
                    raise BuildError("build cancelled")
                step += 1
                self.say(f"Step {step}/{total} : {instr.original}\n")
                self._dispatch(instr)
        unused = sorted(k for k in self.options.build_args if k not in self.used_args and k not in _PREDEFINED_ARGS)
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        final = self.stages[-1]
        return final.image.id, final.committed

    # -- steps --------------------------------------------------------------

    def _env(self, stage: _Stage) -> dict[str, str]:
        env = {k: v for k, v in stage.args.items() if v is not None}
        for item in stage.config.get("Env") or []:
            k, _, v = str(item).partition("=")
            env[k] = v
        return env

    def _dispatch(self, instr: Instruction) -> None:
        if instr.cmd == "FROM":
            self._from(instr)
            return
        stage = self.stages[-1]
        handler = getattr(self, f"_do_{instr.cmd.lower()}")
        handler(stage, instr)

    def _meta(self, stage: _Stage, created_by: str) -> None:
        """Commit a config-only step (or find it in the cache)."""
        key = cache_key(stage.image.id, created_by, stage.config)
        hit = None if self.options.no_cache else self.cache.lookup(key)
        if hit is not None:
            self.say(" ---> Using cache\n")
            committed = hit
        else:
            entry = history_entry(created_by, empty=True)
            committed = self.committer.write(stage.image, None, stage.config, entry, author=stage.author)
            self.cache.store(key, committed)
        self._advance(stage, committed)

    def _advance(self, stage: _Stage, committed: Committed) -> None:
        stage.image = committed.base
        stage.committed = committed
        self.say(f" ---> {_short(committed.id)}\n")

    def _fs(
        self, stage: _Stage, created_by: str, work: Callable[[str, list[Mount]], None], *, cached_ok: bool = True
    ) -> None:
        """Commit a filesystem step: ``work`` changes an active snapshot of the stage's image."""
        key = cache_key(stage.image.id, created_by, stage.config)
        hit = None if self.options.no_cache or not cached_ok else self.cache.lookup(key)
        if hit is not None:
            self.say(" ---> Using cache\n")
            self._advance(stage, hit)
            return
        snap = f"build-{secrets.token_hex(12)}"
        mounts = self.committer.prepare(snap, stage.image)
        kept = False
        try:
            work(snap, mounts)
            layer = self.committer.diff(snap, stage.image)
            if layer is not None:
                self.committer.keep_snapshot(snap, stage.image, layer)
                kept = True
            entry = history_entry(created_by, empty=layer is None)
            committed = self.committer.write(stage.image, layer, stage.config, entry, author=stage.author)
        finally:
            if not kept:
                with contextlib.suppress(NotFound):
                    self.sn.remove(snap)
        self.cache.store(key, committed)
        self._advance(stage, committed)

    # FROM

    def _image(self, ref: str, platform: str) -> ImageBase:
        """A local image, pulled first when absent (or always with ``pull``)."""
        if not self.options.pull:
            with contextlib.suppress(NotFound):
                view, _, _ = self.images.resolve(ref)
                return self.committer.ensure_unpacked(view)
        job = self.images.prepare_pull(ref, "", platform, self.options.auth)
        self.images.pull(job, (lambda m: None) if self.options.quiet else self.emit)
        view, _, _ = self.images.resolve(str(job.ref))
        return self.committer.ensure_unpacked(view)

    def _stage_by_name(self, name: str) -> _Stage | None:
        lowered = name.lower()
        for s in self.stages:
            if s.name and s.name == lowered:
                return s
        if name.isdigit() and int(name) < len(self.stages):
            return self.stages[int(name)]
        return None

    def _from(self, instr: Instruction) -> None:
        meta_env = {k: v for k, v in self.meta_args.items() if v is not None}
        ref = self.expander.word(instr.args[0], meta_env)
        name = instr.args[2].lower() if len(instr.args) == 3 else ""
        if name and any(s.name == name for s in self.stages):
            raise BuildError(f"duplicate name {name}")
        platform = self.expander.word(instr.flags.get("platform", ""), meta_env) or self.options.platform
        prior = self._stage_by_name(ref) if not ref.isdigit() else None
        if prior is not None:
            base = prior.image
        elif ref.lower() == "scratch":
            base = ImageBase.scratch()
        else:
            if not ref:
                raise BuildError("base name (${...}) should not be blank")
            base = self._image(ref, platform)
        stage = _Stage(name, base, base.config, committed=prior.committed if prior is not None else None)
        shell = base.config.get("Shell")
        if isinstance(shell, list) and shell:
            stage.shell = [str(s) for s in shell]
        self.stages.append(stage)
        self.say(f" ---> {_short(base.id)}\n")

    # metadata instructions

    def _do_arg(self, stage: _Stage, instr: Instruction) -> None:
        env = self._env(stage)
        for word in instr.args:
            name, eq, default = word.partition("=")
            value: str | None = self.expander.word(default, env) if eq else self.meta_args.get(name)
            if name in self.options.build_args:
                value = self.options.build_args[name]
                self.used_args.add(name)
            stage.args[name] = value
        self._meta(stage, f"/bin/sh -c #(nop)  ARG {' '.join(instr.args)}")

    def _do_env(self, stage: _Stage, instr: Instruction) -> None:
        env = self._env(stage)
        current = list(stage.config.get("Env") or [])
        shown = []
        for i in range(0, len(instr.args), 2):
            key = self.expander.word(instr.args[i], env)
            value = self.expander.word(instr.args[i + 1], env)
            current = replace_or_append_env(current, [f"{key}={value}"])
            shown.append(f"{key}={value}")
        stage.config["Env"] = current
        self._meta(stage, f"/bin/sh -c #(nop)  ENV {' '.join(shown)}")

    def _do_label(self, stage: _Stage, instr: Instruction) -> None:
        env = self._env(stage)
        labels = dict(stage.config.get("Labels") or {})
        shown = []
        for i in range(0, len(instr.args), 2):
            if instr.json_form:  # labels given with the request: taken as they are
                key, value = instr.args[i], instr.args[i + 1]
            else:
                key, value = self.expander.word(instr.args[i], env), self.expander.word(instr.args[i + 1], env)
            labels[key] = value
            shown.append(f"{key}={value}")
        stage.config["Labels"] = labels
        self._meta(stage, f"/bin/sh -c #(nop)  LABEL {' '.join(shown)}")

    def _do_maintainer(self, stage: _Stage, instr: Instruction) -> None:
        stage.author = self.expander.word(instr.args[0], self._env(stage))
        self._meta(stage, f"/bin/sh -c #(nop)  MAINTAINER {stage.author}")

    def _do_expose(self, stage: _Stage, instr: Instruction) -> None:
        env = self._env(stage)
        ports = dict(stage.config.get("ExposedPorts") or {})
        shown = []
        for word in instr.args:
            for port in self.expander.words(word, env):
                number, _, proto = port.partition("/")
                first, _, last = number.partition("-")
                if not first.isdigit() or (last and not last.isdigit()):
                    raise BuildError(f"invalid containerPort: {number}")
                key = f"{number}/{(proto or 'tcp').lower()}"
                ports[key] = {}
                shown.append(key)
        stage.config["ExposedPorts"] = ports
        self._meta(stage, f"/bin/sh -c #(nop)  EXPOSE {' '.join(shown)}")

    def _do_volume(self, stage: _Stage, instr: Instruction) -> None:
        env = self._env(stage)
        volumes = dict(stage.config.get("Volumes") or {})
        paths = (
            [self.expander.word(a, env) for a in instr.args]
            if instr.json_form
            else [w for a in instr.args for w in self.expander.words(a, env)]
        )
        for p in paths:
            if not p.strip():
                raise BuildError("VOLUME specified can not be an empty string")
            volumes[p] = {}
        stage.config["Volumes"] = volumes
        self._meta(stage, f"/bin/sh -c #(nop)  VOLUME {paths}")

    def _do_user(self, stage: _Stage, instr: Instruction) -> None:
        stage.config["User"] = self.expander.word(instr.args[0], self._env(stage))
        self._meta(stage, f"/bin/sh -c #(nop)  USER {stage.config['User']}")

    def _do_stopsignal(self, stage: _Stage, instr: Instruction) -> None:
        stage.config["StopSignal"] = self.expander.word(instr.args[0], self._env(stage))
        self._meta(stage, f"/bin/sh -c #(nop)  STOPSIGNAL {stage.config['StopSignal']}")

    def _command(self, stage: _Stage, instr: Instruction) -> list[str]:
        if instr.json_form:
            return list(instr.args)
        return [*stage.shell, instr.args[0] if instr.args else ""]

    def _do_cmd(self, stage: _Stage, instr: Instruction) -> None:
        stage.config["Cmd"] = self._command(stage, instr)
        stage.cmd_set = True
        self._meta(stage, f"/bin/sh -c #(nop)  CMD {_json_list(stage.config['Cmd'])}")

    def _do_entrypoint(self, stage: _Stage, instr: Instruction) -> None:
        stage.config["Entrypoint"] = self._command(stage, instr)
        if not stage.cmd_set:
            stage.config["Cmd"] = None
        self._meta(stage, f"/bin/sh -c #(nop)  ENTRYPOINT {_json_list(stage.config['Entrypoint'])}")

    def _do_shell(self, stage: _Stage, instr: Instruction) -> None:
        if not instr.args:
            raise BuildError("SHELL requires at least one argument")
        stage.shell = list(instr.args)
        stage.config["Shell"] = list(instr.args)
        self._meta(stage, f"/bin/sh -c #(nop)  SHELL {_json_list(stage.shell)}")

    def _do_onbuild(self, stage: _Stage, instr: Instruction) -> None:
        trigger = instr.args[0]
        word = trigger.split(None, 1)[0].upper() if trigger.strip() else ""
        if word in ("ONBUILD", "FROM", "MAINTAINER"):
            raise BuildError(f"{word} isn't allowed as an ONBUILD trigger")
        stage.config["OnBuild"] = [*(stage.config.get("OnBuild") or []), trigger]
        self._meta(stage, f"/bin/sh -c #(nop)  ONBUILD {trigger}")

    def _do_healthcheck(self, stage: _Stage, instr: Instruction) -> None:
        text = instr.args[0].strip()
        kind, _, rest = text.partition(" ")
        if kind.upper() == "NONE":
            if rest.strip() or instr.flags:
                raise BuildError("HEALTHCHECK NONE takes no arguments")
            check: dict[str, Any] = {"Test": ["NONE"]}
        elif kind.upper() == "CMD":
            rest = rest.strip()
            if not rest:
                raise BuildError("Missing command after HEALTHCHECK CMD")
            try:
                parsed = json.loads(rest) if rest.startswith("[") else None
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
                check = {"Test": ["CMD", *parsed]}
            else:
                check = {"Test": ["CMD-SHELL", rest]}
            names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                     "start-interval": "StartInterval"}  # fmt: skip
            for flag, field_ in names.items():
                if flag in instr.flags:
                    check[field_] = _duration(instr.flags[flag], flag)
            if "retries" in instr.flags:
                if not instr.flags["retries"].isdigit():
                    raise BuildError(f"invalid --retries value {instr.flags['retries']!r}")
                check["Retries"] = int(instr.flags["retries"])
        else:
            raise BuildError(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
        stage.config["Healthcheck"] = check
        self._meta(stage, f"/bin/sh -c #(nop)  HEALTHCHECK &{{{check['Test']}}}")

    # filesystem instructions

    def _do_workdir(self, stage: _Stage, instr: Instruction) -> None:
        path = self.expander.word(instr.args[0], self._env(stage))
        workdir = posixpath.normpath(posixpath.join(stage.config.get("WorkingDir") or "/", path))
        stage.config["WorkingDir"] = workdir

        def make(_snap: str, mounts: list[Mount]) -> None:
            with mounted(mounts) as root:
                target = scoped(root, workdir)
                missing = []
                p = target
                while not p.exists() and p != root:
                    missing.append(p)
                    p = p.parent
                for d in reversed(missing):
                    d.mkdir(mode=0o755)

        self._fs(stage, f"/bin/sh -c #(nop) WORKDIR {workdir}", make)

    def _do_run(self, stage: _Stage, instr: Instruction) -> None:
        if instr.flags:
            raise BuildError(f"the --{next(iter(instr.flags))} option requires BuildKit")
        argv = self._command(stage, instr)
        build_env = [f"{k}={v}" for k, v in stage.args.items() if v is not None]
        shown = " ".join(argv)
        created_by = f"|{len(build_env)} {' '.join(build_env)} {shown}" if build_env else shown

        def run(snap: str, mounts: list[Mount]) -> None:
            started: list[str] = []

            def on_start(cid: str) -> None:
                started.append(cid)
                self.say(f" ---> Running in {cid[:12]}\n")

            status = run_in_container(
                self.client,
                self.committer.snapshotter,
                snap,
                mounts,
                config=stage.config,
                argv=argv,
                extra_env=build_env,
                output=self.say,
                on_start=on_start,
                cancel=self.cancel,
            )
            if started:
                self.say(f" ---> Removed intermediate container {started[0][:12]}\n")
            if status != 0:
                raise BuildError(f"The command '{shown}' returned a non-zero code: {status}")

        self._fs(stage, created_by, run)

    def _do_copy(self, stage: _Stage, instr: Instruction) -> None:
        self._copy(stage, instr, extract=False)

    def _do_add(self, stage: _Stage, instr: Instruction) -> None:
        self._copy(stage, instr, extract=True)

    def _copy(self, stage: _Stage, instr: Instruction, *, extract: bool) -> None:
        env = self._env(stage)
        words = [self.expander.word(a, env) for a in instr.args]
        *srcs, dest = words
        for s in srcs:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", s) or s.startswith("git@"):
                raise BuildError(
                    f"{instr.cmd} failed: remote sources ({s}) are not supported: this builder has no network"
                )
        if "chmod" in instr.flags or "link" in instr.flags or "parents" in instr.flags or "exclude" in instr.flags:
            flag = next(f for f in ("chmod", "link", "parents", "exclude") if f in instr.flags)
            raise BuildError(
                f"the --{flag} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
            )
        source = self.expander.word(instr.flags.get("from", ""), env)
        try:
            with self._source_tree(source) as (root, is_context):
                excluded = self.context.excluded if is_context else (lambda _r: False)
                sources = find_sources(root, srcs, excluded, context=is_context)
                digest = source_digest(sources, excluded)
                if not is_context:
                    digest = f"{digest}@{source}"
                chown = self.expander.word(instr.flags.get("chown", ""), env)
                created_by = f"/bin/sh -c #(nop) {instr.cmd} {digest} in {dest} "
                key_extra = f"{created_by}|chown={chown}"
                self._fs(
                    stage,
                    key_extra,
                    lambda _s, m: self._copy_into(
                        m, sources=sources, dest=dest, stage=stage, chown=chown, extract=extract, excluded=excluded
                    ),
                )
        except CopyError as e:
            raise BuildError(f"{instr.cmd} failed: {e.message}") from None

    def _copy_into(
        self,
        mounts: list[Mount],
        *,
        sources: list[Source],
        dest: str,
        stage: _Stage,
        chown: str,
        extract: bool,
        excluded: Callable[[str], bool],
    ) -> None:
        with mounted(mounts) as root:
            owner = resolve_chown(root, chown) if chown else (0, 0)
            copy_sources(
                root, sources, dest, stage.config.get("WorkingDir") or "/", owner, extract=extract, excluded=excluded
            )

    @contextlib.contextmanager
    def _source_tree(self, source: str) -> Any:
        """The tree COPY reads from: the context, or a read-only view of a stage or an image."""
        if not source:
            yield self.context.root, True
            return
        prior = self._stage_by_name(source)
        base = prior.image if prior is not None else self._image(source, self.options.platform)
        if not base.chain_id:
            with tempfile.TemporaryDirectory(prefix="pydockerd-empty-") as empty:
                yield Path(empty), False
            return
        key = f"build-from-{secrets.token_hex(8)}"
        mounts = self.sn.view(key, base.chain_id)
        try:
            with mounted(mounts) as root:
                yield root, False
        finally:
            with contextlib.suppress(ContainerdError):
                self.sn.remove(key)


def _json_list(items: Sequence[str] | None) -> str:
    return json.dumps(list(items or []))


def tag_names(tags: Sequence[str]) -> list[str]:
    """The ``t`` values as references (400 for a bad one), before the build starts."""
    return [familiar(parse_docker(t)) for t in tags]
