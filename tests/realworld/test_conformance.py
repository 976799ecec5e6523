"""The public installs of ../shared/realworld sync, resync to nothing, upgrade and prune.

One run of every set (`conformance.runner.run_all`: a fresh local control plane per group of
sets, then kubectl's pass on another), shared by one test per set. A set conforms when syncer
did what `conformance.sets` says a careful user expects: see `SetResult.problems`.
Select with `-m realworld`; `-m "not cluster"` leaves it out. Set SYNCER_REALWORLD to the
corpus when it is not at ../shared/realworld from the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.runner import SetResult, corpus_root, run_all
from conformance.sets import SETS, groups

pytestmark = [pytest.mark.realworld, pytest.mark.cluster, pytest.mark.oldest, pytest.mark.timeout(900)]

CORPUS = corpus_root(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def results() -> dict[str, SetResult]:
    if not CORPUS.is_dir():
        pytest.skip(f"no real-world corpus at {CORPUS} (set SYNCER_REALWORLD)")
    return {result.set.name: result for result in run_all(groups(), corpus=CORPUS)}


@pytest.mark.parametrize(
    "name",
    [pytest.param(s.name, marks=[pytest.mark.xfail(reason=s.engine_issue, strict=True)] if s.engine_issue else [])
     for s in SETS],
)
def test_set_conforms(results: dict[str, SetResult], name: str) -> None:
    result = results[name]
    assert result.fresh is not None
    assert result.problems == []
