"""The App benchmark's pure parts: Flux's benchmark unit as YAML files, the App objects, the
Git layouts, what an App's status says, how a phase's requests are counted, the report and
the extrapolation. No processes, no cluster: `bench.apps` runs things, this module computes.

The unit is the one fluxcd/flux-benchmark deploys per Kustomization ("App manifests:
Deployment scaled to zero, Service Account, Service, Ingress"), written here as a
podinfo-like app. Two departures, both forced by the local control plane:

- the Service is headless (`clusterIP: None`): the control plane's service range is a /24,
  too small for 1,000 ClusterIPs;
- nothing runs: there is no kubelet, so `replicas: 0` (as Flux's) is what makes the
  Deployment healthy at all; kube-controller-manager still observes it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bench.audit import AuditEvent
from bench.generate import AppObject

GROUP, VERSION, PLURAL = "syncer.dev", "v1alpha1", "apps"
IMAGE = "ghcr.io/stefanprodan/podinfo"
FIRST_TAG = "6.7.0"
UNIT_PATH = "deploy"
"""The unit's folder inside a repository of its own (the repository-per-App layout)."""
MONOREPO_ROOT = "apps"
"""The folder holding every App's folder in the monorepo."""

FLUX_PUBLISHED: dict[int, tuple[float, float]] = {100: (27.0, 32.0), 500: (124.0, 122.0), 1000: (255.0, 175.0)}
"""Kustomizations -> (seconds until all Ready, kustomize-controller's peak memory MiB), as
fluxcd/flux-benchmark publishes them for Flux v2.4 (GitHub runner ubuntu-latest-16-cores,
kind, kustomize-controller 2 CPU / 1 GiB, concurrency 20, OCI artifacts from a registry in
the cluster)."""


class Layout(StrEnum):
    MONOREPO = "monorepo"
    """One repository; App i syncs the folder apps/<name>."""
    REPO_PER_APP = "repo-per-app"
    """One repository per App; each syncs its repository's deploy/ folder."""


@dataclass(frozen=True)
class BenchApp:
    """App `index` of a run: its name, its namespace (the App's and its objects'), its
    repository (an index into the run's repositories) and path in it."""

    index: int
    name: str
    namespace: str
    repo_index: int
    path: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def bench_apps(count: int, *, layout: Layout) -> list[BenchApp]:
    width = max(4, len(str(count - 1)))
    apps = []
    for index in range(count):
        name = f"podinfo-{index:0{width}d}"
        if layout is Layout.MONOREPO:
            apps.append(BenchApp(index, name, f"apps-{index:0{width}d}", 0, f"{MONOREPO_ROOT}/{name}"))
        else:
            apps.append(BenchApp(index, name, f"apps-{index:0{width}d}", index, UNIT_PATH))
    return apps


def repo_count(count: int, *, layout: Layout) -> int:
    return 1 if layout is Layout.MONOREPO else count


def tenth(apps: Sequence[BenchApp], *, fraction: float = 0.1) -> list[BenchApp]:
    """Every k-th App (k = 1/fraction), at least one: the Apps a partial commit changes."""
    step = max(1, round(1 / fraction))
    chosen = [app for app in apps if app.index % step == step - 1]
    return chosen or list(apps[:1])


