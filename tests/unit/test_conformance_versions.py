"""What syncer must do with a real-world set depends on the Kubernetes version; the results of
each version are kept as JSON and merged, so one version (or a chunk of sets) can be re-run
alone and the report still shows every version."""

from __future__ import annotations

from pathlib import Path

from conformance.others import kpt_outcome
from conformance.report import differences, newest_first, render_report
from conformance.results import Run, SetResult, ToolResult, VersionResults, load, results_path, save
from conformance.sets import SETS, Expected, expected_on, minor

OLD, NEW = minor("1.20.2"), minor("v1.37.2")


def by_name(name: str) -> tuple[Expected, ...]:
    return next(s.expect for s in SETS if s.name == name)


def test_sets_that_failed_on_1_20_for_newer_apis_must_sync_on_1_37() -> None:
    for name in ("podinfo/kustomize", "podinfo/deploy/webapp", "cert-manager", "fluxcd-ssa-testdata/test6",
                 "microservices-demo/v-new/kustomize", "kapp-examples/istio-v1.16.0"):
        assert expected_on(by_name(name), OLD) is not None, name
        assert expected_on(by_name(name), NEW) is None, name


def test_apis_no_longer_served_fail_only_on_new_servers() -> None:
    for name in ("kube-prometheus", "kapp-examples/jobs", "kapp-examples/istio-v1.12.2"):
        assert expected_on(by_name(name), OLD) is None, name
        assert expected_on(by_name(name), NEW) is not None, name


def test_a_set_can_fail_for_different_reasons_per_version() -> None:
    secure = by_name("podinfo/deploy/secure")
    old, new = expected_on(secure, OLD), expected_on(secure, NEW)
    assert old is not None and new is not None
    assert "autoscaling/v2" in old.contains and "autoscaling/v2" not in new.contains
    assert "ClusterIssuer" in new.contains
    cert_manager = by_name("kapp-examples/cert-manager-v0.15.1")
    assert expected_on(cert_manager, OLD).writes_first  # type: ignore[union-attr]
    assert not expected_on(cert_manager, NEW).writes_first  # type: ignore[union-attr]


def test_version_bounds() -> None:
    before, since = Expected((), "", before="1.23"), Expected((), "", since="1.25")
    assert before.holds_on((1, 22)) and not before.holds_on((1, 23))
    assert not since.holds_on((1, 24)) and since.holds_on((1, 25)) and since.holds_on((1, 37))


def _results(version: str, **sets: SetResult) -> VersionResults:
    return VersionResults(kubernetes=version, tools={"kubectl": "v1.32.4"}, machine="test", sets=dict(sets),
                          group_seconds={"0": 12.0}, updated="now")


def _set(name: str, *, kubectl_fresh: int = 0, kpt_resync_written: int = 0) -> SetResult:
    syncer = ToolResult("syncer", [Run("fresh", 0, 1.0, written=3, created=3), Run("resync", 0, 0.5),
                                   Run("upgrade", 0, 1.0, pruned={"Deployment/ns/old": True})], diff_exit=0)
    kubectl = ToolResult("kubectl", [Run("fresh", kubectl_fresh, 0.4, error="Error from server: omits key field")])
    kpt = ToolResult("kpt", [Run("fresh", 0, 2.0), Run("resync", 0, 2.0, written=kpt_resync_written),
                             Run("upgrade", 0, 2.0, pruned={"Deployment/ns/old": False})])
    return SetResult(name=name, group=0, objects=3, tools={"syncer": syncer, "kubectl": kubectl, "kpt": kpt})


def test_results_survive_the_json_file(tmp_path: Path) -> None:
    results = _results("1.37.2", a=_set("a"))
    path = results_path(tmp_path / "conformance.md", "1.37")
    assert path.name == "conformance-1.37.json"
    save(results, path)
    assert load(path) == results


def test_a_partial_run_replaces_only_its_sets() -> None:
    kept = _results("1.37.2", a=_set("a"), b=_set("b"))
    rerun = _results("1.37.2", b=_set("b", kubectl_fresh=1))
    rerun.group_seconds = {"1": 30.0}
    merged = kept.merge(rerun)
    assert merged.sets["a"] == kept.sets["a"]
    assert merged.sets["b"] == rerun.sets["b"]
    assert merged.group_seconds == {"0": 12.0, "1": 30.0}


def test_differences_name_the_failing_tool_its_error_and_what_it_wrote_or_pruned() -> None:
    found = differences(_set("a", kubectl_fresh=1, kpt_resync_written=2))
    assert any(line.startswith("fresh: kubectl fails") and "omits key field" in line for line in found)
    assert "resync writes: syncer 0, kpt 2" in found
    assert "upgrade pruned: syncer 1, kpt 0" in found
    assert differences(_set("same")) == ["upgrade pruned: syncer 1, kpt 0"]


def test_the_report_shows_every_version_newest_first() -> None:
    old, new = _results("1.20.2", a=_set("a", kubectl_fresh=1)), _results("1.37.2", a=_set("a"))
    text = render_report(newest_first([old, new]), files=["conformance-1.20.json", "conformance-1.37.json"])
    assert text.index("## Kubernetes 1.37.2") < text.index("## Kubernetes 1.20.2")
    assert "| 1.37.2 | 1 | 1 | 0 | 1 / 1 / 1 |" in text
    assert "| 1.20.2 | 1 | 1 | 0 | 1 / 0 / 1 |" in text
    assert "kubectl fails" in text.split("## Kubernetes 1.20.2")[1]


APPLIED = '{"action":"Apply","count":5,"failed":0,"skipped":0,"successful":5,"type":"summary"}'
WAITED = '{"action":"Wait","count":5,"failed":0,"successful":4,"timeout":1,"type":"summary"}'


def test_kpt_timing_out_only_on_readiness_has_applied() -> None:
    assert kpt_outcome(3, f"{APPLIED}\n{WAITED}\n", "") == (0, [])


def test_kpt_failing_an_object_or_a_prune_has_failed_whatever_its_exit_code() -> None:
    failed = ('{"group":"apiextensions.k8s.io","kind":"CustomResourceDefinition","name":"big","namespace":"",'
              '"status":"Failed","error":"Too long","type":"apply"}\n'
              '{"action":"Apply","count":5,"failed":1,"skipped":0,"successful":4,"type":"summary"}\n' + WAITED)
    code, errors = kpt_outcome(3, failed, "")
    assert code == 3 and errors == ["CustomResourceDefinition//big: Too long"]
    assert kpt_outcome(0, failed, "")[0] == 1
    assert kpt_outcome(1, "", "error: found namespace \"default\"\n") == (1, ['error: found namespace "default"'])
