"""The daemon-at-scale benchmark's pure parts: the workloads (many apps in a few Git
repositories), the daemon's configuration file, what a daemon process's /proc files say, its
metrics, and how the requests it sends at rest are classified. No processes, no cluster:
`bench.daemon` runs things, this module only computes, and tests/unit/test_bench_daemon.py
checks it.

A workload is `A` apps of `N` objects each (`200x20`, `20x500`). Each app lives in a namespace
of its own (created by the daemon: `createNamespace: true`) and holds the objects
`bench.generate` makes (ConfigMaps, Secrets, headless Services, Deployments, in turn), one file
per object, in its own folder of one of a few Git repositories: apps sharing a repository is
what real setups look like, and it is what the daemon's shared `ls-remote` is for.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.audit import AuditEvent
from bench.generate import AppObject, change_one, generate

WORKLOAD_PATTERN = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
SEED_VALUE = "1"
"""The generated ConfigMaps' `revision` value before any commit changes it."""


@dataclass(frozen=True)
class Workload:
    """`apps` apps of `objects` objects each, spread over `repos` Git repositories."""

    apps: int
    objects: int
    repos: int

    @property
    def label(self) -> str:
        return f"{self.apps}x{self.objects}"

    @property
    def total_objects(self) -> int:
        """Objects the daemon applies, the apps' Namespaces included."""
        return self.apps * (self.objects + 1)


def parse_workloads(text: str, *, repos: int) -> list[Workload]:
    """`200x20,20x500` -> two workloads. Each app needs every kind once (4 objects) at least."""
    workloads = []
    for part in (part for part in text.split(",") if part.strip()):
        match = WORKLOAD_PATTERN.match(part)
        if match is None:
            raise ValueError(f"{part!r}: expected APPSxOBJECTS, e.g. 200x20")
        apps, objects = int(match.group(1)), int(match.group(2))
        if apps < 1 or objects < 4:
            raise ValueError(f"{part!r}: needs at least 1 app of at least 4 objects (one of each kind)")
        workloads.append(Workload(apps=apps, objects=objects, repos=max(1, min(repos, apps))))
    if not workloads:
        raise ValueError("no workload given")
    return workloads


@dataclass
class BenchApp:
    """One app of a workload: its name (also its namespace), repository and objects."""

    name: str
    repo_index: int
    objects: list[AppObject]
    configmap_value: str = SEED_VALUE
    """What Git says the first ConfigMap's `revision` is now."""

    @property
    def namespace(self) -> str:
        return self.name

    @property
    def first_configmap(self) -> str:
        return next(item.name for item in self.objects if item.kind == "ConfigMap")

    @property
    def first_secret(self) -> str:
        return next(item.name for item in self.objects if item.kind == "Secret")

    def change(self, value: str) -> None:
        """Git's next revision of this app: the first ConfigMap's `revision` is `value`."""
        self.objects, _ = change_one(self.objects, value=value)
        self.configmap_value = value


def app_objects(name: str, count: int) -> list[AppObject]:
    """`count` objects of `bench.generate` in the one namespace `name`, a file each."""
    result = []
    for item in generate(count, prefix=name):
        if item.kind == "Namespace":
            continue
        obj = {**item.obj, "metadata": {**item.obj["metadata"], "namespace": name}}
        result.append(AppObject(f"{item.name}.yaml", obj))
    return result


def workload_apps(workload: Workload, *, prefix: str) -> list[BenchApp]:
    """The apps of a workload; app i is in repository i mod repos."""
    width = len(str(workload.apps - 1))
    return [
        BenchApp(name=f"{prefix}-{workload.label}-a{index:0{width}d}", repo_index=index % workload.repos,
                 objects=app_objects(f"{prefix}-{workload.label}-a{index:0{width}d}", workload.objects))
        for index in range(workload.apps)
    ]


def daemon_config(apps: Sequence[BenchApp], *, repos: Sequence[Path], interval: str) -> str:
    """`syncer run --config` YAML: every app from its repository's `main`, selfHeal on."""
    return yaml.safe_dump({"apps": [
        {"name": app.name, "repo": str(repos[app.repo_index]), "revision": "main", "path": app.name,
         "namespace": app.namespace, "createNamespace": True, "interval": interval, "prune": True,
         "selfHeal": True}
        for app in apps
    ]}, sort_keys=False)


# -- the daemon process ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessSample:
    """CPU seconds so far (the process's own, and its reaped children's: git) and memory."""

    cpu: float
    children_cpu: float
    rss_kb: int
    peak_rss_kb: int

    @property
    def total_cpu(self) -> float:
        return self.cpu + self.children_cpu


def parse_proc(stat: str, status: str, *, ticks: int) -> ProcessSample:
    """/proc/PID/stat and /proc/PID/status: utime+stime, cutime+cstime, VmRSS and VmHWM."""
    fields = stat.rpartition(")")[2].split()
    # After the command name, field 3 is the state; utime..cstime are fields 14-17 (man 5 proc).
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    children = (int(fields[13]) + int(fields[14])) / ticks
    memory = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0])
    return ProcessSample(cpu=cpu, children_cpu=children, rss_kb=memory.get("VmRSS", 0),
                         peak_rss_kb=memory.get("VmHWM", 0))


