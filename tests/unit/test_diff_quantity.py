"""Quantities as numbers, and the body as the server stores its container quantities: the
local proof that a Deployment with `cpu: 1000m` is unchanged must not need the server."""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest

from syncer.apply.prepare import as_stored
from syncer.diff import proven_unchanged
from syncer.diff.quantity import quantity_value, same_quantity
from syncer.model import Object


@pytest.mark.parametrize(("text", "value"), [
    ("1", Fraction(1)), ("1000m", Fraction(1)), ("0.5", Fraction(1, 2)), ("500m", Fraction(1, 2)),
    (".5", Fraction(1, 2)), ("5.", Fraction(5)), ("+2", Fraction(2)), ("-2k", Fraction(-2000)),
    ("1Gi", Fraction(1024 ** 3)), ("1024Mi", Fraction(1024 ** 3)), ("128Mi", Fraction(128 * 1024 ** 2)),
    ("1e3", Fraction(1000)), ("1E3", Fraction(1000)), ("1k", Fraction(1000)), ("1E", Fraction(10 ** 18)),
    ("2n", Fraction(2, 10 ** 9)), ("3u", Fraction(3, 10 ** 6)), ("1e-3", Fraction(1, 1000)), (2, Fraction(2)),
])
def test_a_quantity_is_read_as_its_exact_number(text: str | int, value: Fraction) -> None:
    assert quantity_value(text) == value


@pytest.mark.parametrize("text", ["", ".", "m", "1 m", "1mi", "1KI", "1e", "1e1234", "abc", "1.5.5", True, 1.5, None])
def test_what_is_not_a_quantity_is_none(text: object) -> None:
    assert quantity_value(text) is None


def test_quantities_are_the_same_only_as_the_same_number() -> None:
    assert same_quantity("1000m", "1") and same_quantity("0.5", "500m") and same_quantity("1024Mi", "1Gi")
    assert not same_quantity("1000m", "1001m")
    assert not same_quantity("1G", "1Gi")
    assert not same_quantity("1x", "1x")


def deployment(cpu: str, memory: str = "128Mi") -> Object:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{
                "name": "web", "image": "web:1",
                "resources": {"limits": {"cpu": cpu, "memory": memory}, "requests": {"cpu": "10m"}}}]}}}}


def live_of(body: Object, *, cpu: str) -> Object:
    """`body` as the server returns it: its quantities canonical, syncer owning what it set."""
    live = copy.deepcopy(body)
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = cpu
    live["metadata"].update(resourceVersion="7", managedFields=[{
        "manager": "syncer", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {
            "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {
                ".": {}, "f:name": {}, "f:image": {},
                "f:resources": {"f:limits": {"f:cpu": {}, "f:memory": {}}, "f:requests": {"f:cpu": {}}}}}}}}}}])
    return live


def test_an_unchanged_deployment_with_a_quantity_the_server_rewrote_is_proven_unchanged() -> None:
    body = deployment("1000m")
    live = live_of(body, cpu="1")
    assert not proven_unchanged(body, live, manager="syncer"), "as text, 1000m and 1 differ"
    stored = as_stored(body, live)
    assert proven_unchanged(stored, live, manager="syncer")
    assert body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "1000m", \
        "the body to apply is not changed"


def test_a_changed_quantity_is_not_proven_unchanged() -> None:
    body = deployment("1500m")
    assert not proven_unchanged(as_stored(body, live_of(body, cpu="1")), live_of(body, cpu="1"), manager="syncer")


def test_only_built_in_workloads_have_their_quantities_read_as_numbers() -> None:
    """A custom resource's `resources.limits.cpu` is whatever its schema says, stored as written."""
    body = deployment("1000m")
    body["apiVersion"] = "example.com/v1"
    live = live_of(body, cpu="1")
    assert as_stored(body, live) is body
    assert not proven_unchanged(as_stored(body, live), live, manager="syncer")
