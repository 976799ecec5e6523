"""A plan as a reviewable document (`syncer plan`), and the checks `syncer apply` makes on it.

Pure: a `Plan` (the one every command executes) plus the facts around it in, plain data out.
The document holds what a reviewer needs to know and `apply` needs to prove the cluster has
not moved: per object the action, its reason, the changed fields (each with a digest of the
live value it replaces) and a digest of the body to apply, never the body; the prune set with
uids; the cluster's identity; a digest over all of it, and with a key an HMAC signature.

A Secret's body digest is a salted scrypt of it, so that a plan handed around as a CI
artifact is no cheap oracle for guessing a Secret's value; its changed fields carry paths only.
A document of which only the digest leaves the process (`app_context`: an App's approval, a
sync's intent and history) digests Secret bodies with sha256 instead: see `Context.shown`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from syncer.apply.planned import Plan, PlannedObject
from syncer.diff import is_secret, normalize
from syncer.diff.explain import Cause, FieldChange
from syncer.model import Action, AppId, Manifest, Object, ObjectRef

KIND = "Plan"
SIGNATURE_PREFIX = "hmac-sha256:"
DIGEST_PREFIX = "sha256:"
UNSIGNED_FIELDS = ("digest", "signature")
"""Left out of the bytes the digest and the signature cover."""


def canonical_json(value: Any) -> bytes:
    """One byte sequence per value: sorted keys, no whitespace, UTF-8 (RFC 8785's shape for
    the plain data a plan holds: strings, integers, booleans, null, lists and maps)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def sha256(data: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def sensitive_digest(data: bytes, *, salt: str) -> str:
    """A digest of data that may hold a Secret's value: scrypt with the plan's salt, so each
    guess costs an attacker what it costs us once."""
    derived = hashlib.scrypt(data, salt=bytes.fromhex(salt), n=2**14, r=8, p=1, dklen=32)
    return "scrypt:" + derived.hex()


def body_digest(body: Object, *, salt: str, shown: bool = True) -> str:
    """The digest of one body to apply (a Secret's through `sensitive_digest` when the
    document it enters is `shown`)."""
    data = canonical_json(body)
    return sensitive_digest(data, salt=salt) if shown and is_secret(body) else sha256(data)


def manifests_digest(manifests: Sequence[Manifest], *, salt: str) -> str:
    """The digest of the rendered manifests, in render order (they may hold Secrets)."""
    return sensitive_digest(canonical_json([m.obj for m in manifests]), salt=salt)


_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\["(.*?)"\]')


def value_at(obj: Any, path: str) -> Any:
    """The value at a readable path (`.spec.containers[0].image`, `.metadata.labels["a/b"]`,
    as `ObjectDiff.changed` writes them), or None where there is none."""
    position = 0
    while position < len(path):
        step = _STEP.match(path, position)
        if step is None:
            return None
        position = step.end()
        key, index, quoted = step.groups()
        if index is not None:
            if not isinstance(obj, list) or int(index) >= len(obj):
                return None
            obj = obj[int(index)]
        elif isinstance(obj, dict):
            obj = obj.get(key if key is not None else quoted)
        else:
            return None
    return obj


def plan_fields(planned: PlannedObject) -> list[dict[str, Any]]:
    """The fields of one planned object that enter the plan document: each field the apply
    changes, with its cause (`syncer.diff.explain`) and a digest of the live value it
    replaces (a hand edit of the field changes it; a Secret's fields carry none). The one
    place fields enter a plan."""
    live = normalize(planned.live) if planned.live is not None else None
    secret = is_secret(planned.body)
    changes = [field for field in planned.diff.fields if field.is_change]
    explained = {field.path for field in changes}
    changes += [FieldChange(path=path, cause=Cause.REMOVED) for path in planned.diff.removed if path not in explained]
    fields: list[dict[str, Any]] = []
    for change in changes:
        entry = change.to_dict()
        if live is not None and not secret:
            entry["live"] = sha256(canonical_json(value_at(live, change.path)))
        fields.append(entry)
    return fields


def _object_entry(planned: PlannedObject, *, context: Context) -> dict[str, Any]:
    reason = "recreate" if planned.action is Action.RECREATED else ("conflict" if planned.conflicts else "")
    return {
        "action": str(planned.action), "reason": reason, "message": planned.conflicts or "",
        "apiVersion": planned.api_version, "kind": planned.ref.kind, "namespace": planned.ref.namespace,
        "name": planned.ref.name, "fields": plan_fields(planned),
        "bodyDigest": body_digest(planned.body, salt=context.salt, shown=context.shown),
    }


@dataclass(frozen=True)
class Context:
    """What a plan records besides the plan itself: where it came from and where it goes."""

    source: Mapping[str, Any]
    """The selection and render options `apply` renders the recorded revision again with."""
    cluster_uid: str
    """The uid of the kube-system namespace: the cluster's identity."""
    server_version: str
    salt: str
    """Hex; salts the digests of what may hold a Secret's value."""
    created: str
    """RFC 3339, UTC."""
    shown: bool = True
    """Whether the document itself is handed around (a `syncer plan` file), so that each
    Secret's body digest must resist guessing on its own: a scrypt per Secret, 40 ms of CPU
    each. A document only whose digest is kept (`app_context`) needs none of them: its
    `manifestsDigest`, one scrypt over every rendered manifest, Secrets included, already
    makes each guess of a Secret's value from that digest cost a scrypt. Done per Secret, they
    were four fifths of the CPU of a fresh sync that writes 250 Secrets (bench/RESULTS.md)."""


def plan_document(plan: Plan, *, manifests: Sequence[Manifest], context: Context) -> dict[str, Any]:
    """The plan as a v1 `Plan` document, with its digest (unsigned)."""
    objects = [_object_entry(plan.objects[ref], context=context) for step in plan.steps for ref in step]
    prune = [{"action": str(d.action), "reason": d.reason, "message": d.message, "apiVersion": d.api_version,
              "kind": d.ref.kind, "namespace": d.ref.namespace, "name": d.ref.name,
              "uid": d.live["metadata"].get("uid", "")} for d in plan.prune]
    inventory = plan.inventory
    body: dict[str, Any] = {
        "schemaVersion": "v1", "kind": KIND, "created": context.created,
        "app": plan.options.app,
        "inventory": {"parent": f"ConfigMap/{inventory.parent.namespace}/{inventory.parent.name}",
                      "id": inventory.id, "groupKinds": sorted(inventory.group_kinds),
                      "namespaces": sorted(inventory.namespaces)},
        "source": dict(context.source), "revision": plan.revision,
        "manifestsDigest": manifests_digest(manifests, salt=context.salt), "salt": context.salt,
        "cluster": {"uid": context.cluster_uid, "serverVersion": context.server_version},
        "hasChanges": plan.has_changes, "blocked": plan.blocked, "objects": objects, "prune": prune,
        "warnings": list(plan.warnings),
    }
    return {**body, "digest": document_digest(body)}


def app_context(app: AppId) -> Context:
    """A context every replica and the CLI compute alike for one app: no creation time, and a
    salt derived from the app's identity, so one plan has one digest (approval, history)."""
    salt = hashlib.sha256(f"syncer approval {app.namespace}/{app.name}".encode()).hexdigest()[:32]
    return Context(source={"app": f"App/{app.namespace}/{app.name}"}, cluster_uid="", server_version="", salt=salt,
                   created="", shown=False)


def plan_digest(plan: Plan, *, manifests: Sequence[Manifest]) -> str:
    """The digest of the plan's document in `app_context`: what `syncer approve` approves for
    an App, and what a sync's history entry records."""
    app = AppId(namespace=plan.inventory.parent.namespace or "", name=plan.options.app)
    return str(plan_document(plan, manifests=manifests, context=app_context(app))["digest"])


def document_digest(document: Mapping[str, Any]) -> str:
    return sha256(canonical_json(_covered(document)))


def _covered(document: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in UNSIGNED_FIELDS}


def sign(document: Mapping[str, Any], *, key: bytes) -> dict[str, Any]:
    """The document with an HMAC-SHA256 signature over its canonical JSON (digest excluded)."""
    mac = hmac.new(key, canonical_json(_covered(document)), hashlib.sha256).hexdigest()
    return {**document, "signature": SIGNATURE_PREFIX + mac}


def integrity_problems(document: Mapping[str, Any], *, key: bytes | None) -> list[str]:
    """Why the document is not the one `syncer plan` wrote (and signed with `key`)."""
    problems = []
    if document.get("schemaVersion") != "v1" or document.get("kind") != KIND:
        return [f"not a v1 {KIND} document (schemaVersion {document.get('schemaVersion')!r}, "
                f"kind {document.get('kind')!r})"]
    if document.get("digest") != document_digest(document):
        problems.append("its digest does not match its content: the plan was altered after `syncer plan` wrote it")
    signature = document.get("signature")
    if key is not None:
        if not isinstance(signature, str):
            problems.append("it is not signed, and --plan-key-file asks for a signed plan")
        else:
            expected = sign(document, key=key)["signature"]
            if not hmac.compare_digest(signature, expected):
                problems.append("its signature does not match: the plan was altered, or signed with another key")
    elif signature is not None:
        problems.append("it is signed: give --plan-key-file to check its signature")
    return problems


def age_problem(document: Mapping[str, Any], *, now: datetime, max_age: float) -> str | None:
    created = parse_time(str(document.get("created", "")))
    if created is None:
        return f"its creation time {document.get('created')!r} is not an RFC 3339 time"
    age = (now - created).total_seconds()
    if age > max_age:
        return f"it was made {format_age(age)} ago, at {document['created']}, more than --max-age {format_age(max_age)}"
    return None


def parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def now_text(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_age(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _identity(entry: Mapping[str, Any]) -> str:
    ref = ObjectRef(group=str(entry.get("apiVersion", "")).rpartition("/")[0], kind=str(entry.get("kind", "")),
                    namespace=entry.get("namespace"), name=str(entry.get("name", "")))
    return str(ref)


def _fields_text(fields: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{f.get('path')} ({f.get('cause')}" + (f" from {f['manager']}" if f.get("manager") else "") + ")"
                     for f in fields) or "no fields"


def moved_objects(reviewed: Mapping[str, Any], fresh: Mapping[str, Any]) -> list[str]:
    """How the plan made now differs from the reviewed one, one line per object that moved:
    its action, its changed fields (and the live values they replace), its body, or a
    prune candidate (by uid). A controller's status write changes none of these."""
    moved: list[str] = []
    before = {_identity(o): o for o in reviewed.get("objects", [])}
    after = {_identity(o): o for o in fresh.get("objects", [])}
    for ref in sorted(set(before) | set(after)):
        old, new = before.get(ref), after.get(ref)
        if old is None or new is None:
            moved.append(f"{ref}: {'not in the reviewed plan' if old is None else 'no longer in the source'}")
        elif old["action"] != new["action"]:
            moved.append(f"{ref}: reviewed as {old['action']}, now {new['action']}")
        elif old.get("bodyDigest") != new.get("bodyDigest"):
            moved.append(f"{ref}: the source renders another body than the one reviewed")
        elif _field_set(old) != _field_set(new):
            changed = sorted({str(f["path"]) for f in _differing(old, new)})
            moved.append(f"{ref}: its fields moved since the review ({', '.join(changed)}): reviewed "
                         f"{_fields_text(old.get('fields', []))}; now {_fields_text(new.get('fields', []))}")
    old_prune = {_identity(d): d for d in reviewed.get("prune", [])}
    new_prune = {_identity(d): d for d in fresh.get("prune", [])}
    for ref in sorted(set(old_prune) | set(new_prune)):
        old, new = old_prune.get(ref), new_prune.get(ref)
        if old is None or new is None:
            moved.append(f"{ref}: {'a new prune candidate' if old is None else 'no longer a prune candidate'}")
        elif (old["action"], old.get("uid")) != (new["action"], new.get("uid")):
            moved.append(f"{ref}: reviewed as {old['action']} (uid {old.get('uid')}), "
                         f"now {new['action']} (uid {new.get('uid')})")
    return moved


def moved_since(reviewed: Mapping[str, Any], plan: Plan, *, manifests: Sequence[Manifest],
                context: Context) -> list[str]:
    """What keeps `plan` (made now, of `manifests`) from being the reviewed one: the objects
    that moved (`moved_objects`), or other manifests from the same revision."""
    fresh = plan_document(plan, manifests=manifests, context=context)
    moved = moved_objects(reviewed, fresh)
    if not moved and fresh["manifestsDigest"] != reviewed["manifestsDigest"]:
        moved.append("the revision renders other manifests than the reviewed ones")
    return moved


def _field_key(field: Mapping[str, Any]) -> tuple[str, ...]:
    """What of a planned field must hold at apply time: the path, its cause, the manager it is
    taken from, and the live value (the time of a manager's entry moves with its other fields)."""
    return (str(field.get("path")), str(field.get("cause")), str(field.get("manager", "")),
            str(field.get("takesOver", False)), str(field.get("live", "")))


def _field_set(entry: Mapping[str, Any]) -> set[tuple[str, ...]]:
    return {_field_key(f) for f in entry.get("fields", [])}


def _differing(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    shared = _field_set(old) & _field_set(new)
    return [f for f in [*old.get("fields", []), *new.get("fields", [])]
            if _field_key(f) not in shared]
