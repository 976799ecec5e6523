"""What the test sees of the cluster, as the admin, through the Kubernetes client (never
syncer's own cluster code): samples of every App, its ApplySet parent and its members, taken
every half second by a thread over the whole history, and the API server's audit log.

Where an App's parent lives, and what its members are labelled with, comes from one place
(`inventory_of`), through syncer's own `Inventory`: the layout is the daemon's to choose."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from syncer.apply.applyset import PART_OF_LABEL, Inventory
from syncer.apply.status import status_from_annotations
from tests.e2e.daemonmodel.lab import WIDGET_GROUP, WIDGET_KIND, WIDGET_PLURAL, WIDGET_VERSION
from tests.e2e.daemonmodel.repos import Key

SAMPLE_EVERY = 0.5


@dataclass(frozen=True)
class AppRef:
    namespace: str
    name: str
    target: str
    """spec.targetNamespace (the App's own namespace when it names none)."""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def inventory_of(app: AppRef) -> Inventory:
    """The App's ApplySet inventory: its parent object and the id its members are labelled
    with, in the App's own namespace whatever its targetNamespace (an App is (namespace,
    name)). The one place that knows where the daemon keeps them."""
    return Inventory.for_app(app=app.name, namespace=app.namespace)


@dataclass(frozen=True)
class Sample:
    at: float
    """time.monotonic() when the sample was taken."""
    recorded: str | None
    """The revision the parent records as applied last (None: no parent, or no record)."""
    attempted: str | None
    members: dict[Key, dict[str, Any]]
    """Live objects labelled as the App's members: the fields the model compares."""
    status: dict[str, Any] | None
    """The App's status (None: no App)."""

    def ready(self) -> str | None:
        return condition(self.status or {}, "Ready").get("status")


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def _compared(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("data") or {}) if kind == "ConfigMap" else dict(obj.get("spec") or {})


class Sampler:
    """Samples the tracked Apps until stopped; `history(app)` is every sample so far."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._apps: list[AppRef] = []
        self._history: dict[AppRef, list[Sample]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="daemon-model-sampler")
        self.errors: list[str] = []

    def track(self, app: AppRef) -> None:
        with self._lock:
            if app not in self._history:
                self._apps.append(app)
                self._history[app] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def history(self, app: AppRef) -> list[Sample]:
        with self._lock:
            return list(self._history[app])

    def latest(self, app: AppRef) -> Sample | None:
        with self._lock:
            found = self._history[app]
            return found[-1] if found else None

    def sample_now(self) -> None:
        """One sample of every App, at once (the thread takes them too)."""
        with self._lock:
            apps = list(self._apps)
        samples = self._sample(apps)
        with self._lock:
            for app, sample in samples.items():
                self._history[app].append(sample)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            try:
                self.sample_now()
            except Exception as error:  # a hiccup of the API server: the next sample will do
                self.errors.append(repr(error))

    def _sample(self, apps: list[AppRef]) -> dict[AppRef, Sample]:
        namespaces = sorted({a.namespace for a in apps} | {a.target for a in apps})
        configmaps = {ns: self._core.list_namespaced_config_map(ns).to_dict()["items"] for ns in namespaces}
        widgets = {ns: self._widgets(ns) for ns in namespaces}
        statuses = {ns: {a["metadata"]["name"]: dict(a.get("status") or {}) for a in self._list_apps(ns)}
                    for ns in sorted({a.namespace for a in apps})}
        found = {}
        for app in apps:
            inventory = inventory_of(app)
            parent_name = inventory.parent.name
            assert inventory.parent.kind == "ConfigMap", inventory.parent
            parent = next((c for c in configmaps[str(inventory.parent.namespace)]
                           if c["metadata"]["name"] == parent_name), None)
            recorded = status_from_annotations((parent or {}).get("metadata", {}).get("annotations") or {}) \
                if parent else None
            members: dict[Key, dict[str, Any]] = {}
            for cm in configmaps[app.target]:
                if (cm["metadata"].get("labels") or {}).get(PART_OF_LABEL) == inventory.id:
                    members[("ConfigMap", cm["metadata"]["name"])] = _compared("ConfigMap", cm)
            for widget in widgets[app.target]:
                if (widget["metadata"].get("labels") or {}).get(PART_OF_LABEL) == inventory.id:
                    members[(WIDGET_KIND, widget["metadata"]["name"])] = _compared(WIDGET_KIND, widget)
            found[app] = Sample(
                at=time.monotonic(),
                recorded=(recorded.applied_revision or None) if recorded else None,
                attempted=recorded.revision if recorded else None,
                members=members,
                status=statuses[app.namespace].get(app.name),
            )
        return found

    def _widgets(self, namespace: str) -> list[dict[str, Any]]:
        try:
            answer: Any = self._custom.list_namespaced_custom_object(WIDGET_GROUP, WIDGET_VERSION, namespace,
                                                                     WIDGET_PLURAL)
        except client.ApiException as error:
            if error.status == 404:  # the CRD was deleted by hand
                return []
            raise
        return list(answer["items"])

    def _list_apps(self, namespace: str) -> list[dict[str, Any]]:
        answer: Any = self._custom.list_namespaced_custom_object("syncer.dev", "v1alpha1", namespace, "apps")
        return list(answer["items"])


# -- the audit log -----------------------------------------------------------------------------

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Audited:
    """One request as the audit log tells it."""

    user: str
    """Whose rights it used: the impersonated user when there is one."""
    via: str
    """Who sent it."""
    verb: str
    resource: str
    """resource, with its subresource (`apps/status`)."""
    namespace: str
    name: str
    code: int
    uri: str

    @property
    def allowed(self) -> bool:
        """The request got past authorization (its answer is not 401 or 403)."""
        return self.code not in (401, 403)

    @property
    def writes(self) -> bool:
        return self.verb in WRITE_VERBS and "dryRun=" not in self.uri

    def __str__(self) -> str:
        via = f" (sent by {self.via})" if self.via != self.user else ""
        return f"{self.user}{via}: {self.verb} {self.resource} {self.namespace}/{self.name} -> {self.code}"


@dataclass
class AuditLog:
    path: Path
    offset: int = 0
    pending: bytes = field(default=b"", repr=False)

    def read_new(self) -> list[Audited]:
        """The requests logged since the last call."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = self.pending + log.read()
        self.offset += len(data) - len(self.pending)
        lines = data.split(b"\n")
        self.pending = lines.pop()
        return [a for a in (_audited(json.loads(line)) for line in lines if line.strip()) if a is not None]

    def skip(self) -> None:
        self.read_new()


def _audited(event: dict[str, Any]) -> Audited | None:
    ref = event.get("objectRef") or {}
    if not ref:
        return None
    via = str((event.get("user") or {}).get("username", ""))
    user = str((event.get("impersonatedUser") or {}).get("username") or via)
    resource = str(ref.get("resource", "")) + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return Audited(user=user, via=via, verb=str(event.get("verb", "")), resource=resource,
                   namespace=str(ref.get("namespace", "")), name=str(ref.get("name", "")),
                   code=int((event.get("responseStatus") or {}).get("code", 0)), uri=str(event.get("requestURI", "")))
