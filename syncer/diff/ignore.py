"""Differences the user has declared irrelevant, modelled on Argo CD's `ignoreDifferences`.

Some fields are legitimately changed in the cluster by someone else (a mutating webhook's
injected sidecar, a generated value). Ignore rules name such fields, by JSON pointer or by the
field manager that owns them; they are removed from both sides before comparing, so they
neither show in a diff nor make an object count as changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncer.diff.fieldsets import managed_by, present_paths
from syncer.diff.normalize import Path, without_paths
from syncer.errors import ConfigError
from syncer.model import Object, ObjectRef

IGNORE_ANNOTATION = "syncer.dev/ignore-differences"
"""On an object in Git: comma-separated JSON pointers to ignore for that object."""

_FIELDS = {"group", "kind", "name", "namespace", "jsonPointers", "managedFieldsManagers"}


@dataclass(frozen=True)
class IgnoreRule:
    """Which objects a rule applies to (`"*"` matches any group or kind, None any name or
    namespace) and what to ignore in them."""

    kind: str
    group: str = ""
    name: str | None = None
    namespace: str | None = None
    json_pointers: tuple[str, ...] = ()
    """RFC 6901 pointers, e.g. "/spec/replicas", "/metadata/annotations/foo~1bar"."""
    managed_fields_managers: tuple[str, ...] = ()
    """Ignore every field these managers own in the live object."""

    def matches(self, ref: ObjectRef) -> bool:
        return (
            self.kind in ("*", ref.kind)
            and self.group in ("*", ref.group)
            and self.name in (None, ref.name)
            and self.namespace in (None, ref.namespace)
        )


def _strings(value: Any, *, field: str, at: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{at}.{field}: must be a list of non-empty strings")
    return tuple(value)


def _check_pointer(pointer: str, *, at: str) -> None:
    if not pointer.startswith("/"):
        raise ConfigError(
            f"{at}: {pointer!r} is not a JSON pointer; write it from the object's root, "
            f"like /spec/replicas (escape '/' in a key as ~1)"
        )


def _optional(entry: dict[str, Any], field: str, *, at: str) -> str | None:
    value = entry.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{at}.{field}: must be a non-empty string")
    return value


def parse_ignore_rules(raw: list[dict[str, Any]], *, where: str) -> list[IgnoreRule]:
    """Rules from an app's config (`ignoreDifferences:` entries, Argo CD's field names).

    `where` names the config (file or `file:line`); errors name it and the entry's index.
    """
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: ignoreDifferences: must be a list of rules")
    rules: list[IgnoreRule] = []
    for index, entry in enumerate(raw):
        at = f"{where}: ignoreDifferences[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: must be a mapping with kind and jsonPointers")
        if "jqPathExpressions" in entry:
            raise ConfigError(f"{at}.jqPathExpressions: not supported; use jsonPointers")
        unknown = sorted(str(key) for key in entry if key not in _FIELDS)
        if unknown:
            raise ConfigError(
                f"{at}: unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(_FIELDS))}"
            )
        kind = entry.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"{at}.kind: required (a kind like Deployment, or \"*\")")
        group = entry.get("group", "")
        if not isinstance(group, str):
            raise ConfigError(f"{at}.group: must be a string (\"\" for the core group)")
        pointers = _strings(entry.get("jsonPointers", []), field="jsonPointers", at=at)
        for number, pointer in enumerate(pointers):
            _check_pointer(pointer, at=f"{at}.jsonPointers[{number}]")
        managers = _strings(
            entry.get("managedFieldsManagers", []), field="managedFieldsManagers", at=at
        )
        if not pointers and not managers:
            raise ConfigError(f"{at}: ignores nothing; give jsonPointers or managedFieldsManagers")
        rules.append(
            IgnoreRule(
                kind=kind,
                group=group,
                name=_optional(entry, "name", at=at),
                namespace=_optional(entry, "namespace", at=at),
                json_pointers=pointers,
                managed_fields_managers=managers,
            )
        )
    return rules


def rules_for(ref: ObjectRef, desired: Object | None, rules: Sequence[IgnoreRule]) -> list[IgnoreRule]:
    """The rules that apply to `ref`, plus one from its `IGNORE_ANNOTATION` in Git, if any."""
    matching = [rule for rule in rules if rule.matches(ref)]
    metadata = (desired or {}).get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    value = annotations.get(IGNORE_ANNOTATION) if isinstance(annotations, dict) else None
    if isinstance(value, str):
        pointers = tuple(p.strip() for p in value.split(",") if p.strip())
        for pointer in pointers:
            _check_pointer(pointer, at=f"{ref}: annotation {IGNORE_ANNOTATION}")
        if pointers:
            matching.append(
                IgnoreRule(
                    kind=ref.kind,
                    group=ref.group,
                    name=ref.name,
                    namespace=ref.namespace,
                    json_pointers=pointers,
                )
            )
    return matching


def pointer_path(obj: Object, pointer: str) -> Path | None:
    """The concrete path RFC 6901 `pointer` names in `obj`, or None when it is not there."""
    path: list[str | int] = []
    value: Any = obj
    for token in pointer.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and key in value:
            path.append(key)
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            path.append(int(key))
            value = value[int(key)]
        else:
            return None
    return tuple(path)


def apply_ignores(obj: Object, *, rules: Sequence[IgnoreRule], live: Object | None) -> Object:
    """A copy of `obj` without the paths `rules` ignore.

    Pointers that name nothing are skipped. `managed_fields_managers` are looked up in
    `live`'s managedFields and resolved against `obj` itself (list items by their keys), so
    calling this on live and on the predicted object with the same `live` removes the same
    fields from both. `obj`'s own managedFields are left alone: ownership is still needed after.
    """
    paths: list[Path] = []
    for rule in rules:
        for pointer in rule.json_pointers:
            path = pointer_path(obj, pointer)
            if path:
                paths.append(path)
        if rule.managed_fields_managers and live is not None:
            paths.extend(present_paths(obj, managed_by(live, rule.managed_fields_managers)))
    return without_paths(obj, paths)
