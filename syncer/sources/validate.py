"""Checking a rendered set of documents as a whole, and turning it into manifests.

Pure: documents in, manifests and problems out. Rendering fails if any problem is found, so
a half-valid set is never applied (a missing object could otherwise be pruned).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from syncer.errors import Problem
from syncer.model import Manifest, ObjectRef, Origin, split_api_version
from syncer.sources.limits import is_list

CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "ComponentStatus"),
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("extensions", "PodSecurityPolicy"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("internal.apiserver.k8s.io", "StorageVersion"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("node.k8s.io", "RuntimeClass"),
        ("policy", "PodSecurityPolicy"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceSlice"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "VolumeAttributesClass"),
        ("storagemigration.k8s.io", "StorageVersionMigration"),
    }
)
"""Well-known cluster-scoped kinds by (group, kind). Any other kind not defined by a CRD in
the same render is assumed namespaced; its namespace is marked as defaulted so the applier
can drop it when discovery says otherwise."""

_CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")


@dataclass(frozen=True)
class RenderedDocument:
    """A decoded document before validation, with where it came from."""

    obj: Any
    origin: Origin
    where: str
    """How problems name it: `file:line`, or the kustomization and document number."""
    item_lines: tuple[int, ...] = ()
    value_lines: dict[tuple[int | None, str, str], int] = field(default_factory=dict)
    """Lines of a Secret's `data`/`stringData` entries (see yamlload.Document)."""


def validate(documents: Iterable[RenderedDocument], *, namespace: str) -> tuple[list[Manifest], list[Problem]]:
    """Manifests for every valid document, and every problem found in the set.

    Lists are flattened; namespaced objects without a namespace get `namespace`; for
    well-known cluster-scoped kinds a stray `metadata.namespace` is dropped, as the API
    server ignores it, so that the object's identity matches the live one.
    """
    problems: list[Problem] = []
    candidates: list[RenderedDocument] = []
    for document in flatten_lists(documents):
        found = shape_problems(document.obj) or string_map_problems(document.obj)
        problems += [Problem(document.where, message) for message in found]
        if not found:
            candidates.append(document)
    scopes = cluster_scoped_kinds(document.obj for document in candidates)
    manifests: list[Manifest] = []
    first_seen: dict[ObjectRef, RenderedDocument] = {}
    for document in candidates:
        manifest = _with_namespace(document, namespace=namespace, scopes=scopes)
        ref = manifest.ref
        first = first_seen.setdefault(ref, document)
        if first is not document and first.obj == document.obj:
            continue  # the same object written twice (Knative's CRDs): one desired state, applied once
        if first is not document:
            problems.append(
                Problem(
                    document.where,
                    f"{ref.qualified()} is defined twice: here and at {first.where}; remove one of them",
                )
            )
            continue
        manifests.append(manifest)
        problems += secret_problems(manifest.obj, ref=ref.qualified(), document=document)
    return manifests, problems


def flatten_lists(documents: Iterable[RenderedDocument]) -> Iterator[RenderedDocument]:
    """`kind: List` (and `*List` kinds with `items`) become their items, recursively."""
    for document in documents:
        if not is_list(document.obj):
            yield document
            continue
        items = document.obj.get("items") or []
        for number, item in enumerate(items):
            if number < len(document.item_lines):
                line = document.item_lines[number]
                where = f"{document.origin.file}:{line}"
            else:
                line = document.origin.line
                where = f"{document.where}, item {number + 1}"
            origin = Origin(file=document.origin.file, document=document.origin.document, line=line)
            value_lines: dict[tuple[int | None, str, str], int] = {
                (None, field_name, key): value_line
                for (item, field_name, key), value_line in document.value_lines.items() if item == number}
            yield from flatten_lists([RenderedDocument(obj=item, origin=origin, where=where, value_lines=value_lines)])


