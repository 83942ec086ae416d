"""Each fuzz target: its seeds and regression corpus replayed in-process, then a bounded atheris run.

``make test`` runs a few hundred to a few thousand inputs per target (about
90 s for all four on two CPUs); ``make soak`` runs each for minutes.  A
crashing input fails the test with libFuzzer's report and is left in the
test's directory, to be added to ``regressions/<target>/`` once fixed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from tests.reliability.soak import record, scale

from . import fuzz_archive, fuzz_compression, fuzz_documents, fuzz_tar
from ._harness import fuzz, regressions, replay

# target -> (module, inputs in make test, seconds at most in make test, what the target checks)
TARGETS: dict[str, tuple[ModuleType, int, int, str]] = {
    "fuzz_tar": (
        fuzz_tar,
        2500,
        30,
        "only project errors; nothing beside the root changed; devices and setuid bits only as declared; < 10 s each",
    ),
    "fuzz_compression": (fuzz_compression, 12000, 15, "only InvalidArgument; chunks <= 4 MiB; < 10 s each"),
    "fuzz_documents": (fuzz_documents, 100000, 15, "only project errors; parsed documents valid; < 5 s each"),
    "fuzz_archive": (
        fuzz_archive,
        20000,
        20,
        "only project errors; recorded images' content present; blobs match digests; < 10 s each",
    ),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_and_regressions_hold(target: str) -> None:
    module = TARGETS[target][0]
    if target == "fuzz_tar" and os.geteuid() != 0:
        pytest.skip("applying layers needs root")
    one_input: Callable[[bytes], None] = module.one_input
    seeds: dict[str, bytes] = module.seeds()
    assert seeds, "a target needs real inputs to start from"
    assert replay(one_input, {**seeds, **regressions(target)}) == []


@pytest.mark.timeout(scale(300, 900))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz(target: str, tmp_path: Path) -> None:
    _, runs, seconds, held = TARGETS[target]
    if target == "fuzz_tar" and os.geteuid() != 0:
        pytest.skip("applying layers needs root")
    result = fuzz(target, scale(runs, runs * 200), scale(seconds, 300), tmp_path)
    record(
        area="fuzzing",
        tried=f"{target}: random inputs from seeds",
        count=result.runs,
        held=held,
        problems=len(result.crashes) or (0 if result.ok else 1),
    )
    if not result.ok:
        kept = Path("build") / "fuzz-crashes" / target
        kept.mkdir(parents=True, exist_ok=True)
        for crash in result.crashes:
            shutil.copy(crash, kept / crash.name)
        pytest.fail(f"{target}: {[c.name for c in result.crashes]} (copied to {kept})\n{result.output}")
    assert result.runs > 0