def unit(app: BenchApp, *, tag: str) -> list[AppObject]:
    """The four objects of one App, a file each, without a namespace (the App's target
    namespace, its own, applies). `tag` is the image tag: a commit that changes an App
    changes it, as a release of the app would."""
    labels = {"app.kubernetes.io/name": app.name, "app.kubernetes.io/part-of": "bench-apps"}
    selector = {"app.kubernetes.io/name": app.name}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app.name, "labels": labels},
        "spec": {
            "replicas": 0, "minReadySeconds": 3, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 60,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": {"prometheus.io/scrape": "true",
                                                               "prometheus.io/port": "9797"}},
                "spec": {
                    "serviceAccountName": app.name,
                    "containers": [{
                        "name": "podinfod", "image": f"{IMAGE}:{tag}", "imagePullPolicy": "IfNotPresent",
                        "command": ["./podinfo", "--port=9898", "--port-metrics=9797", "--level=info"],
                        "env": [{"name": "PODINFO_UI_COLOR", "value": "#34577c"}],
                        "ports": [{"name": "http", "containerPort": 9898, "protocol": "TCP"},
                                  {"name": "http-metrics", "containerPort": 9797, "protocol": "TCP"}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 9898}, "initialDelaySeconds": 1,
                                          "timeoutSeconds": 5},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9898}, "initialDelaySeconds": 1,
                                           "timeoutSeconds": 5},
                        "resources": {"limits": {"cpu": "1000m", "memory": "128Mi"},
                                      "requests": {"cpu": "10m", "memory": "32Mi"}},
                    }],
                },
            },
        },
    }
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": app.name, "labels": labels}}
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": app.name, "labels": labels},
        "spec": {"clusterIP": "None", "selector": selector,
                 "ports": [{"name": "http", "port": 9898, "targetPort": "http", "protocol": "TCP"}]},
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": app.name, "labels": labels},
        "spec": {"ingressClassName": "nginx", "rules": [{
            "host": f"{app.name}.{app.namespace}.example.com",
            "http": {"paths": [{"path": "/", "pathType": "ImplementationSpecific",
                                "backend": {"service": {"name": app.name, "port": {"number": 9898}}}}]},
        }]},
    }
    return [AppObject("deployment.yaml", deployment), AppObject("serviceaccount.yaml", service_account),
            AppObject("service.yaml", service), AppObject("ingress.yaml", ingress)]


def app_object(app: BenchApp, *, repo: str, interval: str) -> dict[str, Any]:
    """The App a benchmark creates: like a Kustomization of Flux's benchmark, pruning, with
    self-heal (syncer's default), synced with the daemon's own (admin) rights."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "App",
        "metadata": {"name": app.name, "namespace": app.namespace, "labels": {"bench.syncer.dev/run": "apps"}},
        "spec": {"repo": repo, "revision": "main", "path": app.path, "interval": interval, "prune": True,
                 "selfHeal": True},
    }


# -- an App's status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AppState:
    """What an App's status says, as far as the benchmark cares."""

    ready: str | None
    applied: str | None
    current: bool
    """The status is about the App's current generation."""
    message: str = ""
    """The Ready condition's reason and message."""

    @classmethod
    def of(cls, obj: dict[str, Any]) -> AppState:
        status = obj.get("status") or {}
        ready = next((c for c in status.get("conditions") or []
                      if isinstance(c, dict) and c.get("type") == "Ready"), {})
        generation = (obj.get("metadata") or {}).get("generation")
        return cls(ready=ready.get("status"), applied=status.get("lastAppliedRevision"),
                   current=status.get("observedGeneration") == generation,
                   message=f"{ready.get('reason', '')}: {ready.get('message', '')}"[:300] if ready else "")

    def done(self, revision: str | None) -> bool:
        """Ready=True for this generation, with `revision` applied (any, when None)."""
        return self.current and self.ready == "True" and (revision is None or self.applied == revision)


# -- requests of a phase ---------------------------------------------------------------------------


@dataclass
class PhaseRequests:
    """The daemon's requests in one phase: by verb, by verb and resource, and by where
    they went: the namespaces of the Apps the phase is about, other Apps' namespaces, or
    elsewhere (cluster-scoped, the shard's Leases in `default`, discovery)."""

    by_verb: Counter[str] = field(default_factory=Counter)
    by_resource: Counter[str] = field(default_factory=Counter)
    focus: Counter[str] = field(default_factory=Counter)
    other_apps: Counter[str] = field(default_factory=Counter)
    elsewhere: Counter[str] = field(default_factory=Counter)
    cluster_wide_label_lists: int = 0
    """LISTs of a whole kind across namespaces by a label selector: each costs the API server
    a scan of every object of that kind, so their number times the cluster's size is the
    server's work."""

    @property
    def total(self) -> int:
        return sum(self.by_verb.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_verb": dict(self.by_verb.most_common()),
                "by_verb_and_resource": dict(self.by_resource.most_common()),
                "focus_namespaces": dict(self.focus.most_common()),
                "other_app_namespaces": dict(self.other_apps.most_common()),
                "elsewhere": dict(self.elsewhere.most_common()),
                "cluster_wide_label_lists": self.cluster_wide_label_lists}


