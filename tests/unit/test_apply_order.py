"""plan_steps() / deletion_steps(): which objects are applied (or pruned) in which step.

Steps are compared as lists of `Kind/namespace/name` strings, the identity a user sees in
syncer's output, so a failing table row reads like the plan it got wrong.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pytest

from syncer.apply.order import (
    DEPENDS_ON_ANNOTATION,
    SYNC_WAVE_ANNOTATION,
    OrderInfo,
    deletion_steps,
    order_info,
    plan_steps,
)
from syncer.errors import RenderError
from syncer.model import Manifest, ObjectRef, Origin

CRD_NAME = "widgets.example.com"
CRD_REF = ObjectRef(group="apiextensions.k8s.io", kind="CustomResourceDefinition", namespace=None, name=CRD_NAME)
WIDGET_CRDS = {("example.com", "Widget"): CRD_REF}


def manifest(
    api_version: str,
    kind: str,
    name: str,
    *,
    namespace: str | None = None,
    wave: str | None = None,
    depends_on: str | None = None,
    line: int = 1,
) -> Manifest:
    metadata: dict[str, object] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    annotations = {}
    if wave is not None:
        annotations[SYNC_WAVE_ANNOTATION] = wave
    if depends_on is not None:
        annotations[DEPENDS_ON_ANNOTATION] = depends_on
    if annotations:
        metadata["annotations"] = annotations
    return Manifest(
        obj={"apiVersion": api_version, "kind": kind, "metadata": metadata},
        origin=Origin(file="app.yaml", line=line),
    )


def steps_of(
    manifests: Sequence[Manifest],
    *,
    crd_kinds: Mapping[tuple[str, str], ObjectRef] | None = None,
) -> list[list[str]]:
    steps = plan_steps([order_info(m) for m in manifests], crd_kinds=crd_kinds)
    return [[str(ref) for ref in step] for step in steps]


def crd(*, wave: str | None = None) -> Manifest:
    return manifest("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME, wave=wave)


def namespace(name: str = "shop", *, wave: str | None = None, depends_on: str | None = None) -> Manifest:
    return manifest("v1", "Namespace", name, wave=wave, depends_on=depends_on)


def configmap(
    name: str = "settings", *, ns: str = "shop", wave: str | None = None, depends_on: str | None = None
) -> Manifest:
    return manifest("v1", "ConfigMap", name, namespace=ns, wave=wave, depends_on=depends_on)


def deployment(name: str = "web", *, wave: str | None = None, depends_on: str | None = None) -> Manifest:
    return manifest("apps/v1", "Deployment", name, namespace="shop", wave=wave, depends_on=depends_on)


def widget(name: str = "catalog", *, wave: str | None = None, depends_on: str | None = None) -> Manifest:
    return manifest("example.com/v1", "Widget", name, namespace="shop", wave=wave, depends_on=depends_on)


def realistic_app_worst_order() -> list[Manifest]:
    """An app whose files list every object before the ones it needs."""
    return [
        widget(),
        deployment(),
        manifest("v1", "Service", "web", namespace="shop"),
        configmap(),
        manifest("v1", "Secret", "creds", namespace="shop"),
        manifest("rbac.authorization.k8s.io/v1", "RoleBinding", "web", namespace="shop"),
        manifest("rbac.authorization.k8s.io/v1", "Role", "web", namespace="shop"),
        manifest("v1", "ServiceAccount", "web", namespace="shop"),
        manifest("rbac.authorization.k8s.io/v1", "ClusterRole", "widget-viewer"),
        crd(),
        namespace(),
        manifest("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "widgets"),
        manifest("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "widgets"),
    ]


REALISTIC_STEPS = [
    [f"CustomResourceDefinition/{CRD_NAME}"],
    ["Namespace/shop"],
    ["ServiceAccount/shop/web"],
    ["Role/shop/web"],
    ["ClusterRole/widget-viewer"],
    ["RoleBinding/shop/web"],
    ["ConfigMap/shop/settings"],
    ["Secret/shop/creds"],
    ["Service/shop/web"],
    ["Deployment/shop/web"],
    ["Widget/shop/catalog"],
    ["MutatingWebhookConfiguration/widgets"],
    ["ValidatingWebhookConfiguration/widgets"],
]


@pytest.mark.parametrize("crd_kinds", [None, WIDGET_CRDS], ids=["kind-order-only", "with-crd-kinds"])
def test_worst_file_order_comes_out_in_dependency_order(
    crd_kinds: Mapping[tuple[str, str], ObjectRef] | None,
) -> None:
    assert steps_of(realistic_app_worst_order(), crd_kinds=crd_kinds) == REALISTIC_STEPS


def test_objects_of_one_kind_share_a_step_sorted_by_name() -> None:
    manifests = [
        deployment("web"), configmap("c"), deployment("api"), configmap("a"),
        configmap("b", ns="billing"),
    ]
    assert steps_of(manifests) == [
        ["ConfigMap/billing/b", "ConfigMap/shop/a", "ConfigMap/shop/c"],
        ["Deployment/shop/api", "Deployment/shop/web"],
    ]


@pytest.mark.parametrize(
    ("manifests", "want"),
    [
        pytest.param(
            [configmap(), deployment(wave="-1")],
            [["Deployment/shop/web"], ["ConfigMap/shop/settings"]],
            id="wave-minus-one-before-earlier-kind",
        ),
        pytest.param(
            [configmap(wave="1"), deployment(), manifest("v1", "Service", "web", namespace="shop")],
            [["Service/shop/web"], ["Deployment/shop/web"], ["ConfigMap/shop/settings"]],
            id="wave-one-after-later-kinds",
        ),
        pytest.param(
            [
                crd(),
                manifest("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "early", wave="-1"),
            ],
            [["MutatingWebhookConfiguration/early"], [f"CustomResourceDefinition/{CRD_NAME}"]],
            id="webhook-in-wave-minus-one-before-crd",
        ),
        pytest.param(
            [configmap("late", wave="10"), configmap("mid", wave="2"), configmap("early", wave=" -2 ")],
            [["ConfigMap/shop/early"], ["ConfigMap/shop/mid"], ["ConfigMap/shop/late"]],
            id="numeric-not-lexical-order-and-whitespace",
        ),
        pytest.param(
            [configmap("explicit-zero", wave="0"), configmap("empty", wave=""), configmap("none")],
            [["ConfigMap/shop/empty", "ConfigMap/shop/explicit-zero", "ConfigMap/shop/none"]],
            id="missing-and-empty-mean-wave-zero",
        ),
    ],
)
def test_sync_waves_run_strictly_in_order(manifests: list[Manifest], want: list[list[str]]) -> None:
    assert steps_of(manifests) == want


@pytest.mark.parametrize(
    ("manifests", "want"),
    [
        pytest.param(
            [
                configmap(depends_on="apps/namespaces/shop/Deployment/web"),
                deployment(),
                manifest("v1", "Secret", "creds", namespace="shop"),
            ],
            [["Secret/shop/creds"], ["Deployment/shop/web"], ["ConfigMap/shop/settings"]],
            id="moves-into-later-kind-step-after-dependency",
        ),
        pytest.param(
            [
                deployment(depends_on="example.com/namespaces/shop/Widget/catalog"),
                widget(),
                manifest("example.com/v1", "Gadget", "g", namespace="shop"),
            ],
            [["Gadget/shop/g", "Widget/shop/catalog"], ["Deployment/shop/web"]],
            id="after-custom-resource-unrelated-cr-stays",
        ),
        pytest.param(
            [deployment(depends_on="/namespaces/shop/ConfigMap/settings"), configmap()],
            [["ConfigMap/shop/settings"], ["Deployment/shop/web"]],
            id="dependency-already-earlier-changes-nothing",
        ),
        pytest.param(
            [configmap("b", depends_on="/namespaces/shop/ConfigMap/a"), configmap("a"), configmap("c")],
            [["ConfigMap/shop/a", "ConfigMap/shop/c"], ["ConfigMap/shop/b"]],
            id="same-kind-split-into-sub-steps",
        ),
        pytest.param(
            [
                deployment(depends_on=" apps/namespaces/shop/StatefulSet/db , /namespaces/shop/Service/db"),
                manifest("apps/v1", "StatefulSet", "db", namespace="shop"),
                manifest("v1", "Service", "db", namespace="shop"),
            ],
            [["Service/shop/db"], ["StatefulSet/shop/db"], ["Deployment/shop/web"]],
            id="comma-separated-list-with-spaces",
        ),
        pytest.param(
            [
                manifest("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "tenant",
                         depends_on="example.com/Tenant/acme"),
                manifest("example.com/v1", "Tenant", "acme"),
            ],
            [["Tenant/acme"], ["ClusterRoleBinding/tenant"]],
            id="cluster-scoped-reference",
        ),
        pytest.param(
            [
                configmap("a", depends_on="/namespaces/shop/ConfigMap/b"),
                configmap("b", depends_on="apps/namespaces/shop/Deployment/web"),
                deployment(),
            ],
            [["Deployment/shop/web"], ["ConfigMap/shop/b"], ["ConfigMap/shop/a"]],
            id="transitive-chain",
        ),
        pytest.param(
            [
                configmap(wave="-1", depends_on="apps/namespaces/shop/Deployment/web"),
                deployment(wave="1"),
                manifest("v1", "Service", "web", namespace="shop"),
            ],
            [["Service/shop/web"], ["Deployment/shop/web"], ["ConfigMap/shop/settings"]],
            id="dependency-in-later-wave-wins-over-own-wave",
        ),
    ],
)
def test_depends_on_places_object_after_its_dependency(manifests: list[Manifest], want: list[list[str]]) -> None:
    assert steps_of(manifests) == want


@pytest.mark.parametrize(
    "depends_on",
    [
        "apps/namespaces/other/Deployment/web",
        "apps/namespaces/shop/Deployment/gone",
        "/namespaces/shop/ConfigMap/settings-from-another-app",
        "example.com/Tenant/acme",
    ],
)
def test_depends_on_objects_outside_the_sync_are_ignored(depends_on: str) -> None:
    manifests = [deployment(depends_on=depends_on), configmap()]
    assert steps_of(manifests) == [["ConfigMap/shop/settings"], ["Deployment/shop/web"]]


@pytest.mark.parametrize(
    ("manifests", "cycle", "outside"),
    [
        pytest.param(
            [
                configmap("a", depends_on="/namespaces/shop/ConfigMap/b"),
                configmap("b", depends_on="/namespaces/shop/ConfigMap/a"),
                deployment(depends_on="/namespaces/shop/ConfigMap/a"),
            ],
            ["ConfigMap/shop/a", "ConfigMap/shop/b"],
            ["Deployment/shop/web"],
            id="two-cycle",
        ),
        pytest.param(
            [
                configmap("aa-outsider", depends_on="apps/namespaces/shop/Deployment/web"),
                deployment(depends_on="/namespaces/shop/Service/web"),
                manifest("v1", "Service", "web", namespace="shop",
                         depends_on="/namespaces/shop/Secret/creds"),
                manifest("v1", "Secret", "creds", namespace="shop",
                         depends_on="apps/namespaces/shop/Deployment/web"),
            ],
            ["Deployment/shop/web", "Service/shop/web", "Secret/shop/creds"],
            ["ConfigMap/shop/aa-outsider"],
            id="three-cycle-reached-through-an-outsider",
        ),
        pytest.param(
            [namespace(depends_on="/namespaces/shop/ConfigMap/settings"), configmap()],
            ["Namespace/shop", "ConfigMap/shop/settings"],
            [],
            id="through-implicit-namespace-dependency",
        ),
    ],
)
def test_dependency_cycle_names_every_object_in_it(
    manifests: list[Manifest], cycle: list[str], outside: list[str]
) -> None:
    with pytest.raises(RenderError) as raised:
        steps_of(manifests)
    message = str(raised.value)
    assert "cycle" in message
    for member in cycle:
        assert member in message
    for other in outside:
        assert other not in message
    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].where in cycle


@pytest.mark.parametrize(
    "value",
    [
        "apps/Deployment",
        "apps/namespaces/shop/Deployment",
        "apps/ns/shop/Deployment/db",
        "Deployment/db",
        "apps/namespaces/shop/Deployment/db/extra",
    ],
)
def test_malformed_depends_on_names_the_object_and_file(value: str) -> None:
    bad = deployment(depends_on=value)
    bad.origin = Origin(file="apps/web.yaml", line=7)
    with pytest.raises(RenderError) as raised:
        order_info(bad)
    (problem,) = raised.value.problems
    assert problem.where.startswith("Deployment/shop/web")
    assert "apps/web.yaml:7" in problem.where
    assert value in problem.message
    assert DEPENDS_ON_ANNOTATION in problem.message


@pytest.mark.parametrize("value", ["first", "1.5", "0x1", "1e3", "- 1"])
def test_non_integer_sync_wave_names_the_object_and_file(value: str) -> None:
    bad = configmap(wave=value)
    bad.origin = Origin(file="config/settings.yaml", line=3)
    with pytest.raises(RenderError) as raised:
        order_info(bad)
    (problem,) = raised.value.problems
    assert problem.where.startswith("ConfigMap/shop/settings")
    assert "config/settings.yaml:3" in problem.where
    assert value in problem.message
    assert SYNC_WAVE_ANNOTATION in problem.message


@pytest.mark.parametrize(
    ("manifests", "want"),
    [
        pytest.param(
            [configmap(wave="1"), namespace(wave="1")],
            [["Namespace/shop"], ["ConfigMap/shop/settings"]],
            id="equal-waves",
        ),
        pytest.param(
            [configmap(wave="-1"), namespace()],
            [["Namespace/shop"], ["ConfigMap/shop/settings"]],
            id="earlier-wave-still-after-its-namespace",
        ),
        pytest.param(
            [deployment(), configmap("elsewhere", ns="other"), namespace(wave="1")],
            [["ConfigMap/other/elsewhere"], ["Namespace/shop"], ["Deployment/shop/web"]],
            id="only-objects-in-that-namespace-move",
        ),
    ],
)
def test_objects_come_after_their_namespace_when_the_sync_creates_it(
    manifests: list[Manifest], want: list[list[str]]
) -> None:
    assert steps_of(manifests) == want


def test_custom_resource_comes_after_its_crd_given_by_crd_kinds() -> None:
    manifests = [widget(wave="-1"), crd()]
    assert steps_of(manifests) == [["Widget/shop/catalog"], [f"CustomResourceDefinition/{CRD_NAME}"]]
    assert steps_of(manifests, crd_kinds=WIDGET_CRDS) == [
        [f"CustomResourceDefinition/{CRD_NAME}"],
        ["Widget/shop/catalog"],
    ]


def test_crd_kinds_naming_a_crd_outside_the_sync_changes_nothing() -> None:
    manifests = [widget(wave="-1"), configmap()]
    assert steps_of(manifests, crd_kinds=WIDGET_CRDS) == [["Widget/shop/catalog"], ["ConfigMap/shop/settings"]]


def test_deletion_reverses_the_order_webhooks_first_namespace_and_crd_last() -> None:
    refs = [m.ref for m in realistic_app_worst_order()]
    steps = [[str(ref) for ref in step] for step in deletion_steps(refs)]
    assert steps == list(reversed(REALISTIC_STEPS))
    assert steps[0] == ["ValidatingWebhookConfiguration/widgets"]
    assert steps[-2:] == [["Namespace/shop"], [f"CustomResourceDefinition/{CRD_NAME}"]]


def test_deletion_of_nothing_is_no_steps() -> None:
    assert deletion_steps([]) == []
    assert plan_steps([]) == []


def _tangled_app() -> list[Manifest]:
    return [
        *realistic_app_worst_order(),
        configmap("a", depends_on="apps/namespaces/shop/Deployment/web"),
        configmap("b", wave="-1"),
        deployment("api", depends_on="example.com/namespaces/shop/Widget/catalog"),
        manifest("v1", "Service", "api", namespace="shop", wave="2"),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_same_objects_in_any_order_give_the_same_steps(seed: int) -> None:
    manifests = _tangled_app()
    want = steps_of(manifests, crd_kinds=WIDGET_CRDS)
    shuffled = list(manifests)
    random.Random(seed).shuffle(shuffled)
    assert steps_of(shuffled, crd_kinds=WIDGET_CRDS) == want


def test_every_dependency_is_in_an_earlier_step() -> None:
    infos = [order_info(m) for m in _tangled_app()]
    steps = plan_steps(infos, crd_kinds=WIDGET_CRDS)
    index = {ref: i for i, step in enumerate(steps) for ref in step}
    assert sorted(index) == sorted(info.ref for info in infos)
    edges: list[tuple[ObjectRef, ObjectRef]] = [
        (info.ref, dep) for info in infos for dep in info.depends_on if dep in index
    ]
    namespace_ref = ObjectRef(group="", kind="Namespace", namespace=None, name="shop")
    edges += [(ref, namespace_ref) for ref in index if ref.namespace == "shop"]
    edges += [(ref, CRD_REF) for ref in index if ref.kind == "Widget"]
    assert len(edges) > 10  # the check below is not vacuous
    for dependent, dependency in edges:
        assert index[dependency] < index[dependent], f"{dependent} is not after {dependency}"


def test_order_info_can_be_built_directly() -> None:
    """Callers that resolve identities themselves (namespace defaulted) pass OrderInfo."""
    ref = ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web")
    dep = ObjectRef(group="apps", kind="StatefulSet", namespace="shop", name="db")
    steps = plan_steps([OrderInfo(ref=ref, depends_on=(dep,)), OrderInfo(ref=dep, wave=3)])
    assert steps == [[dep], [ref]]
