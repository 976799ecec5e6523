"""The benchmark's verdicts: the targets and the linearity check decide correctly on made-up
measurements, so a report's "met" means what it says."""

from __future__ import annotations

from collections import Counter

import pytest
from rich.console import Console

from bench.audit import RequestCounts
from bench.measure import Measurement, median_run
from bench.profile import Stack, categorize, parse_collapsed, top_frames
from bench.report import (
    Comparison,
    ScalePoint,
    change_one_target,
    fresh_target,
    grows_linearly,
    linear_fit,
    memory_target,
    noop_target,
    print_report,
    requests_grow_at_most_linearly,
)


def measurement(
    wall: float, *, tool: str = "syncer", objects: int = 1000, rss_mb: float = 80,
    requests: dict[str, int] | None = None,
) -> Measurement:
    """A measured command with the given requests by category (`list` counts are spread over
    that many collections; writes count as object writes)."""
    categories = requests or {}
    counts = RequestCounts(by_category=Counter(categories))
    counts.object_writes = sum(v for k, v in categories.items() if k in ("patch", "create", "delete", "update"))
    for index in range(categories.get("list", 0)):
        counts.lists_by_key[f"things/ns-{index}"] += 1
    return Measurement(tool=tool, scenario="x", objects=objects, argv=[], exit_code=0, wall=wall, cpu_user=0.0,
                       cpu_system=0.0, peak_rss_kb=int(rss_mb * 1024), server_cpu=None, requests=counts)


@pytest.mark.parametrize(("ours", "theirs", "met"), [(4.0, 10.0, True), (5.0, 10.0, True), (7.0, 10.0, False)])
def test_fresh_target_is_half_of_kubectl(ours: float, theirs: float, met: bool) -> None:
    comparison = Comparison("fresh", "", measurement(ours), measurement(theirs, tool="kubectl"))
    assert fresh_target([comparison]).met is met


def test_noop_target_needs_requests_and_speed() -> None:
    quiet = measurement(1.0, requests={"discovery": 3, "list": 41})
    kubectl = measurement(5.0, tool="kubectl", requests={"patch": 1010})
    assert noop_target([Comparison("noop", "", quiet, kubectl)], list_budget=41).met is True
    slow = measurement(1.5, requests={"discovery": 3, "list": 41})
    assert noop_target([Comparison("noop", "", slow, kubectl)], list_budget=41).met is False
    dry_running = measurement(1.0, requests={"discovery": 3, "list": 41, "dry-run patch": 1})
    assert noop_target([Comparison("noop", "", dry_running, kubectl)], list_budget=41).met is False
    too_many_lists = measurement(1.0, requests={"discovery": 3, "list": 42})
    assert noop_target([Comparison("noop", "", too_many_lists, kubectl)], list_budget=41).met is False
    getting = measurement(1.0, requests={"discovery": 3, "list": 41, "get": 1})
    assert noop_target([Comparison("noop", "", getting, kubectl)], list_budget=41).met is False


def test_noop_target_not_measured_without_kubectl() -> None:
    assert noop_target([Comparison("noop", "", measurement(1.0), None)], list_budget=41).met is None


def test_change_one_counts_object_writes_only() -> None:
    run = measurement(1.0, requests={"patch": 1})
    run.requests.bookkeeping_writes.update({"create leases/a/syncer-x": 1, "delete leases/a/syncer-x": 1})
    target = change_one_target([Comparison("change-one", "", run, None)])
    assert target.met is True
    assert "create leases/a/syncer-x" in target.measured
    assert change_one_target([Comparison("change-one", "", measurement(1.0, requests={"patch": 2}), None)]).met is False


def test_memory_target_at_5000_objects() -> None:
    under = ScalePoint(5000, measurement(10, rss_mb=120), measurement(2, rss_mb=140))
    over = ScalePoint(5000, measurement(10, rss_mb=120), measurement(2, rss_mb=151))
    assert memory_target([under]).met is True
    assert memory_target([over]).met is False
    assert memory_target([ScalePoint(1000, measurement(1), measurement(1))]).met is None


def test_linear_fit_recovers_a_line() -> None:
    fit = linear_fit([(100, 1.5), (1000, 6.0), (5000, 26.0)])
    assert fit.per_object == pytest.approx(0.005)
    assert fit.fixed == pytest.approx(1.0)
    assert fit.r_squared == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("points", "linear"),
    [
        ([(100, 1.5), (1000, 6.0), (5000, 26.0)], True),  # exactly linear
        ([(100, 0.7), (1000, 1.2), (5000, 3.5)], True),  # fixed cost dominating
        ([(100, 0.7), (1000, 0.68), (5000, 0.9)], True),  # noise makes the line fall
        ([(100, 0.01), (1000, 1.0), (5000, 25.0)], False),  # quadratic
    ],
)
def test_linearity(points: list[tuple[int, float]], linear: bool) -> None:
    assert grows_linearly(points) is linear


def test_requests_may_grow_slower_but_not_faster() -> None:
    assert requests_grow_at_most_linearly([(100, 44), (1000, 44), (5000, 44)])
    assert requests_grow_at_most_linearly([(100, 250), (1000, 2100), (5000, 10100)])
    assert not requests_grow_at_most_linearly([(100, 100), (1000, 2000), (5000, 20000)])


def test_median_run_keeps_every_wall_time() -> None:
    runs = [measurement(3.0), measurement(1.0), measurement(2.0)]
    chosen = median_run(runs)
    assert chosen.wall == 2.0
    assert chosen.walls == [3.0, 1.0, 2.0]


def test_profile_categories_and_top_frames() -> None:
    stacks = parse_collapsed([
        "<module> (syncer/__main__.py:1);_find_and_load (<frozen importlib._bootstrap>:1176) 5",
        "main (syncer/cli/__init__.py:37);render (syncer/sources/render.py:59) 3",
        "main (syncer/cli/__init__.py:37);request (syncer/kube.py:252);urlopen (urllib3/poolmanager.py:459) 2",
        "not a sample line",
    ])
    assert stacks[0] == Stack(("<module> (syncer/__main__.py:1)",
                               "_find_and_load (<frozen importlib._bootstrap>:1176)"), 5)
    assert categorize(stacks) == {"start-up (imports)": 5, "render (Git export, YAML)": 3,
                                  "HTTP client (kubernetes, urllib3, ssl)": 2}
    assert top_frames(stacks)[0] == ("main (syncer/cli/__init__.py:37)", 5)


def test_kpt_sits_beside_kubectl_with_its_own_ratio() -> None:
    comparison = Comparison("fresh", "", measurement(1.0), measurement(4.0, tool="kubectl"),
                            kpt=measurement(2.0, tool="kpt"))
    data = comparison.to_dict()
    assert data["wall_ratio_syncer_to_kubectl"] == 0.25
    assert data["wall_ratio_syncer_to_kpt"] == 0.5
    assert data["kpt"]["tool"] == "kpt"
    console = Console(record=True, width=250)
    print_report(console, comparisons=[comparison], points=[], targets=[])
    rows = [line for line in console.export_text().splitlines() if "kpt" in line and "2.00" in line]
    assert rows and "0.50x" in rows[0]
    assert Comparison("noop-diff", "", measurement(1.0), None).to_dict()["kpt"] is None