_METRIC_LINE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_by_app(exposition: str, name: str) -> dict[str, float]:
    """app -> value of one metric from the daemon's Prometheus text."""
    values = {}
    for line in exposition.splitlines():
        match = _METRIC_LINE.match(line)
        if match is None or match.group("name") != name:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        if "app" in labels:
            values[labels["app"]] = float(match.group("value"))
    return values


def metric_value(exposition: str, name: str) -> float | None:
    """An unlabelled metric's value."""
    for line in exposition.splitlines():
        match = _METRIC_LINE.match(line)
        if match is not None and match.group("name") == name and not match.group("labels"):
            return float(match.group("value"))
    return None


# -- requests at rest ---------------------------------------------------------------------------------


@dataclass
class RestRequests:
    """A daemon's requests in a window at rest, by what they are for.

    - `watches`: watch requests that ended in the window (a watch is logged when it ends; the
      daemon re-opens each every few minutes and after the server closes it);
    - `cache_lists`: cluster-wide LISTs selected by an ApplySet label, which only the watch
      cache makes (its first lists and its safety re-lists; a plan lists per namespace, and
      cluster-scoped kinds such as Namespaces without a selector);
    - `leases`: requests about Leases (membership and leader election; named in `lease_detail`);
    - `other`: everything else (a plan's LISTs, GETs, writes), by `verb resource`.
    """

    seconds: float
    watches: int = 0
    cache_lists: int = 0
    leases: int = 0
    lease_detail: Counter[str] = field(default_factory=Counter)
    other: Counter[str] = field(default_factory=Counter)

    def per_minute(self, count: int) -> float:
        return count * 60.0 / self.seconds if self.seconds > 0 else 0.0

    @property
    def other_total(self) -> int:
        return sum(self.other.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_seconds": round(self.seconds, 1),
            "watches": self.watches,
            "cache_lists": self.cache_lists,
            "leases": self.leases,
            "lease_detail": dict(sorted(self.lease_detail.items())),
            "other": self.other_total,
            "other_detail": dict(self.other.most_common()),
            "per_minute": {
                "other": round(self.per_minute(self.other_total), 1),
                "watches": round(self.per_minute(self.watches), 1),
                "cache_lists": round(self.per_minute(self.cache_lists), 1),
                "leases": round(self.per_minute(self.leases), 1),
            },
        }


APPLYSET_LABEL_PREFIX = "applyset.kubernetes.io/"


def classify_rest(events: Iterable[AuditEvent], *, user_agent: str, since: float, until: float) -> RestRequests:
    """The daemon's requests received in [since, until], classified (see `RestRequests`)."""
    result = RestRequests(seconds=until - since)
    for event in events:
        if not (since <= event.received <= until and event.user_agent.startswith(user_agent)):
            continue
        what = f"{event.category} {event.resource or event.category}".strip()
        if event.category == "discovery":
            what = "discovery"
        if event.resource == "leases":
            result.leases += 1
            result.lease_detail[f"{event.category} {event.namespace}/{event.name or '*'}"] += 1
        elif event.category == "watch":
            result.watches += 1
        elif (event.category == "list" and event.namespace is None
              and event.label_selector.startswith(APPLYSET_LABEL_PREFIX)):
            result.cache_lists += 1
        else:
            result.other[what] += 1
    return result


# -- latencies ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latencies:
    """Seconds from an action (a commit, a hand edit) to the cluster showing its outcome; None
    for a sample that timed out."""

    samples: tuple[float | None, ...]

    @property
    def done(self) -> list[float]:
        return [sample for sample in self.samples if sample is not None]

    @property
    def timed_out(self) -> int:
        return sum(1 for sample in self.samples if sample is None)

    @property
    def median(self) -> float | None:
        return statistics.median(self.done) if self.done else None

    @property
    def maximum(self) -> float | None:
        return max(self.done) if self.done else None

    def text(self) -> str:
        """`1.2 / 1.9 (5)`: median / max (count), `n/a` without samples."""
        if not self.samples:
            return "n/a"
        if not self.done:
            return f"timed out ({len(self.samples)})"
        text = f"{self.median:.1f} / {self.maximum:.1f} ({len(self.samples)})"
        return text + (f", {self.timed_out} timed out" if self.timed_out else "")

    def to_dict(self) -> dict[str, Any]:
        return {"samples": [None if s is None else round(s, 2) for s in self.samples],
                "median": None if self.median is None else round(self.median, 2),
                "max": None if self.maximum is None else round(self.maximum, 2), "timed_out": self.timed_out}


def ratio(value: float | None, baseline: float | None) -> str:
    """`value / baseline` as the tables print it (`0.05×`); `0 / x` is `0×`, `x / 0` is `∞`."""
    if value is None or baseline is None:
        return "n/a"
    if baseline == 0:
        return "—" if value == 0 else "∞"
    return f"{value / baseline:.2f}×"
