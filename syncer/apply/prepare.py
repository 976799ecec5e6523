"""Turn a manifest into the body syncer server-side applies. Pure.

Server-side apply is stricter than client-side apply in a few places on the Kubernetes
versions still in use (1.20 among them). Manifests that `kubectl apply` accepts must sync, so
these are fixed up before sending, as Flux does (fluxcd/pkg `ssa/normalize`):
- container ports and Service ports without `protocol`: `protocol` is part of the list-map
  key, and before Kubernetes 1.21/1.22 an element that omits it is rejected or duplicated
  (structured-merge-diff#130, kubernetes#98576), so the default `TCP` is filled in;
- container resource quantities written as YAML numbers (`cpu: 2`, Flux's test2): a
  quantity is a string in the schema, and before Kubernetes 1.22 server-side apply refuses a
  number there ("failed to create typed patch object ... expected string") where `kubectl
  apply` accepts it; the number is sent as its decimal string;
- Secret `stringData`: the server folds it into `data`, so applying it shows as drift on every
  run and conflicts with itself (kubernetes#108008); it is folded into `data` here instead;
- `status` and `metadata.creationTimestamp: null` (emitted by `kubectl create --dry-run -o
  yaml`) are dropped: status is not ours to set, and a null timestamp is rejected by SSA.

`as_stored` is the other direction, for the local proof that an object is unchanged: the body
with each container quantity the live object holds in the server's canonical form (`1000m`
stored as `1`) written as stored.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from syncer.apply.applyset import with_part_of
from syncer.diff.quantity import same_quantity
from syncer.model import Object

_POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_WORKLOAD_GROUPS = {"", "apps", "batch", "extensions"}


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _default_protocols(ports: Any) -> None:
    if isinstance(ports, list):
        for port in ports:
            if isinstance(port, dict) and not port.get("protocol"):
                port["protocol"] = "TCP"


def _quantities_as_strings(resources: Any) -> None:
    if not isinstance(resources, dict):
        return
    for bound in ("limits", "requests"):
        quantities = resources.get(bound)
        if isinstance(quantities, dict):
            for name, value in quantities.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    quantities[name] = str(value)


def _fold_string_data(secret: Object) -> None:
    string_data = secret.pop("stringData", None)
    if not isinstance(string_data, dict) or not string_data:
        return
    data = dict(secret.get("data") or {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    secret["data"] = data


def _pod_spec_path(obj: Object) -> tuple[str, ...] | None:
    """Where a built-in workload keeps its pod spec (None: not such a workload)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = obj.get("kind")
    return _POD_TEMPLATE_PATHS[kind] if group in _WORKLOAD_GROUPS and kind in _POD_TEMPLATE_PATHS else None


def _pod_spec(obj: Object, path: tuple[str, ...]) -> dict[str, Any] | None:
    pod_spec = _dig(obj, path)
    return pod_spec if isinstance(pod_spec, dict) else None


def as_stored(body: Object, live: Object) -> Object:
    """`body` with each container resource quantity that is the same number as the live
    object's (`1000m` and `1`) in the live object's text, so that comparing the two as values
    finds them equal; `body` itself when nothing differs only in form. Only built-in workload
    kinds, whose schema makes these fields quantities: in a custom resource `1000m` and `1`
    may be different strings, and the server stores them as written."""
    path = _pod_spec_path(body)
    pod_spec, live_spec = (_pod_spec(body, path), _pod_spec(live, path)) if path else (None, None)
    if path is None or pod_spec is None or live_spec is None:
        return body
    stored: list[tuple[str, int, str, str, str]] = []
    for field in ("containers", "initContainers", "ephemeralContainers"):
        desired, found = pod_spec.get(field), live_spec.get(field)
        if not isinstance(desired, list) or not isinstance(found, list) or len(desired) != len(found):
            continue
        for index, (container, live_container) in enumerate(zip(desired, found)):
            if not isinstance(container, dict) or not isinstance(live_container, dict):
                continue
            for bound in ("limits", "requests"):
                wanted = _dig(container, ("resources", bound))
                have = _dig(live_container, ("resources", bound))
                if not isinstance(wanted, dict) or not isinstance(have, dict):
                    continue
                stored += [(field, index, bound, name, have[name]) for name, value in wanted.items()
                           if name in have and value != have[name] and same_quantity(value, have[name])]
    if not stored:
        return body
    copied = copy.deepcopy(body)
    copied_spec = _pod_spec(copied, path)
    assert copied_spec is not None
    for field, index, bound, name, text in stored:
        copied_spec[field][index]["resources"][bound][name] = text
    return copied


def prepare_body(obj: Object, *, applyset: str, namespaced: bool) -> Object:
    """The body to apply: a deep copy with the SSA workarounds, the namespace fixed to the
    resource's scope, and the ApplySet membership label."""
    body = copy.deepcopy(obj)
    group = str(body.get("apiVersion", "")).rpartition("/")[0]
    kind = body.get("kind")
    path = _pod_spec_path(body)
    body.pop("status", None)
    metadata = body.setdefault("metadata", {})
    if "creationTimestamp" in metadata and metadata["creationTimestamp"] is None:
        del metadata["creationTimestamp"]
    if not namespaced:
        metadata.pop("namespace", None)
    pod_spec = _pod_spec(body, path) if path else None
    if pod_spec is not None:
        for field in ("containers", "initContainers", "ephemeralContainers"):
            for container in pod_spec.get(field) or []:
                if isinstance(container, dict):
                    _default_protocols(container.get("ports"))
                    _quantities_as_strings(container.get("resources"))
    if group == "" and kind == "Service":
        _default_protocols(_dig(body, ("spec", "ports")))
    if group == "" and kind == "Secret":
        _fold_string_data(body)
    return with_part_of(body, applyset)