def shape_problems(obj: Any) -> list[str]:
    """What keeps a document from being an object the API server could identify."""
    if not isinstance(obj, dict):
        return [
            f"the document is a {_type_name(obj)}, not a Kubernetes object "
            "(a mapping with apiVersion, kind and metadata.name)"
        ]
    missing: list[str] = []
    found: list[str] = []
    for field in ("apiVersion", "kind"):
        _check_string(obj.get(field), field, missing=missing, found=found)
    metadata = obj.get("metadata")
    if metadata is None:
        missing.append("metadata.name")
    elif not isinstance(metadata, dict):
        found.append(f"metadata must be a mapping, not a {_type_name(metadata)}")
    else:
        _check_string(metadata.get("name"), "metadata.name", missing=missing, found=found)
        if "metadata.name" in missing and "generateName" in metadata:
            found.append("metadata.generateName is not supported: objects are applied by name")
        namespace = metadata.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            found.append(f"metadata.namespace must be a string, not a {_type_name(namespace)} (quote it)")
    if missing:
        found.insert(0, f"{_join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    return found


def secret_problems(obj: dict[str, Any], *, ref: str, document: RenderedDocument) -> list[Problem]:
    """A core Secret's values must be what the API server takes: `stringData` strings and
    `data` base64 strings. YAML turns unquoted `true`, `1.50`, `null` and `0755` into a
    boolean, a float, nothing and the octal number 493; sending them as text would change the
    value (`kubectl` refuses them too), and invalid base64 makes Kubernetes 1.20 answer with a
    500 that looks transient. Messages name the key, never the value. A SOPS-encrypted
    Secret's values are ciphertext until it is decrypted (`decrypted_secret_problems`)."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1" or is_encrypted(obj):
        return []
    problems = []
    for field_name, key, problem in _secret_value_problems(obj):
        line = document.value_lines.get((None, field_name, key)) if key is not None else None
        where = f"{document.origin.file}:{line}" if line is not None else document.where
        problems.append(Problem(where, f"{ref}: {field_name}{'.' + key if key is not None else ''} {problem}"))
    return problems


def decrypted_secret_problems(obj: dict[str, Any], *, ref: str, where: str) -> list[Problem]:
    """`secret_problems` for a Secret SOPS has just decrypted."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return []
    return [Problem(where, f"{ref}: {field_name}{'.' + key if key is not None else ''} {problem}")
            for field_name, key, problem in _secret_value_problems(obj)]


def is_encrypted(obj: dict[str, Any]) -> bool:
    """Whether the document is SOPS-encrypted (a top-level `sops` mapping with a `mac`)."""
    metadata = obj.get("sops")
    return isinstance(metadata, dict) and "mac" in metadata


def _secret_value_problems(obj: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(field, key, problem) for each value of `stringData` and `data` the server would not
    take; key None: the field itself is wrong."""
    found: list[tuple[str, str | None, str]] = []
    for field_name in ("stringData", "data"):
        values = obj.get(field_name)
        if values is None:
            continue
        if not isinstance(values, dict):
            found.append((field_name, None, f"must be a mapping of keys to "
                                            f"{'strings' if field_name == 'stringData' else 'base64 strings'}, "
                                            f"not a {_type_name(values)}"))
            continue
        for key, value in values.items():
            problem = _secret_value_problem(field_name, value)
            if problem is not None:
                found.append((field_name, str(key), problem))
    return found


def _secret_value_problem(field_name: str, value: Any) -> str | None:
    if isinstance(value, str):
        if field_name == "stringData":
            return None
        try:
            base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
        except (binascii.Error, ValueError):
            return "is not valid base64 (data holds base64-encoded values; put plain text under stringData)"
        return None
    what = "a string" if field_name == "stringData" else "a base64 string"
    if isinstance(value, (dict, list)):
        return f"must be {what}, not a {_type_name(value)}"
    if value is None:
        return f'must be {what}, not null (YAML reads an empty value or ~ as null); quote it, e.g. ""'
    if isinstance(value, bool):
        hint = "YAML reads unquoted true, false, yes and no as booleans"
    elif isinstance(value, int):
        hint = "YAML reads unquoted digits as a number, octal when they start with a zero"
    else:
        hint = "YAML reads it as a number and drops trailing zeros"
    return f"must be {what}, not a {_type_name(value)} ({hint}); quote the value"


_STRING_MAPS: tuple[tuple[str, ...], ...] = (
    ("metadata", "labels"),
    ("metadata", "annotations"),
    ("spec", "selector", "matchLabels"),
    ("spec", "template", "metadata", "labels"),
    ("spec", "template", "metadata", "annotations"),
    ("spec", "jobTemplate", "spec", "template", "metadata", "labels"),
    ("spec", "jobTemplate", "spec", "template", "metadata", "annotations"),
)
_STRING_DATA: dict[tuple[str, str], tuple[str, ...]] = {
    ("v1", "ConfigMap"): ("data",),
}
"""A Secret's values are checked by `secret_problems`, whose messages never quote a value."""


def string_map_problems(obj: dict[str, Any]) -> list[str]:
    """Labels, annotations and ConfigMap or Secret data whose values are not strings.

    YAML 1.1 reads `labeled: yes` as a boolean, and so do kubectl and the API server: such an
    object is rejected by the server with no file or line. Found here, the message can say
    where it is and how to fix it.
    """
    paths = [*_STRING_MAPS, *((key,) for key in _STRING_DATA.get((obj["apiVersion"], obj["kind"]), ()))]
    found: list[str] = []
    for path in paths:
        mapping: Any = obj
        for key in path:
            mapping = mapping.get(key) if isinstance(mapping, dict) else None
        if not isinstance(mapping, dict):
            continue
        for key, value in mapping.items():
            if value is not None and not isinstance(value, str):
                what = _type_name(value)
                hint = " (YAML reads yes/no/on/off/y/n/true/false unquoted as booleans, as Kubernetes does)" if what == "boolean" else ""
                name = obj["metadata"]["name"]
                found.append(
                    f"{obj['kind']}/{name}: {'.'.join(path)}.{key} must be a string, not a {what} "
                    f"({_json_scalar(value)}); quote it{hint}"
                )
    return found


def _json_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, (int, float)) else _type_name(value)


def cluster_scoped_kinds(objects: Iterable[dict[str, Any]]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> cluster-scoped?, from the well-known table and CRDs in the render."""
    scopes = {group_kind: True for group_kind in CLUSTER_SCOPED}
    for obj in objects:
        group, _ = split_api_version(obj["apiVersion"])
        if (group, obj["kind"]) != _CRD:
            continue
        spec = obj.get("spec")
        names = spec.get("names") if isinstance(spec, dict) else None
        if isinstance(spec, dict) and isinstance(names, dict):
            crd_group, crd_kind = spec.get("group"), names.get("kind")
            if isinstance(crd_group, str) and isinstance(crd_kind, str):
                scopes[(crd_group, crd_kind)] = spec.get("scope") == "Cluster"
    return scopes


def _with_namespace(document: RenderedDocument, *, namespace: str, scopes: dict[tuple[str, str], bool]) -> Manifest:
    obj = document.obj
    metadata = obj["metadata"]
    group, _ = split_api_version(obj["apiVersion"])
    if scopes.get((group, obj["kind"]), False):
        metadata.pop("namespace", None)
        return Manifest(obj=obj, origin=document.origin)
    if metadata.get("namespace"):
        return Manifest(obj=obj, origin=document.origin)
    metadata["namespace"] = namespace
    return Manifest(obj=obj, origin=document.origin, namespace_defaulted=True)


def _check_string(value: Any, field: str, *, missing: list[str], found: list[str]) -> None:
    if value is None or value == "":
        missing.append(field)
    elif not isinstance(value, str):
        found.append(f"{field} must be a string, not a {_type_name(value)} (quote it)")


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _type_name(value: Any) -> str:
    names = {dict: "mapping", list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
