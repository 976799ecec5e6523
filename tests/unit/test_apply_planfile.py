"""The plan document (`syncer plan`) and the checks `syncer apply` makes on it: canonical JSON,
digests, signing, staleness and the pull-request markdown, as tables of plain data."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from syncer.apply.planfile import (
    Context,
    age_problem,
    app_context,
    body_digest,
    canonical_json,
    integrity_problems,
    moved_objects,
    plan_document,
    sign,
    value_at,
)
from syncer.apply.planned import Check, Desired, PlannedObject
from syncer.cli.planoutput import plan_markdown
from syncer.diff import compare
from syncer.model import Action, AppId, Manifest, ObjectRef, Origin
from tests.schema import undocumented_fields, validation_errors
from tests.unit.fakes import make_plan, planned, pruned, resource

SALT = "00112233445566778899aabbccddeeff"
CONTEXT = Context(source={"name": "shop", "repo": "."}, cluster_uid="uid-1", server_version="1.37.2", salt=SALT,
                  created="2026-01-02T03:04:05Z")
KEY = b"k" * 32


def configmap(color: str, *, live: bool = True) -> PlannedObject:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"},
            "data": {"color": color}}
    before = {**copy.deepcopy(body), "data": {"color": "blue"}}
    r = ObjectRef.of(body)
    diff = compare(ref=r, api_version="v1", live=before if live else None, predicted=body)
    return PlannedObject(Desired(ref=r, api_version="v1", body=body, resource=resource("ConfigMap"),
                                 origin=Origin("web.yaml"), live=before if live else None), Check(diff.action, diff))


def secret(value: str) -> PlannedObject:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
            "stringData": {"password": value}}
    live = {**body, "metadata": {**body["metadata"], "uid": "u"}, "stringData": {}, "data": {"password": "b2xk"}}
    r = ObjectRef.of(body)
    diff = compare(ref=r, api_version="v1", live=live, predicted={**body, "stringData": {}, "data": {
        "password": "bmV3LXNlY3JldC12YWx1ZQ=="}})
    return PlannedObject(Desired(ref=r, api_version="v1", body=body, resource=resource("Secret"),
                                 origin=Origin("db.yaml"), live=live), Check(diff.action, diff))


def document(*objects: PlannedObject, **kwargs: Any) -> dict[str, Any]:
    plan = make_plan([list(objects)], **kwargs)
    manifests = [Manifest(obj=o.body, origin=o.origin) for o in objects]
    return plan_document(plan, manifests=manifests, context=CONTEXT)


def test_canonical_json_is_one_byte_sequence_per_value() -> None:
    assert canonical_json({"b": [1, "é"], "a": None}) == canonical_json({"a": None, "b": [1, "é"]})
    assert canonical_json({"b": [1, "é"], "a": None}) == '{"a":null,"b":[1,"é"]}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


@pytest.mark.parametrize(("path", "want"), [
    (".spec.replicas", 3),
    (".spec.containers[0].image", "nginx"),
    ('.metadata.labels["app.kubernetes.io/name"]', "web"),
    (".spec.containers[4].image", None),
    (".spec.missing.deeper", None),
    (".spec.replicas.deeper", None),
])
def test_value_at_reads_the_paths_a_diff_names(path: str, want: Any) -> None:
    obj = {"metadata": {"labels": {"app.kubernetes.io/name": "web"}},
           "spec": {"replicas": 3, "containers": [{"image": "nginx"}]}}
    assert value_at(obj, path) == want


def test_the_document_holds_digests_never_a_body_and_validates_against_v1() -> None:
    doc = document(configmap("green"), secret("new-secret-value"), prune=[pruned("ConfigMap/shop/old")])
    assert validation_errors(doc) == [] and undocumented_fields(doc) == []
    text = canonical_json(doc).decode()
    assert "green" not in text and "new-secret-value" not in text and "bmV3LXNlY3JldC12YWx1ZQ" not in text
    web = next(o for o in doc["objects"] if o["name"] == "web")
    assert web["action"] == "configured" and [f["path"] for f in web["fields"]] == [".data.color"]
    assert web["fields"][0]["live"].startswith("sha256:")
    db = next(o for o in doc["objects"] if o["name"] == "db")
    assert db["bodyDigest"].startswith("scrypt:") and all("live" not in f for f in db["fields"])
    assert doc["prune"] == [{"action": "deleted", "reason": "", "message": "pruned: no longer in the source",
                             "apiVersion": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "old",
                             "uid": "live-old"}]


def test_body_digests_differ_with_the_body_and_a_secrets_with_the_salt() -> None:
    body = configmap("green").body
    assert body_digest(body, salt=SALT) == body_digest(copy.deepcopy(body), salt=SALT)
    assert body_digest(body, salt=SALT) != body_digest(configmap("red").body, salt=SALT)
    db = secret("x").body
    assert body_digest(db, salt=SALT) != body_digest(db, salt="ff" * 16)


def test_an_approvals_document_digests_secret_bodies_once_and_still_changes_with_their_values() -> None:
    """Only the digest of an App's plan document is kept (approval, intent, history): its
    Secret bodies get a sha256 each, the one scrypt of the manifests guards their values,
    and a changed value is a different plan to approve."""
    def approval_document(value: str) -> dict[str, Any]:
        db = secret(value)
        return plan_document(make_plan([[db]]), manifests=[Manifest(obj=db.body, origin=db.origin)],
                             context=app_context(AppId(namespace="shop", name="web")))

    old, new = approval_document("old-secret-value"), approval_document("new-secret-value")
    assert old["objects"][0]["bodyDigest"].startswith("sha256:")
    assert old["manifestsDigest"].startswith("scrypt:")
    assert old["objects"][0]["bodyDigest"] != new["objects"][0]["bodyDigest"]
    assert old["manifestsDigest"] != new["manifestsDigest"] and old["digest"] != new["digest"]
    assert "old-secret-value" not in canonical_json(old).decode()


def test_a_plan_as_written_passes_and_any_edit_is_caught() -> None:
    doc = document(configmap("green"))
    assert integrity_problems(doc, key=None) == []
    edited = {**doc, "hasChanges": False}
    assert "its digest does not match" in integrity_problems(edited, key=None)[0]
    assert "not a v1 Plan" in integrity_problems({**doc, "kind": "Diff"}, key=None)[0]


def test_a_signed_plan_is_checked_with_the_key() -> None:
    signed = sign(document(configmap("green")), key=KEY)
    assert signed["signature"].startswith("hmac-sha256:")
    assert integrity_problems(signed, key=KEY) == []
    assert "signed with another key" in integrity_problems(signed, key=b"x" * 32)[0]
    assert "give --plan-key-file" in integrity_problems(signed, key=None)[0]
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    assert "it is not signed" in integrity_problems(unsigned, key=KEY)[0]
    # An attacker who edits and digests again still cannot sign.
    tampered = copy.deepcopy(signed)
    tampered["objects"][0]["action"] = "unchanged"
    from syncer.apply.planfile import document_digest
    tampered["digest"] = document_digest(tampered)
    assert integrity_problems(tampered, key=KEY) == ["its signature does not match: the plan was altered, or "
                                                     "signed with another key"]


@pytest.mark.parametrize(("age", "refused"), [(timedelta(hours=23), False), (timedelta(hours=25), True)])
def test_a_plan_older_than_max_age_is_refused(age: timedelta, refused: bool) -> None:
    doc = document(configmap("green"))
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc) + age
    problem = age_problem(doc, now=now, max_age=24 * 3600)
    assert (problem is not None) == refused
    if refused:
        assert "25h00m ago" in str(problem)


def test_the_same_plan_made_again_has_not_moved() -> None:
    doc = document(configmap("green"), secret("s"), prune=[pruned("ConfigMap/shop/old")])
    again = document(configmap("green"), secret("s"), prune=[pruned("ConfigMap/shop/old")])
    assert moved_objects(doc, again) == []


def test_a_controllers_status_write_does_not_move_a_plan() -> None:
    doc = document(configmap("green"))
    status_written = configmap("green")
    assert status_written.live is not None
    status_written.live["status"] = {"observedGeneration": 2}
    status_written.live["metadata"]["resourceVersion"] = "99"
    assert moved_objects(doc, document(status_written)) == []


def test_what_moves_a_plan() -> None:
    doc = document(configmap("green"), prune=[pruned("ConfigMap/shop/old")])
    hand_edit = configmap("green")
    assert hand_edit.live is not None
    hand_edit.live["data"]["color"] = "purple"
    cases = {
        "a hand edit of a planned field": document(hand_edit, prune=[pruned("ConfigMap/shop/old")]),
        "another action": document(configmap("green", live=False), prune=[pruned("ConfigMap/shop/old")]),
        "another body": document(configmap("red"), prune=[pruned("ConfigMap/shop/old")]),
        "an object recreated under the same name": document(
            configmap("green"), prune=[pruned("ConfigMap/shop/old", live={"apiVersion": "v1", "kind": "ConfigMap",
                                                                          "metadata": {"name": "old", "uid": "new",
                                                                                       "namespace": "shop"}})]),
        "a prune kept now": document(configmap("green"), prune=[pruned("ConfigMap/shop/old", Action.KEPT, "x")]),
        "a prune gone": document(configmap("green")),
    }
    for what, fresh in cases.items():
        moved = moved_objects(doc, fresh)
        assert len(moved) == 1, (what, moved)
        expected = "ConfigMap/shop/old" if "prune" in what or "recreated" in what else "ConfigMap/shop/web"
        assert moved[0].startswith(expected + ":"), (what, moved)


def test_unchanged_objects_are_compared_too() -> None:
    quiet = planned("ConfigMap/shop/same", Action.UNCHANGED)
    drifted = planned("ConfigMap/shop/same", Action.CONFIGURED)
    assert moved_objects(document(quiet), document(drifted)) == [
        "ConfigMap/shop/same: reviewed as unchanged, now configured"]


def test_the_markdown_comment_puts_the_summary_first_and_masks_secrets() -> None:
    objects = [configmap("green"), secret("new-secret-value")]
    doc = document(*objects, prune=[pruned("ConfigMap/shop/old")])
    diffs = {str(o.ref): o.diff.diff for o in objects}
    text = plan_markdown(doc, diffs=diffs)
    first = text.splitlines()[2]
    assert first == "**2 configured, 1 deleted** (changes)"
    assert text.count("<details>") == 3 and text.count("</details>") == 3
    assert "<code>~ configured v1 Secret/shop/db</code>" in text
    assert "new-secret-value" not in text and "bmV3LXNlY3JldC12YWx1ZQ" not in text and "b2xk" not in text
    assert "<secret sha256:" in text
    assert "+  color: green" in text
