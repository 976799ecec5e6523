"""The sets of `../shared/realworld` and what a careful user expects syncer to do with each.

Every set is synced as its own app on a local control plane (Kubernetes 1.20.2). A set that
uses what 1.20 lacks must fail validation, write nothing, and name each object and what is
missing: `expect_failure` holds, per expected failure, a piece of text the error must contain
(an object identity, the missing API or field). `reason` says why, for the report.

Sets are grouped; each group runs on a fresh control plane, so that sets which define the same
cluster-scoped objects (two Istio releases, the metrics APIService twice) or install webhooks
that block later writes (Gatekeeper blocks every Namespace write) cannot affect each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CORPUS_ENV = "SYNCER_REALWORLD"

RECREATE = "syncer.dev/recreate"


@dataclass(frozen=True)
class Step:
    """A later sync of the same app: an upgrade (v-old -> v-new) or a switch between sets."""

    kind: str
    """`upgrade` or `switch`."""
    path: str
    expect_failure: tuple[str, ...] = ()
    reason: str = ""
    recreate_jobs: bool = False
    """Sync once more with `syncer.dev/recreate: "true"` added to every Job (the opt-in)."""
    pruned: tuple[str, ...] = ()
    """`Kind/name` of objects the step must delete (what the new path no longer has)."""


@dataclass(frozen=True)
class RealWorldSet:
    name: str
    path: str
    """Relative to the corpus root: a directory, a file, or a kustomization directory."""
    group: int
    namespace: str = "default"
    create_namespace: bool = False
    substitute: str | None = None
    """Replaces the Go placeholder `%[1]s` (Flux's fixtures) before use."""
    expect_failure: tuple[str, ...] = ()
    reason: str = ""
    then: tuple[Step, ...] = field(default_factory=tuple)
    writes_crds_first: bool = False
    """The expected failure is found only once the set's CRDs exist (a deferred check), so
    those are written before it."""
    engine_issue: str = ""
    """A known failure of syncer's engine on this set (the test is an expected failure until it
    is fixed; strict, so the fix shows)."""


ENGINE_NAMESPACE_AND_CRD = (
    "custom resources in a namespace that the same sync creates, whose CRD it also creates, fail "
    "their deferred check with `namespaces \"<ns>\" not found` (checked once the CRD is Established, "
    "before the Namespace exists), after the CRDs and other objects were already written"
)


def _flux(number: int, group: int, **expected: object) -> RealWorldSet:
    name = f"flux-test{number}"
    return RealWorldSet(name=f"fluxcd-ssa-testdata/test{number}", path=f"fluxcd-ssa-testdata/ssa/testdata/test{number}.yaml",
                        group=group, namespace=name, create_namespace=True, substitute=name, **expected)  # type: ignore[arg-type]


def _kapp(example: str, group: int, **expected: object) -> RealWorldSet:
    return RealWorldSet(name=f"kapp-examples/{example}", path=f"kapp-examples/examples/{example}", group=group,
                        namespace=f"kapp-{example.replace('/', '-').replace('.', '-')}"[:63], create_namespace=True,
                        **expected)  # type: ignore[arg-type]


SETS: tuple[RealWorldSet, ...] = (
    # -- group 0: plain applications --------------------------------------------------------------
    RealWorldSet(
        "microservices-demo", "microservices-demo/v-old/release", group=0, namespace="demo", create_namespace=True,
        then=(Step("upgrade", "microservices-demo/v-new/release",
                   expect_failure=("Deployment/demo/adservice", "grpc"),
                   reason="v-new's containers use `grpc` probes, a Kubernetes 1.24 field"),),
    ),
    RealWorldSet("microservices-demo/v-new/kustomize", "microservices-demo/v-new/kustomize/base", group=0,
                 namespace="demo-kustomize", create_namespace=True,
                 expect_failure=("Deployment/demo-kustomize/adservice", "grpc"),
                 reason="containers use `grpc` probes, a Kubernetes 1.24 field"),
    RealWorldSet(
        "argo-cd", "argo-cd/v-old/manifests", group=0, namespace="argocd", create_namespace=True,
        then=(Step("upgrade", "argo-cd/v-new/manifests"),),
    ),
    RealWorldSet(
        "kubernetes-dashboard", "kubernetes-dashboard/v-old/aio/deploy", group=0,
        then=(Step("upgrade", "kubernetes-dashboard/v-new/aio/deploy"),),
    ),
    RealWorldSet(
        "kube-state-metrics", "kube-state-metrics/examples/standard", group=0, namespace="kube-system",
        then=(Step("switch", "kube-state-metrics/examples/autosharding",
                   pruned=("Deployment/kube-system/kube-state-metrics",)),),
    ),
    RealWorldSet("podinfo/kustomize", "podinfo/kustomize", group=0, namespace="podinfo-kustomize", create_namespace=True,
                 expect_failure=("HorizontalPodAutoscaler/podinfo-kustomize/podinfo", "autoscaling/v2"),
                 reason="its HorizontalPodAutoscaler is `autoscaling/v2` (Kubernetes 1.23)"),
    RealWorldSet("podinfo/deploy/webapp", "podinfo/deploy/webapp", group=0,
                 expect_failure=("HorizontalPodAutoscaler/webapp/backend", "HorizontalPodAutoscaler/webapp/frontend",
                                 "autoscaling/v2"),
                 reason="its HorizontalPodAutoscalers are `autoscaling/v2` (Kubernetes 1.23)"),
    RealWorldSet("podinfo/deploy/secure", "podinfo/deploy/secure", group=0,
                 expect_failure=("ClusterIssuer", "Certificate", "autoscaling/v2"),
                 reason="cert-manager resources whose CRDs are not in the set; `autoscaling/v2` HPAs"),
    RealWorldSet("cert-manager", "cert-manager/deploy/crds", group=0,
                 expect_failure=("CustomResourceDefinition/certificates.cert-manager.io", "selectableFields"),
                 reason="CRD fields `selectableFields` (1.30) and `x-kubernetes-validations` (1.25)"),
    RealWorldSet("prometheus-operator/example-crs/rbac", "prometheus-operator/example-crs/example/rbac/prometheus",
                 group=0, expect_failure=("Prometheus/default/prometheus", "unknown kind Prometheus"),
                 reason="a Prometheus custom resource whose CRD comes from another set (prometheus-operator)"),
    RealWorldSet("prometheus-operator/example-crs/getting-started",
                 "prometheus-operator/example-crs/example/user-guides/getting-started", group=0,
                 expect_failure=("Prometheus.monitoring.coreos.com/default/prometheus is defined twice",),
                 reason="the folder defines four different Prometheus objects named `prometheus`"),
    # -- group 1: operators with CRDs and aggregated APIs -----------------------------------------
    RealWorldSet(
        "prometheus-operator", "prometheus-operator/v-old/bundle.yaml", group=1,
        then=(Step("upgrade", "prometheus-operator/v-new/bundle.yaml"),),
    ),
    RealWorldSet("kube-prometheus", "kube-prometheus/manifests", group=2),
    RealWorldSet("metrics-server", "metrics-server/manifests/base", group=1, namespace="kube-system"),
    RealWorldSet(
        "ingress-nginx", "ingress-nginx/v-old/deploy/static/provider/cloud", group=5,
        then=(Step("upgrade", "ingress-nginx/v-new/deploy/static/provider/cloud",
                   expect_failure=("Job/ingress-nginx/ingress-nginx-admission-create", "immutable", RECREATE),
                   reason="both admission Jobs change their immutable `spec.template`", recreate_jobs=True),),
    ),
    # -- Flux's fixtures ---------------------------------------------------------------------------
    *(_flux(number, group=1) for number in (1, 2, 3, 4, 5, 8, 9, 10, 12, 13, 14)),
    _flux(6, group=1, expect_failure=("HorizontalPodAutoscaler/flux-test6/flux-test6", "autoscaling/v2"),
          reason="an `autoscaling/v2` HorizontalPodAutoscaler (Kubernetes 1.23)"),
    _flux(11, group=1, expect_failure=("CustomResourceDefinition/webhooks.example.com", "must be spec.names.plural"),
          reason="the fixture's CRD is invalid: its name is not `<plural>.<group>`"),
    _flux(7, group=1, expect_failure=("test7.yaml:7: Deployment/flux-test7: metadata.labels.labeled must be a string",),
          reason="`labeled: yes` is a boolean in YAML 1.1, for kubectl and the API server too"),
    # -- kapp's examples ---------------------------------------------------------------------------
    *(_kapp(example, group=1) for example in (
        "cassandra", "deployment-with-custom-wait", "gitops/guestbook", "gitops/nginx",
        "gitops/redis-with-configmap", "jobs", "mysql", "rebase-pod-calico",
    )),
    _kapp("resource-ordering", group=4),  # its redis Deployments share names with gitops/guestbook's
    RealWorldSet(
        "kapp-examples/simple-app-example", "kapp-examples/examples/simple-app-example/config-1.yml", group=1,
        namespace="kapp-simple-app", create_namespace=True,
        then=(Step("switch", "kapp-examples/examples/simple-app-example/config-2.yml",
                   pruned=("Service/kapp-simple-app/simple-app",)),),
    ),
    _kapp("knative-service", group=1, expect_failure=("Service/default/helloworld-go", "unknown kind Service in serving.knative.dev/v1"),
          reason="a Knative Service whose CRD comes from another set (knative)"),
    _kapp("cert-manager-v0.15.1", group=3, writes_crds_first=True,
          expect_failure=("Issuer/kapp-cert-manager-v0-15-1/selfsigning-issuer", "conversion webhook"),
          reason="its Issuer's CRD converts through cert-manager's webhook, which never runs on a control plane "
                 "without nodes; checked once the CRD exists, so the CRDs are written first"),
    _kapp("istio-v1.12.2", group=2),
    # kapp's knative example bundles Istio: on the cluster of istio-v1.12.2 its 52 Istio objects
    # belong to that app, and syncer refuses to take them over (ownership), so it gets its own.
    _kapp("knative-v1.1.0", group=6),
    _kapp("pinniped-v0.13.0", group=2),
    _kapp("gatekeeper-v3.7.0", group=2, expect_failure=(
        "CustomResourceDefinition.apiextensions.k8s.io/k8srequiredlabels.constraints.gatekeeper.sh is defined twice",),
        reason="exists.yml declares a CRD of config.yml again, differently, for kapp's `kapp.k14s.io/exists` "
               "annotation (which only kapp understands)"),
    _kapp("cert-manager-v1.6.1", group=4),
    _kapp("istio-v1.16.0", group=3, expect_failure=("PodDisruptionBudget", "policy/v1", "autoscaling/v2"),
          reason="`policy/v1` PodDisruptionBudgets (1.21) and `autoscaling/v2` HPAs (1.23)"),
    _kapp("knative-v1.8.0", group=3, expect_failure=("policy/v1", "autoscaling/v2"),
          reason="`policy/v1` PodDisruptionBudgets (1.21) and `autoscaling/v2` HPAs (1.23)"),
    _kapp("gatekeeper-v3.10.0", group=4, expect_failure=(
        "CustomResourceDefinition.apiextensions.k8s.io/k8srequiredlabels.constraints.gatekeeper.sh is defined twice",),
        reason="exists.yml declares a CRD of config.yml again, differently, for kapp's `kapp.k14s.io/exists` "
               "annotation (behind it: a `policy/v1` PodDisruptionBudget, 1.21)"),
)


def groups() -> list[list[RealWorldSet]]:
    """The sets by control plane, in order."""
    numbers = sorted({s.group for s in SETS})
    return [[s for s in SETS if s.group == number] for number in numbers]
