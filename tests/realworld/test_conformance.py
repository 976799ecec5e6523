"""The public installs of ../shared/realworld sync, resync to nothing, upgrade and prune, on
the Kubernetes version the suite runs (`SYNCER_KUBERNETES_VERSION`, else the newest).

One run of every set (`conformance.runner.run_version`: a fresh local control plane per group
of sets), shared by one test per set. A set conforms when syncer did what `conformance.sets`
says a careful user expects on that version: a set using what the server lacks must fail
validation, write nothing and name what is missing; every other set must sync, resync to 0
writes, and upgrade. See `SetResult.problems`. kubectl and kpt are not run here
(`scripts/conformance` runs them for the report). Select with `-m realworld`;
`-m "not cluster"` leaves it out. Set SYNCER_REALWORLD to the corpus when it is not at
../shared/realworld from the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.results import SetResult, VersionResults
from conformance.runner import corpus_root, run_version
from conformance.sets import SETS, expected_on, groups, minor

pytestmark = [pytest.mark.realworld, pytest.mark.cluster, pytest.mark.oldest, pytest.mark.timeout(900)]

CORPUS = corpus_root(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def results() -> VersionResults:
    if not CORPUS.is_dir():
        pytest.skip(f"no real-world corpus at {CORPUS} (set SYNCER_REALWORLD)")
    return run_version(groups(), version=None, corpus=CORPUS, others=False)


@pytest.mark.parametrize(
    "name",
    [pytest.param(s.name, marks=[pytest.mark.xfail(reason=s.engine_issue, strict=True)] if s.engine_issue else [])
     for s in SETS],
)
def test_set_conforms(results: VersionResults, name: str) -> None:
    result: SetResult = results.sets[name]
    assert result.syncer.runs, "syncer did not run"
    assert result.problems == []


def test_what_must_sync_synced(results: VersionResults) -> None:
    """Sets expected to fail only on older servers (podinfo's autoscaling/v2 HPAs, gRPC probes,
    cert-manager's CEL validations on 1.20) sync here when the server serves what they use."""
    version = minor(results.kubernetes)
    must_sync = [s.name for s in SETS if expected_on(s.expect, version) is None and not s.engine_issue]
    fresh = {name: results.sets[name].syncer.run("fresh") for name in must_sync}
    assert [name for name, run in fresh.items() if run is None or not run.ok] == []
