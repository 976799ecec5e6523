"""CustomResourceDefinitions as the apply layer sees them: which kind one defines, and the one
way syncer turns a CRD into the `Resource` its custom resources are read and written through.
Pure: objects in, values out.

Two callers need that resource: the plan, for custom resources whose CRD this very sync
creates (discovery cannot know them yet), and the `foreign-inside` prune filter, which lists a
CRD's custom resources before deleting the CRD would delete them.
"""

from __future__ import annotations

from syncer.kube import Resource
from syncer.model import Object, ObjectRef

CRD_GROUP = "apiextensions.k8s.io"
CRD_KIND = "CustomResourceDefinition"


def is_crd(ref: ObjectRef) -> bool:
    return ref.group == CRD_GROUP and ref.kind == CRD_KIND


def is_namespace(ref: ObjectRef) -> bool:
    return ref.group == "" and ref.kind == "Namespace"


def crd_group_kind(crd: Object) -> tuple[str, str]:
    """(group, kind) of the custom resources a CRD defines."""
    spec = crd.get("spec") or {}
    return str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", ""))


def served_versions(crd: Object) -> list[str]:
    """The versions a CRD serves, in its order. A v1beta1 CRD may give only the legacy
    `spec.version`, which is served."""
    spec = crd.get("spec") or {}
    versions = spec.get("versions") or [{"name": spec.get("version", "v1")}]
    return [str(v["name"]) for v in versions if isinstance(v, dict) and v.get("name") and v.get("served", True)]


def crd_resource(crd: Object, *, version: str | None = None) -> Resource | None:
    """The resource a CRD serves its kind as, or None when it serves no such version.

    With `version` (what a manifest declares), that version or nothing: the body's
    apiVersion must match the version in the URL, the server refuses a server-side apply
    otherwise ("Incorrect version specified in apply patch"). Without it, the storage version
    when it is served, else the first served one: objects are stored in the storage version,
    so reading them there needs no conversion (a CRD's conversion webhook may be down; a
    list that fails then keeps the CRD, as `foreign-inside` does with anything it cannot
    list, so choosing the storage version keeps fewer CRDs for no reason)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    served = served_versions(crd)
    if version is None:
        versions = spec.get("versions") or []
        storage = next((str(v.get("name")) for v in versions if isinstance(v, dict) and v.get("storage")), None)
        version = storage if storage in served else next(iter(served), None)
    if version is None or version not in served:
        return None
    group, kind = crd_group_kind(crd)
    return Resource(group=group, version=version, kind=kind, plural=str(names.get("plural") or kind.lower() + "s"),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced")
