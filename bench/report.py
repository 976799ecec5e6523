"""From measurements to what the benchmark reports: side-by-side rows with ratios, the scaling
analysis, and the targets met or missed. Pure (but `print_report`, which writes a table).

Ratios are syncer / kubectl: below 1 syncer is faster. On a shared machine the absolute
numbers move with the load; the ratios of commands run back to back move much less.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.measure import Measurement

FRESH_RATIO_TARGET = 0.5
FRESH_LATENCY_RATIO_TARGET = 0.3
"""With 1 ms each way between the tools and the API server (`--latency`): kubectl applies one
object per round trip, syncer keeps `--concurrency` requests in flight."""
NOOP_RATIO_TARGET = 0.25
MEMORY_TARGET_MB = 150.0
MEMORY_TARGET_OBJECTS = 5000
LINEAR_TIME_SLACK = 1.5
"""How far above the linear extrapolation from the two smaller sizes a size's cost may be."""
LINEAR_REQUEST_SLACK = 1.1
"""Largest allowed growth of requests per object from one size to the next."""


@dataclass(frozen=True)
class Comparison:
    """One scenario, every tool (kpt where it has the scenario: it has no diff)."""

    scenario: str
    title: str
    syncer: Measurement
    kubectl: Measurement | None
    note: str = ""
    kpt: Measurement | None = None

    @property
    def ratio(self) -> float | None:
        if self.kubectl is None or self.kubectl.wall <= 0:
            return None
        return self.syncer.wall / self.kubectl.wall

    @property
    def kpt_ratio(self) -> float | None:
        if self.kpt is None or self.kpt.wall <= 0:
            return None
        return self.syncer.wall / self.kpt.wall

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "title": self.title,
            "syncer": self.syncer.to_dict(),
            "kubectl": self.kubectl.to_dict() if self.kubectl else None,
            "wall_ratio_syncer_to_kubectl": None if self.ratio is None else round(self.ratio, 3),
            "kpt": self.kpt.to_dict() if self.kpt else None,
            "wall_ratio_syncer_to_kpt": None if self.kpt_ratio is None else round(self.kpt_ratio, 3),
            "note": self.note,
        }


@dataclass(frozen=True)
class ScalePoint:
    """syncer alone at one size."""

    objects: int
    fresh: Measurement
    noop: Measurement


@dataclass(frozen=True)
class Fit:
    """wall = fixed + per_object * N, least squares, and how well that line fits."""

    fixed: float
    per_object: float
    r_squared: float


def linear_fit(points: Sequence[tuple[float, float]]) -> Fit:
    """Least-squares line through (x, y) points; r_squared is 1.0 when y does not vary."""
    if len(points) < 2:
        raise ValueError("a line needs at least two points")
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a line needs two different x values")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in points)
    return Fit(fixed=intercept, per_object=slope, r_squared=1.0 if total == 0 else 1 - residual / total)


def marginal_costs(points: Sequence[tuple[int, float]]) -> list[float]:
    """Cost per extra object between consecutive sizes (sorted by size): the fixed cost
    (start-up, discovery) cancels out."""
    ordered = sorted(points)
    return [(b - a) / (n2 - n1) for (n1, a), (n2, b) in zip(ordered, ordered[1:]) if n2 != n1]


def grows_linearly(points: Sequence[tuple[int, float]], *, slack: float = LINEAR_TIME_SLACK) -> bool:
    """Each size's cost is at most `slack` times the straight line through the two sizes
    below it predicts (never less than the cost at the size below: a fixed cost dominated by
    noise may make the line fall). A quadratic algorithm overshoots the line by the size
    ratio, 5x from 1,000 to 5,000 objects."""
    ordered = sorted(points)
    for (n1, t1), (n2, t2), (n3, t3) in zip(ordered, ordered[1:], ordered[2:]):
        predicted = max(t2 + (t2 - t1) / (n2 - n1) * (n3 - n2), t2)
        if t3 > slack * predicted:
            return False
    return True


def requests_grow_at_most_linearly(points: Sequence[tuple[int, int]], *, slack: float = LINEAR_REQUEST_SLACK) -> bool:
    """Requests per object never grow by more than `slack` from one size to the next."""
    per_object = [requests / objects for objects, requests in sorted(points) if objects > 0]
    return all(later <= slack * earlier for earlier, later in zip(per_object, per_object[1:]))


