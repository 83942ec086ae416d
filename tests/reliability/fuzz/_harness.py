"""What every fuzz target shares: instrumentation, the standalone runner, bounded runs and replays.

A target is a module with ``one_input(data: bytes) -> None`` (raises
AssertionError, or lets an unexpected exception escape, when an invariant
breaks) and ``seeds() -> dict[str, bytes]`` (real inputs to start from).
It runs three ways:

* ``python -m tests.reliability.fuzz.<target> [libFuzzer flags] [CORPUS...]``
  for long standalone runs (atheris, coverage-guided);
* :func:`fuzz` runs it for a bounded number of inputs in a subprocess
  (libFuzzer may exit the process on a finding, so never inside pytest);
* :func:`replay` feeds it the seeds and the regression corpus in-process.

Only the project's own errors (:class:`pycontainerd.errors.ContainerdError`)
may leave the code under test; :func:`expected` is how targets catch them.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["REGRESSIONS", "FuzzRun", "fuzz", "instrumented", "main", "regressions", "replay"]

REGRESSIONS = Path(__file__).parent / "regressions"
_REPO = Path(__file__).parents[3]


def instrumented() -> contextlib.AbstractContextManager[object]:
    """Around a target's imports of pycontainerd: coverage instrumentation when run as a fuzzing script."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None and main_spec.name.startswith("tests.reliability.fuzz."):
        import atheris

        return atheris.instrument_imports(include=["pycontainerd"])
    return contextlib.nullcontext()


def main(one_input: Callable[[bytes], None], seeds: Callable[[], dict[str, bytes]]) -> None:
    """The standalone fuzzer: libFuzzer's flags and corpus directories from argv; the seeds are added."""
    import atheris

    with tempfile.TemporaryDirectory(prefix="fuzz-seeds-") as d:
        for name, data in seeds().items():
            (Path(d) / name).write_bytes(data)
        argv = [*sys.argv, d] if not any(a.startswith("-runs=") and a == "-runs=0" for a in sys.argv) else sys.argv
        atheris.Setup(argv, one_input)
        atheris.Fuzz()


@dataclass
class FuzzRun:
    runs: int  # inputs libFuzzer ran (seeds included)
    ok: bool
    output: str
    crashes: list[Path] = field(default_factory=list)


_DONE = re.compile(r"^Done (\d+) runs in", re.MULTILINE)
_PROGRESS = re.compile(r"^#(\d+)\s", re.MULTILINE)


def fuzz(target: str, runs: int, max_seconds: int, work: Path, *, timeout_per_input: int = 20) -> FuzzRun:
    """Run ``tests.reliability.fuzz.<target>`` under atheris for at most ``runs`` inputs or ``max_seconds``.

    The corpus grows in ``work/corpus``; a crashing input is written to
    ``work/crashes`` (libFuzzer's ``crash-<sha1>``, ``timeout-…``, ``oom-…``).
    """
    corpus, crashes = work / "corpus", work / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        f"tests.reliability.fuzz.{target}",
        f"-runs={runs}",
        f"-max_total_time={max_seconds}",
        f"-timeout={timeout_per_input}",
        "-rss_limit_mb=1536",
        "-max_len=262144",
        "-print_final_stats=1",
        f"-artifact_prefix={crashes}/",
        str(corpus),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    r = subprocess.run(
        cmd,
        cwd=_REPO,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=max_seconds + 120,
        check=False,
    )
    out = r.stdout + r.stderr
    done = _DONE.search(out)
    count = int(done.group(1)) if done else max((int(n) for n in _PROGRESS.findall(out)), default=0)
    found = sorted(crashes.iterdir())
    return FuzzRun(runs=count, ok=r.returncode == 0 and not found, output=out[-6000:], crashes=found)


def regressions(target: str) -> dict[str, bytes]:
    """The inputs that once broke ``target``, replayed by every test run."""
    d = REGRESSIONS / target
    if not d.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def replay(one_input: Callable[[bytes], None], inputs: dict[str, bytes]) -> list[str]:
    """Feed each input in-process; the names of those that broke an invariant, with the error."""
    failures = []
    for name, data in inputs.items():
        try:
            one_input(data)
        except Exception as e:
            failures.append(f"{name}: {type(e).__name__}: {e}")
    return failures


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A private temporary directory, removed afterwards whatever it holds."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(d)], check=False)
