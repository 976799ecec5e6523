"""The sets of `../shared/realworld` and what a careful user expects syncer to do with each,
on each Kubernetes version the suite runs (1.20, the oldest supported, and the current one).

Every set is synced as its own app on a local control plane. A set that uses what the
server lacks (an API or a field newer than it, or one it no longer serves) must fail
validation, write nothing, and name each object and what is missing: each `Expected` holds
pieces of text the error must contain (an object identity, the missing API or field), why,
and the versions it holds on. A set expected to fail on one version must sync, resync to
nothing and upgrade on the others.

Sets are grouped; each group runs on a fresh control plane, so that sets which define the same
cluster-scoped objects (two Istio releases, the metrics APIService twice) or install webhooks
that block later writes (Gatekeeper blocks every Namespace write) cannot affect each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CORPUS_ENV = "SYNCER_REALWORLD"

RECREATE = "syncer.dev/recreate"

Version = tuple[int, int]
"""A Kubernetes minor version, (1, 37)."""


def minor(text: str) -> Version:
    """`1.37`, `v1.37.2` -> (1, 37)."""
    major, number, *_ = text.removeprefix("v").split(".")
    return int(major), int(number)


@dataclass(frozen=True)
class Expected:
    """A failure syncer must report on some Kubernetes versions."""

    contains: tuple[str, ...]
    """Pieces of text the error must contain: object identities, the missing API or field."""
    reason: str
    before: str | None = None
    """Only on versions older than this one: the first that serves what the set uses."""
    since: str | None = None
    """Only on this version and newer: the first that no longer serves what the set uses."""
    writes_first: bool = False
    """The failure is found only once the set's CRDs exist (a deferred check), so those are
    written before it."""

    def holds_on(self, version: Version) -> bool:
        return ((self.before is None or version < minor(self.before))
                and (self.since is None or version >= minor(self.since)))


def expected_on(expected: tuple[Expected, ...], version: Version) -> Expected | None:
    """What must fail on `version`: every `Expected` that holds there, as one (None: must sync)."""
    holding = [e for e in expected if e.holds_on(version)]
    if not holding:
        return None
    return Expected(contains=tuple(text for e in holding for text in e.contains),
                    reason="; ".join(e.reason for e in holding),
                    writes_first=any(e.writes_first for e in holding))


@dataclass(frozen=True)
class Step:
    """A later sync of the same app: an upgrade (v-old -> v-new) or a switch between sets."""

    kind: str
    """`upgrade` or `switch`."""
    path: str
    expect: tuple[Expected, ...] = ()
    recreate_jobs: bool = False
    """Sync once more with `syncer.dev/recreate: "true"` added to every Job (the opt-in)."""
    pruned: tuple[str, ...] = ()
    """`Kind/namespace/name` of objects the step must delete (what the new path no longer has)."""


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
    expect: tuple[Expected, ...] = ()
    then: tuple[Step, ...] = field(default_factory=tuple)
    engine_issue: str = ""
    """A known failure of syncer's engine on this set (the test is an expected failure until it
    is fixed; strict, so the fix shows)."""


def _flux(number: int, group: int, *expect: Expected) -> RealWorldSet:
    name = f"flux-test{number}"
    return RealWorldSet(name=f"fluxcd-ssa-testdata/test{number}", path=f"fluxcd-ssa-testdata/ssa/testdata/test{number}.yaml",
                        group=group, namespace=name, create_namespace=True, substitute=name, expect=expect)


def _kapp(example: str, group: int, *expect: Expected) -> RealWorldSet:
    return RealWorldSet(name=f"kapp-examples/{example}", path=f"kapp-examples/examples/{example}", group=group,
                        namespace=f"kapp-{example.replace('/', '-').replace('.', '-')}"[:63], create_namespace=True,
                        expect=expect)


HPA_V2 = "`autoscaling/v2` HorizontalPodAutoscalers (Kubernetes 1.23)"
PDB_V1 = "`policy/v1` PodDisruptionBudgets (Kubernetes 1.21)"

SETS: tuple[RealWorldSet, ...] = (
    # -- group 0: plain applications --------------------------------------------------------------
    RealWorldSet(
        "microservices-demo", "microservices-demo/v-old/release", group=0, namespace="demo", create_namespace=True,
        then=(Step("upgrade", "microservices-demo/v-new/release", expect=(Expected(
            ("Deployment/demo/adservice", "grpc"), "v-new's containers use `grpc` probes, a Kubernetes 1.24 field",
            before="1.24"),)),),
    ),
    RealWorldSet("microservices-demo/v-new/kustomize", "microservices-demo/v-new/kustomize/base", group=0,
                 namespace="demo-kustomize", create_namespace=True, expect=(Expected(
                     ("Deployment/demo-kustomize/adservice", "grpc"),
                     "containers use `grpc` probes, a Kubernetes 1.24 field", before="1.24"),)),
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
                 expect=(Expected(("HorizontalPodAutoscaler/podinfo-kustomize/podinfo", "autoscaling/v2"), HPA_V2,
                                  before="1.23"),)),
    RealWorldSet("podinfo/deploy/webapp", "podinfo/deploy/webapp", group=0,
                 expect=(Expected(("HorizontalPodAutoscaler/webapp/backend", "HorizontalPodAutoscaler/webapp/frontend",
                                   "autoscaling/v2"), HPA_V2, before="1.23"),)),
    RealWorldSet("podinfo/deploy/secure", "podinfo/deploy/secure", group=0, expect=(
        Expected(("ClusterIssuer", "Certificate"), "cert-manager resources whose CRDs are not in the set"),
        Expected(("autoscaling/v2",), HPA_V2, before="1.23"))),
    RealWorldSet("cert-manager", "cert-manager/deploy/crds", group=0, expect=(Expected(
        ("CustomResourceDefinition/certificates.cert-manager.io", "selectableFields"),
        "CRD fields `selectableFields` (Kubernetes 1.30) and `x-kubernetes-validations` (1.25)", before="1.30"),)),
    RealWorldSet("prometheus-operator/example-crs/rbac", "prometheus-operator/example-crs/example/rbac/prometheus",
                 group=0, expect=(Expected(("Prometheus/default/prometheus", "monitoring.coreos.com/v1 Prometheus is not served by this API server"),
                                           "a Prometheus custom resource whose CRD comes from another set "
                                           "(prometheus-operator)"),)),
    RealWorldSet("prometheus-operator/example-crs/getting-started",
                 "prometheus-operator/example-crs/example/user-guides/getting-started", group=0,
                 expect=(Expected(("Prometheus.monitoring.coreos.com/default/prometheus is defined twice",),
                                  "the folder defines four different Prometheus objects named `prometheus`"),)),
    # -- group 1: operators with CRDs and aggregated APIs -----------------------------------------
    RealWorldSet(
        "prometheus-operator", "prometheus-operator/v-old/bundle.yaml", group=1,
        then=(Step("upgrade", "prometheus-operator/v-new/bundle.yaml"),),
    ),
    RealWorldSet("kube-prometheus", "kube-prometheus/manifests", group=2, expect=(Expected(
        ("PodDisruptionBudget/monitoring/alertmanager-main", "policy/v1beta1"),
        "`policy/v1beta1` PodDisruptionBudgets, no longer served since Kubernetes 1.25", since="1.25"),)),
    RealWorldSet("metrics-server", "metrics-server/manifests/base", group=1, namespace="kube-system"),
    RealWorldSet(
        "ingress-nginx", "ingress-nginx/v-old/deploy/static/provider/cloud", group=5,
        then=(Step("upgrade", "ingress-nginx/v-new/deploy/static/provider/cloud", recreate_jobs=True, expect=(Expected(
            ("Job/ingress-nginx/ingress-nginx-admission-create", "immutable", RECREATE),
            "both admission Jobs change their immutable `spec.template`"),)),),
    ),
    # -- Flux's fixtures ---------------------------------------------------------------------------
    *(_flux(number, 1) for number in (1, 2, 3, 4, 5, 8, 9, 10, 12, 13, 14)),
    _flux(6, 1, Expected(("HorizontalPodAutoscaler/flux-test6/flux-test6", "autoscaling/v2"), HPA_V2, before="1.23")),
    _flux(11, 1, Expected(("CustomResourceDefinition/webhooks.example.com", "must be spec.names.plural"),
                          "the fixture's CRD is invalid: its name is not `<plural>.<group>`")),
    _flux(7, 1, Expected(("test7.yaml:7: Deployment/flux-test7: metadata.labels.labeled must be a string",),
                         "`labeled: yes` is a boolean in YAML 1.1, as kubectl reads it too (kpt's YAML 1.2 reader "
                         "takes it as a string)")),
    # -- kapp's examples ---------------------------------------------------------------------------
    *(_kapp(example, 1) for example in (
        "cassandra", "deployment-with-custom-wait", "gitops/guestbook", "gitops/nginx",
        "gitops/redis-with-configmap", "mysql", "rebase-pod-calico",
    )),
    _kapp("jobs", 1, Expected(("CronJob/", "batch/v1beta1"),
                              "a `batch/v1beta1` CronJob, no longer served since Kubernetes 1.25", since="1.25")),
    _kapp("resource-ordering", 4),  # its redis Deployments share names with gitops/guestbook's
    RealWorldSet(
        "kapp-examples/simple-app-example", "kapp-examples/examples/simple-app-example/config-1.yml", group=1,
        namespace="kapp-simple-app", create_namespace=True,
        then=(Step("switch", "kapp-examples/examples/simple-app-example/config-2.yml",
                   pruned=("Service/default/simple-app",)),),
    ),
    _kapp("knative-service", 1, Expected(("Service/default/helloworld-go", "serving.knative.dev/v1 Service is not served by this API server"),
                                         "a Knative Service whose CRD comes from another set (knative)")),
    _kapp("cert-manager-v0.15.1", 3,
          Expected(("Issuer/kapp-cert-manager-v0-15-1/selfsigning-issuer", "conversion webhook"),
                   "its Issuer's CRD converts through cert-manager's webhook, which never runs on a control plane "
                   "without nodes; checked once the CRD exists, so the CRDs are written first",
                   before="1.22", writes_first=True),
          Expected(("apiextensions.k8s.io/v1beta1",),
                   "`apiextensions.k8s.io/v1beta1` CRDs (and `admissionregistration`/`rbac` `v1beta1`), no longer "
                   "served since Kubernetes 1.22", since="1.22")),
    _kapp("istio-v1.12.2", 2, Expected(("policy/v1beta1", "autoscaling/v2beta1"),
                                       "`policy/v1beta1` PodDisruptionBudgets and `autoscaling/v2beta1` HPAs, no longer "
                                       "served since Kubernetes 1.25", since="1.25")),
    # kapp's knative example bundles Istio: on the cluster of istio-v1.12.2 its 52 Istio objects
    # belong to that app, and syncer refuses to take them over (ownership), so it gets its own.
    _kapp("knative-v1.1.0", 6, Expected(("policy/v1beta1", "autoscaling/v2beta"),
                                        "`policy/v1beta1` PodDisruptionBudgets and `autoscaling/v2beta1`/`v2beta2` HPAs, "
                                        "no longer served since Kubernetes 1.25 and 1.26", since="1.25")),
    _kapp("pinniped-v0.13.0", 2),
    _kapp("gatekeeper-v3.7.0", 2, Expected(
        ("CustomResourceDefinition.apiextensions.k8s.io/k8srequiredlabels.constraints.gatekeeper.sh is defined twice",),
        "exists.yml declares a CRD of config.yml again, differently, for kapp's `kapp.k14s.io/exists` "
        "annotation (which only kapp understands)")),
    _kapp("cert-manager-v1.6.1", 4),
    _kapp("istio-v1.16.0", 3, Expected(("PodDisruptionBudget", "policy/v1", "autoscaling/v2"), f"{PDB_V1} and {HPA_V2}",
                                       before="1.23")),
    _kapp("knative-v1.8.0", 3,
          Expected(("policy/v1", "autoscaling/v2"), f"{PDB_V1} and {HPA_V2}", before="1.23"),
          Expected(("autoscaling/v2beta2",), "an `autoscaling/v2beta2` HPA, no longer served since Kubernetes 1.26",
                   since="1.26")),
    _kapp("gatekeeper-v3.10.0", 4, Expected(
        ("CustomResourceDefinition.apiextensions.k8s.io/k8srequiredlabels.constraints.gatekeeper.sh is defined twice",),
        "exists.yml declares a CRD of config.yml again, differently, for kapp's `kapp.k14s.io/exists` "
        "annotation (behind it on 1.20: a `policy/v1` PodDisruptionBudget, 1.21)")),
)


def groups() -> list[list[RealWorldSet]]:
    """The sets by control plane, in order."""
    numbers = sorted({s.group for s in SETS})
    return [[s for s in SETS if s.group == number] for number in numbers]