@dataclass(frozen=True)
class Target:
    name: str
    target: str
    measured: str
    met: bool | None
    """None: not measured in this run."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "measured": self.measured, "met": self.met}


def _find(comparisons: Sequence[Comparison], scenario: str) -> Comparison | None:
    return next((c for c in comparisons if c.scenario == scenario), None)


def fresh_target(comparisons: Sequence[Comparison], *, ratio: float = FRESH_RATIO_TARGET) -> Target:
    name, goal = "fresh sync", f"wall time <= {ratio} x kubectl apply --server-side"
    found = _find(comparisons, "fresh")
    if found is None or found.ratio is None:
        return Target(name, goal, "not measured", None)
    measured = f"{found.syncer.wall:.2f}s vs {found.kubectl.wall:.2f}s = {found.ratio:.2f}x" if found.kubectl else ""
    return Target(name, goal, measured, found.ratio <= ratio)


def noop_target(comparisons: Sequence[Comparison], *, list_budget: int) -> Target:
    """Zero writes, zero dry-runs, at most one LIST per kind and namespace (`list_budget` of
    them) and nothing else but discovery; and a quarter of kubectl's wall time."""
    name = "no-op resync"
    goal = (f"0 writes, 0 dry-runs, <= 1 LIST per kind and namespace (<= {list_budget}) + discovery, "
            f"wall time <= {NOOP_RATIO_TARGET} x kubectl apply --server-side")
    found = _find(comparisons, "noop")
    if found is None or found.ratio is None or found.kubectl is None:
        return Target(name, goal, "not measured", None)
    counts = found.syncer.requests.to_dict()
    others = counts["total"] - counts["by_category"].get("discovery", 0) - counts["lists"]
    requests_ok = (
        found.syncer.requests.writes == 0
        and found.syncer.requests.dry_runs == 0
        and counts["max_lists_per_key"] <= 1
        and counts["lists"] <= list_budget
        and others == 0
    )
    measured = (f"{found.syncer.requests.writes} writes, {found.syncer.requests.dry_runs} dry-runs, "
                f"{counts['lists']} LISTs ({counts['max_lists_per_key']} max per key), "
                f"{counts['by_category'].get('discovery', 0)} discovery, {others} other; "
                f"{found.syncer.wall:.2f}s vs {found.kubectl.wall:.2f}s = {found.ratio:.2f}x")
    return Target(name, goal, measured, requests_ok and found.ratio <= NOOP_RATIO_TARGET)


def change_one_target(comparisons: Sequence[Comparison]) -> Target:
    name, goal = "one object changed", "exactly 1 object write (bookkeeping reported apart)"
    found = _find(comparisons, "change-one")
    if found is None:
        return Target(name, goal, "not measured", None)
    requests = found.syncer.requests
    bookkeeping = ", ".join(f"{count}x {what}" for what, count in sorted(requests.bookkeeping_writes.items()))
    measured = f"{requests.object_writes} object write(s); bookkeeping: {bookkeeping or 'none'}"
    return Target(name, goal, measured, requests.object_writes == 1)


def memory_target(points: Sequence[ScalePoint]) -> Target:
    name = "memory"
    goal = f"peak RSS < {MEMORY_TARGET_MB:.0f} MB for {MEMORY_TARGET_OBJECTS:,} objects"
    point = next((p for p in points if p.objects == MEMORY_TARGET_OBJECTS), None)
    if point is None:
        return Target(name, goal, "not measured (no 5,000-object run)", None)
    peak = max(point.fresh.peak_rss_kb, point.noop.peak_rss_kb) / 1024
    measured = (f"{peak:.0f} MB (fresh sync {point.fresh.peak_rss_kb / 1024:.0f} MB, "
                f"no-op {point.noop.peak_rss_kb / 1024:.0f} MB)")
    return Target(name, goal, measured, peak < MEMORY_TARGET_MB)


def linearity_target(points: Sequence[ScalePoint]) -> Target:
    name, goal = "linear growth", "time and requests grow linearly with N (fresh sync and no-op)"
    if len(points) < 3:
        return Target(name, goal, "not measured (needs three sizes)", None)
    verdicts = []
    parts = []
    for label, runs in (("fresh", [(p.objects, p.fresh) for p in points]),
                        ("no-op", [(p.objects, p.noop) for p in points])):
        times = [(objects, run.wall) for objects, run in runs]
        requests = [(objects, run.requests.total) for objects, run in runs]
        steps = marginal_costs(times)
        ok = grows_linearly(times) and requests_grow_at_most_linearly(requests)
        verdicts.append(ok)
        parts.append(f"{label}: marginal ms/object " + " -> ".join(f"{1000 * s:.2f}" for s in steps)
                     + f", R^2 {linear_fit(times).r_squared:.3f}")
    return Target(name, goal, "; ".join(parts), all(verdicts))


def evaluate_targets(
    comparisons: Sequence[Comparison], points: Sequence[ScalePoint], *, list_budget: int, latency: bool = False
) -> list[Target]:
    """The targets; with `latency` (the `--latency` mode) the fresh sync's is the tighter one
    for a network between client and server."""
    return [
        fresh_target(comparisons, ratio=FRESH_LATENCY_RATIO_TARGET if latency else FRESH_RATIO_TARGET),
        noop_target(comparisons, list_budget=list_budget),
        change_one_target(comparisons),
        memory_target(points),
        linearity_target(points),
    ]