def phase_requests(events: Iterable[AuditEvent], *, user_agent: str, since: float, until: float,
                   focus: set[str], app_namespaces: set[str]) -> PhaseRequests:
    """The requests of `user_agent` received in [since, until]. Watches are counted when
    they end (the audit log's ResponseComplete), so a phase counts the watches that ended in
    it, not the ones open."""
    result = PhaseRequests()
    for event in events:
        if not (since <= event.received <= until and event.user_agent.startswith(user_agent)):
            continue
        category = event.category
        result.by_verb[category] += 1
        result.by_resource[f"{category} {event.resource}" if event.resource else category] += 1
        if category == "list" and event.namespace is None and event.label_selector:
            result.cluster_wide_label_lists += 1
        where = (result.focus if event.namespace in focus
                 else result.other_apps if event.namespace in app_namespaces else result.elsewhere)
        where[category] += 1
    return result


# -- the report ------------------------------------------------------------------------------------


def verbs_text(counts: Counter[str] | dict[str, int]) -> str:
    items = sorted(dict(counts).items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{count:,} {verb}" for verb, count in items) or "none"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def flux_text(apps: int) -> str:
    published = FLUX_PUBLISHED.get(apps)
    return f"{_duration(published[0])} / {published[1]:.0f} MiB" if published else "not published for this N"


def markdown(results: Sequence[dict[str, Any]]) -> str:
    """Two tables from the results' dicts: the Flux-shaped one, then the details."""
    main = ["| Apps | layout | replicas | all Ready | daemon peak RSS MB | daemon CPU s to Ready | requests to Ready "
            "| every App changed → applied (webhook) | a tenth changed → applied | Flux v2.4, published (16 cores) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    detail = ["| Apps | layout | replicas | phase | s | daemon CPU s | API server + etcd CPU s | requests by verb |",
              "|---:|---|---:|---|---:|---:|---:|---|"]
    for r in results:
        phases = r["phases"]
        create, every, part = phases.get("create", {}), phases.get("commit_all", {}), phases.get("commit_tenth", {})
        main.append("| " + " | ".join([
            f"{r['apps']:,}", r["layout"], str(r["replicas"]), _duration(create.get("seconds")),
            " + ".join(f"{mb:.0f}" for mb in r.get("peak_rss_mb", [])) or "n/a",
            _num(create.get("daemon_cpu_seconds")), f"{(create.get('requests') or {}).get('total', 0):,}",
            _duration(every.get("seconds")), _duration(part.get("seconds")), flux_text(r["apps"]),
        ]) + " |")
        for name in ("create", "commit_all", "commit_tenth", "rest"):
            phase = phases.get(name)
            if not phase:
                continue
            requests = phase.get("requests") or {}
            text = verbs_text(requests.get("by_verb") or {})
            if name == "commit_tenth":
                text += (f"; in the changed Apps' namespaces: {verbs_text(requests.get('focus_namespaces') or {})}"
                         f"; in the other Apps' namespaces: {verbs_text(requests.get('other_app_namespaces') or {})}")
                moved = phase.get("apps_on_the_new_revision_after_settling")
                if moved is not None:
                    text += f"; {moved} of {r['apps']} Apps report the new commit as applied"
            if name == "create":
                lists = requests.get("cluster_wide_label_lists")
                if lists:
                    text += f"; of the LISTs, {lists:,} cluster-wide by label"
            if name == "rest":
                text = f"{phase.get('requests_per_minute', 0):g}/min: " + text
            detail.append("| " + " | ".join([
                f"{r['apps']:,}", r["layout"], str(r["replicas"]), PHASE_LABELS[name], _num(phase.get("seconds")),
                _num(phase.get("daemon_cpu_seconds"), 2), _num(phase.get("server_cpu_seconds"), 1), text,
            ]) + " |")
    return "\n".join(main) + "\n\n" + "\n".join(detail)


PHASE_LABELS = {"create": "create N Apps → all Ready", "commit_all": "commit changing every App → all applied",
                "commit_tenth": "commit changing a tenth → those applied", "rest": "at rest"}


# -- extrapolation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearFit:
    """y = intercept + slope × N, through measured points."""

    intercept: float
    slope: float
    points: int

    def at(self, apps: int) -> float:
        return self.intercept + self.slope * apps


def linear_fit(points: Sequence[tuple[float, float]]) -> LinearFit | None:
    """Least squares through (N, y); None with fewer than two distinct N."""
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x in xs)
    return LinearFit(intercept=mean_y - slope * mean_x, slope=slope, points=len(points))


