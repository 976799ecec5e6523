"""The app's Git content as the model test sees it, and the changes a commit can make.

Plain data: `Git.objects` maps a stable id (`Kind/name`, names are never reused) to the
manifest exactly as it would be written to the repository. Each change is a small function
`(git, choose) -> str | None`: `choose(options)` picks one of a list (the state machine backs it
with a hypothesis draw, so choices shrink), and the result says what changed, or None when the
change does not apply to this content.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from syncer.model import Object

T = TypeVar("T")
Choose = Callable[[Sequence[T]], T]

NOTE = "model.syncer.dev/note"
"""An annotation every object has, so any object can be edited by Git or by another actor."""
ADOPT = "syncer.dev/adopt"
RECREATE = "syncer.dev/recreate"
WAVE = "syncer.dev/sync-wave"
DEPENDS_ON = "config.kubernetes.io/depends-on"

INGRESS_VERSIONS = ("extensions/v1beta1", "networking.k8s.io/v1beta1", "networking.k8s.io/v1")
"""Kubernetes 1.20 serves one stored Ingress under all three (it serves NetworkPolicy only in
networking.k8s.io/v1, and PodSecurityPolicy only in policy/v1beta1); 1.22 and newer only the last."""
LEAF_KINDS = ("ConfigMap", "Secret", "Deployment", "Service", "Endpoints", "Ingress", "NetworkPolicy", "Widget")


@dataclass
class Git:
    prefix: str
    home: str
    """The app's own namespace (holds its inventory and lock; made by the test, not in Git)."""
    objects: dict[str, Object] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    """Creation sequence of each id: `depends-on` only points at older objects (no cycles)."""
    counter: int = 0
    removed_containers: dict[str, Object] = field(default_factory=dict)
    """Namespace and CRD documents dropped while Git kept objects in them (they may come back)."""
    ingress_versions: tuple[str, ...] = INGRESS_VERSIONS
    """Those the server serves: a move between group-versions happens only where there are two."""

    committed: frozenset[str] = frozenset()
    """The ids of the Git this one was copied from: what the cluster has (a commit changes the copy)."""

    def copy(self) -> Git:
        copied = copy.deepcopy(self)
        copied.committed = frozenset(self.objects)
        return copied

    def fresh(self) -> int:
        self.counter += 1
        return self.counter

    def add(self, obj: Object) -> str:
        ident = f"{obj['kind']}/{obj['metadata']['name']}"
        self.objects[ident] = obj
        self.order.setdefault(ident, self.fresh())
        return ident

    def ids(self, *kinds: str) -> list[str]:
        return [i for i, o in self.objects.items() if not kinds or o["kind"] in kinds]

    def namespaces(self) -> list[str]:
        """Namespaces new objects may go to: the app's own and those Git declares."""
        return [self.home, *(self.objects[i]["metadata"]["name"] for i in self.ids("Namespace"))]

    def crd_groups(self) -> list[str]:
        return [self.objects[i]["spec"]["group"] for i in self.ids("CustomResourceDefinition")]

    def files(self) -> dict[str, str]:
        import yaml

        return {f"{i.replace('/', '-').lower()}.yaml": yaml.safe_dump(o, sort_keys=False)
                for i, o in self.objects.items()}


def meta(name: str, namespace: str | None, note: int) -> Object:
    metadata: Object = {"name": name, "annotations": {NOTE: str(note)}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def configmap(name: str, namespace: str, note: int) -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, namespace, note),
            "data": {"a": f"v{note}"}}


def secret(name: str, namespace: str, note: int) -> Object:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(name, namespace, note), "type": "Opaque",
            "data": {"a": b64(f"s{note}")}, "stringData": {"b": f"t{note}"}}


def deployment(name: str, namespace: str, note: int) -> Object:
    selector = f"{name}-s{note}"
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, namespace, note),
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": selector}},
            "template": {
                "metadata": {"labels": {"app": selector}},
                "spec": {"containers": [{"name": "main", "image": f"registry.example/model:{note}",
                                         "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def service(name: str, namespace: str, note: int) -> Object:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, namespace, note),
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80 + note % 100,
                                                            "targetPort": 8080}]}}


