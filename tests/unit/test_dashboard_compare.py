"""The dashboard's comparison of two history entries: the objects that differ between two
renders with each field's old and new value (a Secret's never), the renders kept per
(namespace, name, revision, path) and made only by the App's own reconciler, and the page."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import pytest

from syncer.apply.history import HistoryEntry, Trigger, TriggerKind
from syncer.config import AppConfig
from syncer.dashboard.compare import (
    Comparison,
    FieldValues,
    NotRendered,
    Renders,
    compare_entries,
    entry_key,
    find_entry,
    object_changes,
)
from syncer.dashboard.comparepage import compare_main
from syncer.daemon.reconciler import UNKNOWN_REVISION
from syncer.errors import RenderError, Problem
from syncer.model import Manifest, Origin
from syncer.sources import WORKING_TREE
from syncer.sources.snapshot import RevisionGone

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
OLD_SECRET, NEW_SECRET = "old-pa55-4a1f", "new-pa55-9c2e"
FIRST, SECOND = "1" * 40, "2" * 40


def manifest(obj: dict[str, Any], *, decrypted: bool = False) -> Manifest:
    return Manifest(obj=obj, origin=Origin("shop/all.yaml"), decrypted=decrypted)


def configmap(name: str, **data: Any) -> Manifest:
    return manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"},
                     "data": data})


def secret(password: str) -> Manifest:
    return manifest({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "shop"},
                     "stringData": {"password": password}})


def deployment(image: str) -> Manifest:
    return manifest({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                     "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})


BEFORE = [configmap("web-config", color="blue", size="m"), secret(OLD_SECRET), configmap("old-config", a="1"),
          deployment("web:1")]
AFTER = [configmap("web-config", color="green", size="m", shape="round"), secret(NEW_SECRET),
         configmap("new-config", b="2"), deployment("web:1")]


def entry(revision: str, started: str, **fields: Any) -> HistoryEntry:
    return HistoryEntry(revision=revision, started=started, finished=started, seconds=1.5,
                        trigger=Trigger(TriggerKind.INTERVAL), result="Succeeded", **fields)


def secret_forms(*values: str) -> list[str]:
    return [form for value in values for form in (value, base64.b64encode(value.encode()).decode())]


def test_each_object_that_differs_with_its_fields_old_and_new_values() -> None:
    changes, unchanged = object_changes(BEFORE, AFTER, sides=("a", "b"))
    assert unchanged == 1  # the Deployment
    by_name = {change.name: change for change in changes}
    assert [(c.action, c.kind, c.name) for c in changes] == [
        ("changed", "ConfigMap", "web-config"), ("changed", "Secret", "creds"), ("added", "ConfigMap", "new-config"),
        ("removed", "ConfigMap", "old-config")]
    assert by_name["web-config"].fields == (FieldValues(".data.color", "blue", "green"),
                                            FieldValues(".data.shape", None, "round"))
    assert "+  color: green" in by_name["web-config"].diff and "-  color: blue" in by_name["web-config"].diff
    assert "b: '2'" in by_name["new-config"].diff


def test_a_secrets_fields_are_named_and_its_values_never_kept() -> None:
    changes, _ = object_changes(BEFORE, AFTER, sides=("a", "b"))
    creds = next(change for change in changes if change.name == "creds")
    assert creds.hidden and creds.fields == (FieldValues(".data.password", "", ""),) and creds.diff == ""
    text = repr(changes)
    assert "secret sha256" not in text
    for form in secret_forms(OLD_SECRET, NEW_SECRET):
        assert form not in text


def test_a_document_sops_decrypted_is_hidden_as_a_secret_is() -> None:
    before = [manifest(configmap("keys", token="t-old").obj, decrypted=True)]
    after = [manifest(configmap("keys", token="t-new").obj, decrypted=True)]
    changes, _ = object_changes(before, after, sides=("a", "b"))
    assert changes[0].hidden and changes[0].fields == (FieldValues(".data.token", "", ""),)
    assert "t-old" not in repr(changes) and "t-new" not in repr(changes)


@dataclass
class FakeReconciler:
    app: AppConfig
    renders: dict[str, list[Manifest] | Exception]
    calls: list[str] = field(default_factory=list)
    delay: float = 0.0

    def render_commit(self, revision: str) -> list[Manifest]:
        self.calls.append(revision)
        time.sleep(self.delay)
        found = self.renders[revision]
        if isinstance(found, Exception):
            raise found
        return found


def app_config(path: str = "shop") -> AppConfig:
    return AppConfig(name="shop", repo="https://git.example/shop.git", path=path, namespace="shop", home="team-a")


def renders_of(reconciler: FakeReconciler | None, **options: Any) -> Renders:
    holder = {"team-a/shop": reconciler}
    return Renders(lambda key: holder.get(key), **options)  # type: ignore[arg-type, return-value]


def test_a_commits_render_is_kept_and_made_once() -> None:
    reconciler = FakeReconciler(app_config(), {FIRST: BEFORE, SECOND: AFTER}, delay=0.2)
    renders = renders_of(reconciler)
    threads = [threading.Thread(target=renders.render, args=("team-a", "shop", FIRST)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert renders.render("team-a", "shop", FIRST) == BEFORE
    assert reconciler.calls == [FIRST]
    with pytest.raises(NotRendered, match="has not run this App"):
        renders.render("team-b", "shop", FIRST)


def test_a_new_configuration_or_path_renders_again() -> None:
    reconciler = FakeReconciler(app_config(), {FIRST: BEFORE})
    holder: dict[str, Any] = {"team-a/shop": reconciler}
    renders = Renders(lambda key: holder.get(key))
    renders.render("team-a", "shop", FIRST)
    holder["team-a/shop"] = same = FakeReconciler(app_config(), {FIRST: AFTER})  # rebuilt, configured alike
    assert renders.render("team-a", "shop", FIRST) == BEFORE
    holder["team-a/shop"] = other_namespace = FakeReconciler(replace(app_config(), namespace="web"), {FIRST: AFTER})
    assert renders.render("team-a", "shop", FIRST) == AFTER
    holder["team-a/shop"] = moved = FakeReconciler(app_config("shop/v2"), {FIRST: BEFORE})
    assert renders.render("team-a", "shop", FIRST) == BEFORE
    assert (reconciler.calls, same.calls, other_namespace.calls, moved.calls) == ([FIRST], [], [FIRST], [FIRST])


def test_a_revision_gone_or_broken_is_a_message_naming_it_kept_a_while() -> None:
    gone = RevisionGone("repository https://git.example/shop.git: has no commit 1111 any more",
                        repo="https://git.example/shop.git", revision=FIRST)
    broken = RenderError([Problem("shop/all.yaml:3", "mapping values are not allowed here")])
    reconciler = FakeReconciler(app_config(), {FIRST: gone, SECOND: broken})
    renders = renders_of(reconciler, failure_seconds=0.3)
    with pytest.raises(NotRendered) as missing:
        renders.render("team-a", "shop", FIRST)
    assert str(missing.value).startswith(f"revision {FIRST[:12]} is no longer in the repository: ")
    with pytest.raises(NotRendered, match=f"(?s)revision {SECOND[:12]} could not be rendered: .*shop/all.yaml:3"):
        renders.render("team-a", "shop", SECOND)
    with pytest.raises(NotRendered):
        renders.render("team-a", "shop", FIRST)
    assert reconciler.calls == [FIRST, SECOND]
    time.sleep(0.4)
    reconciler.renders[FIRST] = BEFORE
    assert renders.render("team-a", "shop", FIRST) == BEFORE
    with pytest.raises(NotRendered, match="plain directory"):
        renders.render("team-a", "shop", WORKING_TREE)
    with pytest.raises(NotRendered, match="failed before it knew its revision"):
        renders.render("team-a", "shop", UNKNOWN_REVISION)
    assert reconciler.calls == [FIRST, SECOND, FIRST]


def test_renders_are_bounded() -> None:
    revisions = [str(n) * 40 for n in range(1, 6)]
    reconciler = FakeReconciler(app_config(), {revision: BEFORE for revision in revisions})
    renders = renders_of(reconciler, size=2)
    for revision in revisions:
        renders.render("team-a", "shop", revision)
    renders.render("team-a", "shop", revisions[-1])
    renders.render("team-a", "shop", revisions[0])
    assert reconciler.calls == [*revisions, revisions[0]]


HISTORY = [entry(SECOND, "2026-01-01T11:50:00Z", summary={"configured": 2}, plan_digest="sha256:" + "b" * 64),
           entry(FIRST, "2026-01-01T11:00:00Z", summary={"created": 4}, plan_digest="sha256:" + "a" * 64)]


def test_entries_are_named_by_start_and_revision() -> None:
    key = entry_key(HISTORY[1])
    assert key == f"2026-01-01T11:00:00Z@{FIRST[:12]}"
    assert find_entry(HISTORY, key) is HISTORY[1] and find_entry(HISTORY, "2026-01-01T11:00:00Z@x") is None


APP = {"metadata": {"namespace": "team-a", "name": "shop"}, "status": {"history": [e.to_dict() for e in HISTORY]}}


def test_the_page_shows_both_entries_and_the_fields_but_no_secret() -> None:
    renders = renders_of(FakeReconciler(app_config(), {FIRST: BEFORE, SECOND: AFTER}))
    comparison = compare_entries(renders, namespace="team-a", name="shop", before=HISTORY[1], after=HISTORY[0])
    html = compare_main(APP, comparison, history=HISTORY, now=NOW)
    assert "2 changed, 1 added, 1 removed, 1 unchanged" in html
    assert '<code class="value">blue</code>' in html and '<code class="value">green</code>' in html
    assert "value hidden (Secret)" in html and ".data.password" in html
    assert FIRST in html and SECOND in html and "a" * 64 in html and "4 created" in html and "interval" in html
    assert f'<option value="{entry_key(HISTORY[1])}" selected>' in html
    for form in secret_forms(OLD_SECRET, NEW_SECRET):
        assert form not in html


def test_the_page_says_why_a_revision_cannot_be_shown() -> None:
    gone = RevisionGone("repository r: has no commit", repo="r", revision=FIRST)
    renders = renders_of(FakeReconciler(app_config(), {FIRST: gone, SECOND: AFTER}))
    comparison = compare_entries(renders, namespace="team-a", name="shop", before=HISTORY[1], after=HISTORY[0])
    assert comparison == Comparison(before=HISTORY[1], after=HISTORY[0], problems=(
        f"revision {FIRST[:12]} is no longer in the repository: repository r: has no commit",))
    html = compare_main(APP, comparison, history=HISTORY, now=NOW)
    assert 'role="alert"' in html and f"revision {FIRST[:12]} is no longer in the repository" in html


def test_what_a_tenant_wrote_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    before, after = [configmap("web", x=hostile)], [configmap("web", x=hostile + "!")]
    renders = renders_of(FakeReconciler(app_config(), {FIRST: before, SECOND: after}))
    comparison = compare_entries(renders, namespace="team-a", name="shop", before=HISTORY[1], after=HISTORY[0])
    html = compare_main(APP, comparison, history=HISTORY, now=NOW)
    assert hostile not in html and "&lt;script&gt;" in html
