"""Prune safety without a server: the budget's arithmetic (N, P%, both conditions of the
default, kept objects not counted), the confirmations' and the budget's spelling on the command
line and in an app's spec, and the warning for a confirmation that names nothing pruned."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer.apply.budget import check_budget
from syncer.apply.options import SyncOptions
from syncer.apply.planned import PruneDecision
from syncer.apply.prune import unused_confirmations
from syncer.config import parse_config
from syncer.daemon.appspec import InvalidApp, app_spec
from syncer.errors import ConfigError
from syncer.model import (
    DEFAULT_PRUNE_BUDGET,
    Action,
    ObjectRef,
    PruneBudget,
    is_protected,
    parse_confirmation,
    parse_prune_budget,
)
from tests.unit.fakes import ref, resource

D, K = Action.DELETED, Action.KEPT


@pytest.mark.parametrize(("budget", "members", "actions", "exceeded"), [
    # the default: more than half AND at least 5
    pytest.param(DEFAULT_PRUNE_BUDGET, 10, [D] * 6, True, id="default-6-of-10"),
    pytest.param(DEFAULT_PRUNE_BUDGET, 10, [D] * 5, False, id="default-exactly-half"),
    pytest.param(DEFAULT_PRUNE_BUDGET, 4, [D] * 4, False, id="default-all-of-a-small-app"),
    pytest.param(DEFAULT_PRUNE_BUDGET, 8, [D] * 5, True, id="default-5-of-8"),
    pytest.param(DEFAULT_PRUNE_BUDGET, 100, [D] * 40, False, id="default-many-but-under-half"),
    pytest.param(DEFAULT_PRUNE_BUDGET, 10, [D] * 4 + [K] * 4, False, id="default-kept-not-counted"),
    pytest.param(DEFAULT_PRUNE_BUDGET, 10, [D] * 6 + [K] * 2, True, id="default-kept-besides"),
    # a count is exact, with no floor
    pytest.param(PruneBudget(count=3), 100, [D] * 3, False, id="count-at"),
    pytest.param(PruneBudget(count=3), 100, [D] * 4, True, id="count-past"),
    pytest.param(PruneBudget(count=0), 100, [D], True, id="count-zero-stops-any"),
    pytest.param(PruneBudget(count=0), 100, [K, K], False, id="count-zero-kept-only"),
    # a percentage keeps the floor of 5
    pytest.param(PruneBudget(percent=10), 100, [D] * 11, True, id="percent-past"),
    pytest.param(PruneBudget(percent=10), 100, [D] * 10, False, id="percent-at"),
    pytest.param(PruneBudget(percent=10), 20, [D] * 4, False, id="percent-under-the-floor"),
    pytest.param(PruneBudget(percent=100), 10, [D] * 10, False, id="percent-all"),
    pytest.param(PruneBudget(percent=0), 10, [D] * 5, True, id="percent-zero-from-the-floor"),
])
def test_budget_arithmetic(budget: PruneBudget, members: int, actions: list[Action], exceeded: bool) -> None:
    check = check_budget(actions, members=members, budget=budget)
    assert check.exceeded is exceeded
    assert check.deletions == actions.count(D)


def test_the_budget_message_names_the_count_the_budget_and_the_way_through() -> None:
    check = check_budget([D] * 6, members=10, budget=DEFAULT_PRUNE_BUDGET)
    assert str(check) == (
        "blocked by the prune budget: this sync would delete 6 of the app's 10 member(s), more than its budget of "
        "50% of its members (5 object(s); a percentage never stops fewer than 5); pass --confirm-prune-all to let "
        "this sync through, or raise the budget with --max-prune N|P% (an app: maxPrune in its spec)")
    assert "more than its budget of 2 object(s);" in str(check_budget([D] * 3, members=4, budget=PruneBudget(count=2)))


@pytest.mark.parametrize(("text", "budget"), [
    ("7", PruneBudget(count=7)), (7, PruneBudget(count=7)), ("0", PruneBudget(count=0)),
    ("25%", PruneBudget(percent=25)), ("12.5%", PruneBudget(percent=12.5)), ("100%", PruneBudget(percent=100)),
])
def test_budget_spellings(text: object, budget: PruneBudget) -> None:
    assert parse_prune_budget(text) == budget


@pytest.mark.parametrize("text", ["-1", "101%", "-5%", "half", "", "nan%", "5 %%", True, None, 1.5])
def test_budget_refused(text: object) -> None:
    with pytest.raises(ValueError, match="is not a prune budget: a number of objects"):
        parse_prune_budget(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Namespace/shop", ObjectRef("", "Namespace", None, "shop")),
    ("namespace/shop", ObjectRef("", "Namespace", None, "shop")),
    ("CustomResourceDefinition/widgets.example.com",
     ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", None, "widgets.example.com")),
    ("PersistentVolume/pv-1", ObjectRef("", "PersistentVolume", None, "pv-1")),
    ("PersistentVolumeClaim/shop/data", ObjectRef("", "PersistentVolumeClaim", "shop", "data")),
])
def test_confirmations(text: str, expected: ObjectRef) -> None:
    assert parse_confirmation(text) == expected
    assert is_protected(expected)


@pytest.mark.parametrize(("text", "message"), [
    ("Deployment/shop/web", "Deployment is not a protected kind; only Namespace, CustomResourceDefinition, "
                            "PersistentVolumeClaim, PersistentVolume need a confirmation"),
    ("Namespace/a/b", "write it as Namespace/NAME"),
    ("Namespace/", "write it as Namespace/NAME"),
    ("PersistentVolumeClaim/data", "write it as PersistentVolumeClaim/NAMESPACE/NAME"),
    ("", "(empty) is not a protected kind"),
])
def test_confirmation_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_confirmation(text)


def test_not_protected_in_another_group() -> None:
    assert not is_protected(ObjectRef("example.com", "Namespace", None, "x"))
    assert not is_protected(ObjectRef("", "ConfigMap", "a", "x"))


def decision(text: str, action: Action, reason: str = "") -> PruneDecision:
    r = ref(text)
    return PruneDecision(ref=r, api_version="v1", resource=resource(r.kind, r.group), live={}, action=action,
                         reason=reason)


def test_a_confirmation_that_names_nothing_pruned_is_a_warning() -> None:
    decisions = [decision("Namespace/old", Action.DELETED), decision("Namespace/busy", Action.KEPT, "foreign-inside")]
    confirmed = [ref("Namespace/old"), ref("Namespace/busy"), ref("Namespace/typo")]
    assert unused_confirmations(confirmed, decisions) == [
        "--confirm-prune Namespace/busy: this sync deletes no such object (it is kept by the foreign-inside filter); "
        "the confirmation changes nothing",
        "--confirm-prune Namespace/typo: this sync deletes no such object (the app has no such member to prune); "
        "the confirmation changes nothing",
    ]


def app(spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "syncer.dev/v1alpha1", "kind": "App", "metadata": {"name": "shop", "namespace": "team"},
            "spec": {"repo": "https://git.example.com/shop.git", **spec}}


def test_an_apps_confirmations_and_budget_reach_its_sync_options() -> None:
    spec = app_spec(app({"pruneConfirmations": ["Namespace/shop", "PersistentVolumeClaim/shop/data"],
                         "maxPrune": "20%"}))
    options = SyncOptions.for_app(spec.config, field_manager="syncer", lock_timeout=30)
    assert options.confirm_prune == {ObjectRef("", "Namespace", None, "shop"),
                                     ObjectRef("", "PersistentVolumeClaim", "shop", "data")}
    assert options.max_prune == PruneBudget(percent=20)
    assert SyncOptions.for_app(app_spec(app({"maxPrune": 3})).config, field_manager="syncer",
                               lock_timeout=30).max_prune == PruneBudget(count=3)
    default = SyncOptions.for_app(app_spec(app({})).config, field_manager="syncer", lock_timeout=30)
    assert (default.confirm_prune, default.max_prune, default.confirm_prune_all) == (
        frozenset(), DEFAULT_PRUNE_BUDGET, False)


def test_an_app_with_a_bad_confirmation_or_budget_names_both() -> None:
    with pytest.raises(InvalidApp) as raised:
        app_spec(app({"pruneConfirmations": ["Deployment/shop/web"], "maxPrune": "most"}))
    assert raised.value.problems == [
        "spec.pruneConfirmations: 'Deployment/shop/web': Deployment is not a protected kind; only Namespace, "
        "CustomResourceDefinition, PersistentVolumeClaim, PersistentVolume need a confirmation to be pruned",
        "spec.maxPrune: 'most' is not a prune budget: a number of objects (10) or a percentage of the app's "
        "members (50%, 0 to 100)",
    ]


def test_a_configuration_files_app_takes_the_same_fields(tmp_path: Path) -> None:
    config = parse_config("apps:\n- name: shop\n  repo: https://git.example.com/shop.git\n  maxPrune: 4\n"
                          "  pruneConfirmations: [Namespace/shop]\n", source="apps.yaml", base_dir=tmp_path)
    assert (config.app("shop").max_prune, config.app("shop").prune_confirmations) == (
        PruneBudget(count=4), (ObjectRef("", "Namespace", None, "shop"),))
    with pytest.raises(ConfigError, match="pruneConfirmations: must be a list of KIND/NAME"):
        parse_config("apps:\n- name: shop\n  repo: https://git.example.com/shop.git\n"
                     "  pruneConfirmations: Namespace/shop\n", source="apps.yaml", base_dir=tmp_path)