def endpoints(name: str, namespace: str, note: int) -> Object:
    """Endpoints of a Service without a selector (an external backend). The endpoints controller
    also writes Endpoints, for every Service with a selector, copying the Service's labels."""
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta(name, namespace, note),
            "subsets": [{"addresses": [{"ip": f"10.0.{note // 250 % 250}.{note % 250 + 1}"}],
                         "ports": [{"port": 8080, "protocol": "TCP"}]}]}


def ingress(name: str, namespace: str, note: int, *, api_version: str, port: int = 80) -> Object:
    if api_version == "networking.k8s.io/v1":
        backend: Object = {"service": {"name": "web", "port": {"number": port}}}
        path: Object = {"path": "/", "pathType": "Prefix", "backend": backend}
    else:
        path = {"path": "/", "pathType": "Prefix", "backend": {"serviceName": "web", "servicePort": port}}
    return {"apiVersion": api_version, "kind": "Ingress", "metadata": meta(name, namespace, note),
            "spec": {"rules": [{"host": f"{name}.example", "http": {"paths": [path]}}]}}


def ingress_port(obj: Object) -> int:
    backend = obj["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    return int(backend["service"]["port"]["number"] if "service" in backend else backend["servicePort"])


def network_policy(name: str, namespace: str, note: int) -> Object:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name, namespace, note),
            "spec": {"podSelector": {"matchLabels": {"app": name}},
                     "ingress": [{"ports": [{"port": 8000 + note % 1000, "protocol": "TCP"}]}]}}


def namespace_doc(name: str, note: int) -> Object:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, None, note)}


def crd(group: str, note: int) -> Object:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": meta(f"widgets.{group}", None, note),
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
            }}}],
        },
    }


def widget(group: str, name: str, namespace: str, note: int) -> Object:
    return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": meta(name, namespace, note),
            "spec": {"size": note}}


# -- changes a commit makes ----------------------------------------------------------------------


def add_leaf(git: Git, choose: Choose[Any]) -> str:
    kind = choose(list(LEAF_KINDS))
    n = git.fresh()
    namespace = choose(git.namespaces())
    name = f"{kind.lower()}-{n}"
    if kind == "Widget":
        groups = git.crd_groups()
        if not groups:
            kind, name = "ConfigMap", f"configmap-{n}"
        else:
            return "add " + git.add(widget(choose(groups), name, namespace, n))
    builders: dict[str, Callable[[str, str, int], Object]] = {
        "ConfigMap": configmap, "Secret": secret, "Deployment": deployment, "Service": service,
        "Endpoints": endpoints, "NetworkPolicy": network_policy,
        "Ingress": lambda name, ns, note: ingress(name, ns, note, api_version=choose(list(git.ingress_versions))),
    }
    return "add " + git.add(builders[kind](name, namespace, n))


def add_namespace(git: Git, choose: Choose[Any]) -> str:
    n = git.fresh()
    return "add " + git.add(namespace_doc(f"{git.prefix}-ns{n}", n))


def add_crd(git: Git, choose: Choose[Any]) -> str:
    n = git.fresh()
    return "add " + git.add(crd(f"c{n}.{git.prefix}.model.example", n))


def add_crd_with_widget_in_new_namespace(git: Git, choose: Choose[Any]) -> str:
    """The shape of most real installs: a CRD, a namespace and a custom resource in it, at once."""
    n = git.fresh()
    group, namespace = f"c{n}.{git.prefix}.model.example", f"{git.prefix}-ns{n}"
    added = [git.add(crd(group, n)), git.add(namespace_doc(namespace, n)),
             git.add(widget(group, f"widget-{n}", namespace, n))]
    return "add " + ", ".join(added)


def change_note(git: Git, choose: Choose[Any]) -> str | None:
    if not git.objects:
        return None
    ident = choose(sorted(git.objects))
    git.objects[ident]["metadata"]["annotations"][NOTE] = str(git.fresh())
    return f"change the note of {ident}"