def scaling_rows(points: Sequence[ScalePoint]) -> list[dict[str, Any]]:
    rows = []
    for point in sorted(points, key=lambda p: p.objects):
        row: dict[str, Any] = {"objects": point.objects}
        for label, measurement in (("fresh", point.fresh), ("noop", point.noop)):
            row[label] = {
                "wall_seconds": round(measurement.wall, 3),
                "ms_per_object": round(1000 * measurement.wall / point.objects, 3),
                "requests": measurement.requests.total,
                "requests_per_object": round(measurement.requests.total / point.objects, 3),
                "peak_rss_mb": round(measurement.peak_rss_kb / 1024, 1),
                "cpu_seconds": round(measurement.cpu, 3),
            }
        rows.append(row)
    return rows


VERB_COLUMNS = (("disc", "discovery"), ("get", "get"), ("list", "list"), ("patch", "patch"),
                ("dry-run", "dry-run patch"), ("create", "create"), ("update", "update"), ("delete", "delete"))
"""(column, audit category): request columns of the side-by-side table."""

LEGEND = (
    "patch: server-side apply (a no-op apply is still a PATCH request; the server stores nothing). "
    "dry-run: PATCH with dryRun=All. obj wr: writes to the app's objects; bk wr: bookkeeping writes "
    "(syncer: its Lease lock, ApplySet parent ConfigMap and Events; kubectl: its ApplySet parent; "
    "kpt: its inventory ResourceGroup). kpt applies client-side (its default): a GET and a PATCH per object. "
    "server CPU: kube-apiserver + etcd during the command (kube-controller-manager's reactions included). "
    "CPU ms/req: the command's CPU time (start-up included) per API request it sent."
)


def _verb_cells(measurement: Measurement) -> list[str]:
    counts = measurement.requests.by_category
    return [str(counts.get(category, 0) or "") for _, category in VERB_COLUMNS]


def print_report(
    console: Console,
    *,
    comparisons: Sequence[Comparison],
    points: Sequence[ScalePoint],
    targets: Sequence[Target],
    latency_ms: float | None = None,
) -> None:
    """The side-by-side table, the scaling table and the targets."""
    network = "" if latency_ms is None else f", through a proxy adding {latency_ms:g} ms each way"
    table = Table(title=f"syncer vs kubectl apply --server-side and kpt live apply "
                        f"(ratio = syncer / that tool's wall time){network}")
    table.add_column("scenario")
    table.add_column("tool")
    for column in ("wall s", "ratio", "CPU s", "CPU ms/req", "peak MB", "server CPU s", "requests",
                   *(name for name, _ in VERB_COLUMNS), "obj wr", "bk wr"):
        table.add_column(column, justify="right")
    for comparison in comparisons:
        rows = [("syncer", comparison.syncer, None), ("kubectl", comparison.kubectl, comparison.ratio),
                ("kpt", comparison.kpt, comparison.kpt_ratio)]
        for index, (tool, measurement, tool_ratio) in enumerate(rows):
            title = comparison.title if index == 0 else ""
            if measurement is None:
                if tool == "kubectl":
                    table.add_row(title, f"{tool}: {comparison.note or 'not run'}")
                continue
            ratio = f"{tool_ratio:.2f}x" if tool_ratio is not None else ""
            server = "" if measurement.server_cpu is None else f"{measurement.server_cpu:.2f}"
            requests = measurement.requests
            per_request = measurement.cpu_ms_per_request
            table.add_row(
                title, tool, f"{measurement.wall:.2f}", ratio, f"{measurement.cpu:.2f}",
                "" if per_request is None else f"{per_request:.2f}",
                f"{measurement.peak_rss_kb / 1024:.0f}", server, str(requests.total), *_verb_cells(measurement),
                str(requests.object_writes), str(sum(requests.bookkeeping_writes.values()) or ""),
            )
        table.add_section()
    console.print(table)
    console.print(LEGEND, style="dim")

    if points:
        scale = Table(title="syncer alone: cost against N (N objects + 10 Namespaces)")
        for column in ("N", "fresh s", "fresh ms/obj", "fresh req/obj", "fresh MB",
                       "no-op s", "no-op ms/obj", "no-op req", "no-op MB"):
            scale.add_column(column, justify="right")
        for point in sorted(points, key=lambda p: p.objects):
            scale.add_row(
                f"{point.objects:,}", f"{point.fresh.wall:.2f}",
                f"{1000 * point.fresh.wall / point.objects:.2f}",
                f"{point.fresh.requests.total / point.objects:.2f}",
                f"{point.fresh.peak_rss_kb / 1024:.0f}", f"{point.noop.wall:.2f}",
                f"{1000 * point.noop.wall / point.objects:.2f}", str(point.noop.requests.total),
                f"{point.noop.peak_rss_kb / 1024:.0f}",
            )
        console.print(scale)

    goals = Table(title="targets")
    for column in ("target", "goal", "measured", "met"):
        goals.add_column(column)
    for target in targets:
        verdict = {True: "[green]met[/]", False: "[red]not met[/]", None: "not measured"}[target.met]
        goals.add_row(target.name, target.target, target.measured, verdict)
    console.print(goals)
