"""The benchmark's app: N objects spread over 10 namespaces, as YAML files in a Git repository.

Deterministic by construction (no randomness): the same N and prefix always give the same
objects, files and bytes, so two tools (or two runs) are measured on exactly the same input.
Each tool gets its own name prefix, which names its namespaces, so the tools never touch each
other's objects on a shared API server.

Layout of one app's folder (one file per object, as many real repositories keep them):

    00-namespaces.yaml             the 10 Namespace objects (first in lexical order, which is
                                   the order `kubectl apply -R` applies files in)
    <prefix>-ns-03/configmap-00012.yaml
    ...
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

NAMESPACES = 10
KINDS = ("ConfigMap", "Secret", "Service", "Deployment")
NAMESPACES_FILE = "00-namespaces.yaml"
CHANGED_KEY = "revision"
"""The ConfigMap data key the one-object-changed scenario edits."""


def namespace_names(prefix: str, *, count: int = NAMESPACES) -> list[str]:
    return [f"{prefix}-ns-{index:02d}" for index in range(count)]


def home_namespace(prefix: str) -> str:
    """The namespace an app's inventory and lock live in (the first of its namespaces)."""
    return namespace_names(prefix)[0]


def _labels(prefix: str, index: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"svc-{index:05d}",
        "app.kubernetes.io/part-of": prefix,
        "bench.syncer.dev/tier": ("web", "api", "worker")[index % 3],
    }


def _configmap(name: str, namespace: str, labels: dict[str, str], index: int) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {
            CHANGED_KEY: "1",
            "LOG_LEVEL": ("info", "debug", "warn")[index % 3],
            "FEATURE_FLAGS": ",".join(f"flag-{(index + k) % 17}" for k in range(4)),
            "app.properties": "".join(f"setting.{k}=value-{index}-{k}\n" for k in range(8)),
        },
    }


def _secret(name: str, namespace: str, labels: dict[str, str], index: int) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "stringData": {
            "username": f"user-{index}",
            "password": f"pw-{index:05d}-{(index * 7919) % 100003:05d}",
            "token": f"{(index * 2654435761) % 2**32:08x}" * 4,
        },
    }


def _service(name: str, namespace: str, labels: dict[str, str], index: int) -> Object:
    """Headless: the local control plane's service range is a /24, too small for 1,250
    ClusterIPs. Ports name `protocol`: server-side apply on 1.20 rejects a port without it
    (syncer fills it in itself, kubectl does not), and the tools must get the same input."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "selector": {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]},
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9090},
            ],
        },
    }


def _deployment(name: str, namespace: str, labels: dict[str, str], index: int) -> Object:
    selector = {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, **selector}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"registry.example.com/bench/app:1.{index % 10}.0",
                            "args": ["--port=8080", f"--instance={index}"],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "env": [
                                {"name": "LOG_LEVEL", "value": ("info", "debug", "warn")[index % 3]},
                                {"name": "INSTANCE", "value": str(index)},
                            ],
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                            },
                        }
                    ]
                },
            },
        },
    }


_BUILDERS = {
    "ConfigMap": _configmap,
    "Secret": _secret,
    "Service": _service,
    "Deployment": _deployment,
}


@dataclass(frozen=True)
class AppObject:
    """One generated object and the file (relative to the app's folder) that holds it."""

    file: str
    obj: Object

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.obj["metadata"].get("namespace")
        return str(namespace) if namespace else None


def generate(count: int, *, prefix: str) -> list[AppObject]:
    """The 10 Namespaces, then `count` objects: kinds round-robin, each run of four objects
    in the next namespace, so every kind appears in every namespace once count >= 40."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    namespaces = namespace_names(prefix)
    objects = [
        AppObject(NAMESPACES_FILE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for name in namespaces
    ]
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        namespace = namespaces[(index // len(KINDS)) % len(namespaces)]
        name = f"{kind.lower()}-{index:05d}"
        obj = _BUILDERS[kind](name, namespace, _labels(prefix, index), index)
        objects.append(AppObject(f"{namespace}/{name}.yaml", obj))
    return objects


def list_budget(objects: Sequence[AppObject]) -> int:
    """LISTs a resync needs at most: one per kind and namespace (cluster-scoped kinds once)."""
    return len({(item.kind, item.namespace) for item in objects})


def change_one(objects: Sequence[AppObject], *, value: str = "2") -> tuple[list[AppObject], AppObject]:
    """The objects with the first ConfigMap's `revision` value set to `value`, and that
    ConfigMap as changed."""
    result = list(objects)
    for position, item in enumerate(result):
        if item.kind == "ConfigMap":
            obj = {**item.obj, "data": {**item.obj["data"], CHANGED_KEY: value}}
            changed = AppObject(item.file, obj)
            result[position] = changed
            return result, changed
    raise ValueError("the app has no ConfigMap to change")


def remove_fraction(
    objects: Sequence[AppObject], *, fraction: float = 0.1
) -> tuple[list[AppObject], list[AppObject]]:
    """(kept, removed): within each kind and namespace every k-th object is removed,
    k = round(1/fraction), each group starting at another offset, so removals are spread over
    every kind and namespace and add up to the fraction. Namespaces are always kept: pruning
    one would delete everything in it."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    step = max(1, round(1 / fraction))
    groups: dict[tuple[str, str | None], list[int]] = {}  # (kind, namespace) -> [offset, seen]
    kept: list[AppObject] = []
    removed: list[AppObject] = []
    for item in objects:
        if item.kind == "Namespace":
            kept.append(item)
            continue
        counter = groups.setdefault((item.kind, item.namespace), [len(groups), 0])
        offset, seen = counter
        counter[1] += 1
        (removed if (seen + offset) % step == step - 1 else kept).append(item)
    return kept, removed


def render_files(objects: Sequence[AppObject]) -> dict[str, str]:
    """file name -> YAML text (several documents when objects share a file)."""
    documents: dict[str, list[str]] = {}
    for item in objects:
        documents.setdefault(item.file, []).append(yaml.safe_dump(item.obj, sort_keys=False))
    return {file: "---\n".join(texts) for file, texts in documents.items()}


def write_tree(root: Path, objects: Sequence[AppObject], *, keep: frozenset[str] = frozenset()) -> None:
    """Make `root` hold exactly the files of `objects` (files no longer wanted are removed),
    and the files named in `keep` (kpt's inventory file in a kpt package)."""
    files = render_files(objects)
    root.mkdir(parents=True, exist_ok=True)
    for existing in root.rglob("*.yaml"):
        if existing.relative_to(root).as_posix() not in files.keys() | keep:
            existing.unlink()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


class GitRepo:
    """A local Git repository the benchmark commits app revisions to (the git CLI)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(self.root), *args],
            capture_output=True, text=True, check=False,
            # HOME points away from the user's ~/.gitconfig (signing, hooks, templates).
            env={"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@syncer.invalid",
                 "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@syncer.invalid",
                 "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)},
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.root}: git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._git("init", "--quiet", "--initial-branch=main")

    def commit(self, message: str) -> str:
        """Commit everything in the working tree; return the new commit's SHA."""
        self._git("add", "--all")
        self._git("commit", "--quiet", "--allow-empty", "-m", message)
        return self._git("rev-parse", "HEAD")