def change_content(git: Git, choose: Choose[Any]) -> str | None:
    """Change what an object is for: data, image, ports, size."""
    candidates = git.ids("ConfigMap", "Secret", "Deployment", "Service", "Endpoints", "Ingress", "Widget")
    if not candidates:
        return None
    ident = choose(sorted(candidates))
    obj, n = git.objects[ident], git.fresh()
    kind = obj["kind"]
    if kind == "ConfigMap":
        what = choose(["set", "drop"])
        if what == "drop" and obj["data"]:
            key = choose(sorted(obj["data"]))
            del obj["data"][key]
            return f"drop data.{key} of {ident}"
        key = choose(["a", "b", f"k{n}"])
        obj["data"][key] = f"v{n}"
        return f"set data.{key} of {ident}"
    if kind == "Secret":
        return change_secret(obj, ident, n, choose)
    if kind == "Deployment":
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = f"registry.example/model:{n}"
        return f"change the image of {ident}"
    if kind == "Service":
        ports = obj["spec"]["ports"]
        if len(ports) == 1 and choose([True, False]):
            ports.append({"name": "extra", "port": 9000 + n % 100, "targetPort": 9090})
            return f"add a port to {ident}"
        del ports[1:]
        ports[0]["port"] = 80 + n % 100
        return f"change the port of {ident}"
    if kind == "Endpoints":
        git.objects[ident] = {**endpoints(obj["metadata"]["name"], obj["metadata"]["namespace"], n),
                              "metadata": obj["metadata"]}
        return f"change the address of {ident}"
    if kind == "Ingress":
        port = 80 + n % 100
        git.objects[ident] = {**ingress(obj["metadata"]["name"], obj["metadata"]["namespace"], n,
                                        api_version=obj["apiVersion"], port=port),
                              "metadata": obj["metadata"]}
        return f"change the backend port of {ident}"
    obj["spec"]["size"] = n
    return f"change the size of {ident}"


def change_secret(obj: Object, ident: str, n: int, choose: Choose[Any]) -> str:
    """Secrets take values in `data` (base64) and in `stringData` (plain); both must land."""
    data, string_data = obj.setdefault("data", {}), obj.setdefault("stringData", {})
    what = choose(["set data", "set stringData", "move to data", "move to stringData", "drop"])
    key = choose(["a", "b", "c"])
    data.pop(key, None) if what in ("set stringData", "move to stringData") else None
    string_data.pop(key, None) if what in ("set data", "move to data") else None
    if what == "set data":
        data[key] = b64(f"s{n}")
    elif what == "set stringData":
        string_data[key] = f"t{n}"
    elif what == "move to data" and key in string_data:
        data[key] = b64(string_data.pop(key))
    elif what == "move to stringData" and key in data:
        string_data[key] = base64.b64decode(data.pop(key)).decode()
    elif what == "drop":
        data.pop(key, None)
        string_data.pop(key, None)
    if not data:
        obj.pop("data")
    if not string_data:
        obj.pop("stringData")
    return f"{what} {key} of {ident}"


def change_selector_with_recreate(git: Git, choose: Choose[Any]) -> str | None:
    """An immutable field changes; the object opts in to being deleted and re-created."""
    candidates = git.ids("Deployment")
    if not candidates:
        return None
    ident = choose(sorted(candidates))
    change_selector(git.objects[ident], git.fresh(), recreate=True)
    return f"change the selector of {ident} with {RECREATE}"


def change_selector(obj: Object, n: int, *, recreate: bool) -> None:
    selector = f"{obj['metadata']['name']}-s{n}"
    obj["spec"]["selector"]["matchLabels"]["app"] = selector
    obj["spec"]["template"]["metadata"]["labels"]["app"] = selector
    annotations = obj["metadata"]["annotations"]
    if recreate:
        annotations[RECREATE] = "true"
    else:
        annotations.pop(RECREATE, None)


def move_group(git: Git, choose: Choose[Any]) -> str | None:
    """The same stored Ingress, declared under another API group/version."""
    candidates = git.ids("Ingress")
    if not candidates or len(git.ingress_versions) < 2:
        return None
    ident = choose(sorted(candidates))
    obj = git.objects[ident]
    target = choose([v for v in git.ingress_versions if v != obj["apiVersion"]])
    git.objects[ident] = {**ingress(obj["metadata"]["name"], obj["metadata"]["namespace"], 0,
                                    api_version=target, port=ingress_port(obj)),
                          "metadata": obj["metadata"]}
    return f"move {ident} from {obj['apiVersion']} to {target}"