def extrapolate(results: Sequence[dict[str, Any]], *, sizes: Sequence[int] = (100, 500, 1000)) -> dict[str, Any]:
    """Linear extrapolations, per layout and replica count, of the time to all Ready, the
    peak RSS (summed over replicas) and the run's wall time without the rest period, from
    the sizes measured. Two small sizes on a loaded machine: an order of magnitude, no more."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["layout"], r["replicas"]), []).append(r)
    estimates: dict[str, Any] = {}
    for (layout, replicas), runs in groups.items():
        metrics = {
            "all_ready_seconds": [(r["apps"], r["phases"]["create"]["seconds"]) for r in runs
                                  if (r["phases"].get("create") or {}).get("seconds") is not None],
            "peak_rss_mb": [(r["apps"], sum(r["peak_rss_mb"])) for r in runs if r.get("peak_rss_mb")],
            "phase_seconds": [(r["apps"], _phase_total(r)) for r in runs],
        }
        overhead = statistics.fmean(r["wall_seconds"] - r["rest_seconds"] - _phase_total(r) for r in runs)
        entry: dict[str, Any] = {"from_sizes": sorted({r["apps"] for r in runs})}
        for name, points in metrics.items():
            fit = linear_fit(points)
            if fit is not None:
                entry[name] = {str(size): round(max(0.0, fit.at(size)), 1) for size in sizes}
                entry[name + "_fit"] = {"intercept": round(fit.intercept, 2), "per_app": round(fit.slope, 4)}
        phases = entry.pop("phase_seconds", None)
        entry.pop("phase_seconds_fit", None)
        if phases is not None:
            # The run's fixed part (control plane start and stop, preparing, settling) as
            # measured, plus the phases as extrapolated.
            entry["run_seconds_without_rest"] = {size: round(overhead + seconds, 1) for size, seconds in phases.items()}
        estimates[f"{layout}, {replicas} replica(s)"] = entry
    return estimates


def _phase_total(result: dict[str, Any]) -> float:
    return sum(float(phase.get("seconds") or 0.0) for name, phase in result["phases"].items() if name != "rest")


def estimate_table(estimates: dict[str, Any]) -> str:
    rows = ["| layout, replicas | measured N | N | all Ready (extrapolated) | peak RSS MB (extrapolated) "
            "| run without rest (extrapolated) |", "|---|---|---:|---:|---:|---:|"]
    for group, entry in estimates.items():
        ready, rss, wall = (entry.get(key) or {} for key in ("all_ready_seconds", "peak_rss_mb",
                                                            "run_seconds_without_rest"))
        for size in ready or wall:
            rows.append(f"| {group} | {', '.join(map(str, entry['from_sizes']))} | {int(size):,} | "
                        f"{_duration(ready.get(size))} | {_num(rss.get(size), 0)} | {_duration(wall.get(size))} |")
    return "\n".join(rows) if len(rows) > 2 else ""