def set_wave(git: Git, choose: Choose[Any]) -> str | None:
    if not git.objects:
        return None
    ident = choose(sorted(git.objects))
    annotations = git.objects[ident]["metadata"]["annotations"]
    wave = choose(["-1", "1", "2", None])
    if wave is None:
        annotations.pop(WAVE, None)
    else:
        annotations[WAVE] = wave
    return f"set the sync wave of {ident} to {wave}"


def reference(obj: Object) -> str:
    """The object as a `depends-on` entry (kpt / cli-utils format)."""
    group = obj["apiVersion"].rpartition("/")[0]
    metadata = obj["metadata"]
    if metadata.get("namespace"):
        return f"{group}/namespaces/{metadata['namespace']}/{obj['kind']}/{metadata['name']}"
    return f"{group}/{obj['kind']}/{metadata['name']}"


def set_depends_on(git: Git, choose: Choose[Any]) -> str | None:
    """A leaf object depends on an older object (so there is never a cycle)."""
    leaves = sorted(git.ids(*LEAF_KINDS))
    if not leaves:
        return None
    ident = choose(leaves)
    older = sorted(i for i in git.objects if git.order[i] < git.order[ident])
    annotations = git.objects[ident]["metadata"]["annotations"]
    if not older or DEPENDS_ON in annotations:
        annotations.pop(DEPENDS_ON, None)
        return f"drop depends-on of {ident}"
    target = choose(older)
    annotations[DEPENDS_ON] = reference(git.objects[target])
    return f"{ident} depends on {target}"


def remove_leaf(git: Git, choose: Choose[Any]) -> str | None:
    candidates = sorted(git.ids(*LEAF_KINDS))
    if len(git.objects) <= 1 or not candidates:
        return None
    ident = choose(candidates)
    del git.objects[ident]
    return f"remove {ident}"


def contents(git: Git, container: Object) -> list[str]:
    """Ids of Git's objects inside a Namespace, or custom resources of a CRD."""
    if container["kind"] == "Namespace":
        name = container["metadata"]["name"]
        return [i for i, o in git.objects.items() if o["metadata"].get("namespace") == name]
    group = container["spec"]["group"]
    return [i for i, o in git.objects.items() if o["apiVersion"].startswith(f"{group}/")]


def remove_container_keep_contents(git: Git, choose: Choose[Any]) -> str | None:
    """Drop a Namespace or CRD document while Git keeps objects in it (they must survive). Only
    one the cluster has: one this very commit declares would leave its contents nowhere to go."""
    candidates = sorted(i for i in git.ids("Namespace", "CustomResourceDefinition") if i in git.committed)
    if not candidates:
        return None
    ident = choose(candidates)
    kept = contents(git, git.objects[ident])
    git.removed_containers[ident] = git.objects.pop(ident)
    return f"remove {ident}, keep {', '.join(kept) or 'nothing'} in it"


def restore_container(git: Git, choose: Choose[Any]) -> str | None:
    """Declare a dropped Namespace or CRD again while Git still has objects in it (so it was kept
    all along, never deleted)."""
    candidates = sorted(i for i, doc in git.removed_containers.items() if contents(git, doc))
    if not candidates:
        return None
    ident = choose(candidates)
    git.objects[ident] = git.removed_containers.pop(ident)
    return f"declare {ident} again"


def remove_container_with_contents(git: Git, choose: Choose[Any]) -> str | None:
    candidates = sorted(git.ids("Namespace", "CustomResourceDefinition"))
    if not candidates:
        return None
    ident = choose(candidates)
    removed = [ident, *contents(git, git.objects[ident])]
    if len(removed) >= len(git.objects):
        return None
    for i in removed:
        del git.objects[i]
    return "remove " + ", ".join(removed)


Change = Callable[[Git, Choose[Any]], "str | None"]

CHANGES: tuple[Change, ...] = (
    add_leaf, add_leaf, add_leaf, add_namespace, add_crd, add_crd_with_widget_in_new_namespace,
    change_note, change_content, change_content, change_selector_with_recreate, move_group,
    set_wave, set_depends_on, remove_leaf, remove_leaf, remove_container_keep_contents,
    remove_container_with_contents, restore_container,
)
"""What a commit may do; repeated entries are drawn more often."""
