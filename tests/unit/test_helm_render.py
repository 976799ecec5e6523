"""Charts rendered with the real helm (`tools/build.sh helm`; scripts/test sets SYNCER_HELM):
public charts vendored under tests/charts, and hostile ones written here. No cluster."""

from __future__ import annotations

import functools
import json
import http.server
import os
import shutil
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncer.errors import RenderError, RenderTooLarge
from syncer.model import Manifest
from syncer.sources import HelmSettings, RenderLimits, Snapshot, render
from syncer.sources.helm import helm_binary

CHARTS = Path(__file__).resolve().parents[1] / "charts"
KUBE = "1.37.2"


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def chart(root: Path, relative: str = "chart", *, name: str = "web", extra: str = "") -> Path:
    write(root, f"{relative}/Chart.yaml", f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n{extra}")
    return root / relative


def rendered(root: Path, path: str = "chart", *, namespace: str = "shop", limits: RenderLimits = RenderLimits(),
             settings: HelmSettings = HelmSettings(kube_version=KUBE)) -> tuple[list[Manifest], list[str]]:
    warnings: list[str] = []
    manifests = render(Snapshot(revision="working-tree", root=root, repo=str(root)), path, namespace=namespace,
                       limits=limits, helm_settings=settings, warnings=warnings)
    return manifests, warnings


def refused(root: Path, path: str = "chart", **keywords: object) -> str:
    with pytest.raises(RenderError) as excinfo:
        rendered(root, path, **keywords)  # type: ignore[arg-type]
    return str(excinfo.value)


def names(manifests: list[Manifest]) -> list[str]:
    return [str(manifest.ref) for manifest in manifests]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest.fixture
def vendored(repo: Path) -> Path:
    shutil.copytree(CHARTS / "podinfo", repo / "charts" / "podinfo")
    shutil.copytree(CHARTS / "ingress-nginx", repo / "charts" / "ingress-nginx")
    return repo


def test_podinfo_renders_its_objects_and_lists_its_test_hooks(vendored: Path) -> None:
    manifests, warnings = rendered(vendored, "charts/podinfo", settings=HelmSettings(release_name="web",
                                                                                      kube_version=KUBE))
    assert names(manifests) == ["Service/shop/web-podinfo", "Deployment/shop/web-podinfo"]
    deployment = manifests[1]
    assert deployment.origin.file == "charts/podinfo/templates/deployment.yaml"
    assert deployment.obj["metadata"]["labels"]["app.kubernetes.io/name"] == "web-podinfo"
    assert len(warnings) == 1
    assert "3 Helm hook(s) left out" in warnings[0]
    for test in ("Pod/web-podinfo-grpc-test-", "Pod/web-podinfo-jwt-test-", "Pod/web-podinfo-service-test-"):
        assert test in warnings[0]
    assert "charts/podinfo/templates/tests/" in warnings[0]


def test_values_files_inline_values_and_sets_apply_in_order(vendored: Path) -> None:
    write(vendored, "env/prod.yaml", "replicaCount: 2\nui:\n  message: from-file\n")
    settings = HelmSettings(kube_version=KUBE, values_files=("values-prod.yaml", "../../env/prod.yaml"),
                            values=("replicaCount: 3\nhpa: {enabled: false}\n",), set_values=("ui.color=#000000",))
    manifests, _ = rendered(vendored, "charts/podinfo", settings=settings)
    deployment = next(m.obj for m in manifests if m.obj["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PODINFO_UI_MESSAGE"] == "from-file"
    assert env["PODINFO_UI_COLOR"] == "#000000"


def test_ingress_nginx_renders_for_the_servers_version_with_its_hooks_left_out(vendored: Path) -> None:
    manifests, warnings = rendered(vendored, "charts/ingress-nginx", namespace="ingress",
                                   settings=HelmSettings(release_name="edge", kube_version=KUBE))
    kinds = {manifest.obj["kind"] for manifest in manifests}
    assert {"Deployment", "Service", "IngressClass", "ValidatingWebhookConfiguration", "ClusterRole"} <= kinds
    assert "Job" not in kinds
    assert "Job/edge-ingress-nginx-admission-create (pre-install,pre-upgrade" in warnings[0]
    assert "Job/edge-ingress-nginx-admission-patch (post-install,post-upgrade" in warnings[0]
    older = refused(vendored, "charts/ingress-nginx", settings=HelmSettings(kube_version="1.20.2"))
    assert "requires kubeVersion: >=1.21.0-0" in older


def test_crds_are_included_and_lookup_finds_nothing(repo: Path) -> None:
    chart(repo)
    write(repo, "chart/crds/foo.yaml", """\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: foos.x.example.com}
        spec:
          group: x.example.com
          names: {kind: Foo, plural: foos}
          scope: Namespaced
          versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
        """)
    write(repo, "chart/templates/cm.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: {{ .Release.Name }}}
        data:
          found: {{ lookup "v1" "Namespace" "" "kube-system" | toJson | quote }}
          kube: {{ .Capabilities.KubeVersion.Version | quote }}
          foo: {{ .Capabilities.APIVersions.Has "x.example.com/v1" | quote }}
        """)
    settings = HelmSettings(kube_version="1.37.2", api_versions=("x.example.com/v1",))
    manifests, warnings = rendered(repo, settings=settings)
    assert names(manifests) == ["CustomResourceDefinition/foos.x.example.com", "ConfigMap/shop/web"]
    assert manifests[1].obj["data"] == {"found": "{}", "kube": "v1.37.2", "foo": "true"}
    assert warnings == []


def test_a_symlink_out_of_the_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cr3t")
    chart(repo)
    write(repo, "chart/templates/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n"
                                            "data: {leak: {{ .Files.Get \"leak.txt\" | quote }}}\n")
    os.symlink(tmp_path / "secret.txt", repo / "chart" / "leak.txt")
    message = refused(repo)
    assert "chart/leak.txt: symlink leads outside the repository" in message
    assert "s3cr3t" not in message


def test_files_outside_the_chart_are_not_readable(repo: Path) -> None:
    write(repo, "secret.txt", "s3cr3t")
    chart(repo, "deploy/chart")
    write(repo, "deploy/chart/templates/cm.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: x}
        data:
          up: {{ .Files.Get "../../secret.txt" | quote }}
          abs: {{ .Files.Get "/etc/hostname" | quote }}
        """)
    manifests, _ = rendered(repo, "deploy/chart")
    assert manifests[0].obj["data"] == {"up": "", "abs": ""}


def test_a_symlink_inside_the_repository_is_followed(repo: Path) -> None:
    write(repo, "shared/banner.txt", "hello")
    chart(repo)
    write(repo, "chart/templates/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n"
                                            "data: {banner: {{ .Files.Get \"banner.txt\" | quote }}}\n")
    os.symlink("../shared/banner.txt", repo / "chart" / "banner.txt")
    manifests, _ = rendered(repo)
    assert manifests[0].obj["data"] == {"banner": "hello"}


def test_values_files_must_be_inside_the_repository(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.yaml").write_text("a: 1\n")
    chart(repo)
    assert "values file '../../outside.yaml': leads outside the repository" in refused(
        repo, settings=HelmSettings(values_files=("../../outside.yaml",)))
    assert "values file '/etc/hosts': give a path relative to the chart" in refused(
        repo, settings=HelmSettings(values_files=("/etc/hosts",)))
    assert "values file 'missing.yaml': not found" in refused(repo, settings=HelmSettings(values_files=("missing.yaml",)))


def test_a_remote_dependency_is_refused_unless_its_host_is_allowed(repo: Path) -> None:
    chart(repo, extra="dependencies:\n- name: redis\n  version: 17.3.0\n  repository: https://charts.example.com/r\n")
    message = refused(repo)
    assert "chart web: dependency redis 17.3.0" in message and "charts.example.com" in message
    assert "--helm-allow-host charts.example.com" in message


def test_vendored_and_file_dependencies_are_used_without_any_download(repo: Path) -> None:
    chart(repo, "libs/common", name="common")
    write(repo, "libs/common/templates/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: common}\n")
    chart(repo, "chart/charts/db", name="db")
    write(repo, "chart/charts/db/templates/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: db}\n")
    chart(repo, extra="dependencies:\n- {name: common, version: 0.1.0, repository: 'file://../libs/common'}\n"
                      "- {name: db, version: 0.1.0, repository: 'https://charts.example.com/r'}\n")
    manifests, _ = rendered(repo)
    assert sorted(names(manifests)) == ["ConfigMap/shop/common", "ConfigMap/shop/db"]


def test_a_file_dependency_out_of_the_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    chart(tmp_path, "elsewhere", name="common")
    chart(repo, extra="dependencies:\n- {name: common, version: 0.1.0, repository: 'file://../../elsewhere'}\n")
    assert "dependency common (file://../../elsewhere): leads outside the repository" in refused(repo)


@pytest.fixture
def chart_repository(tmp_path: Path) -> Iterator[str]:
    """A chart repository on loopback: index.yaml and a package made by `helm package`."""
    helm = helm_binary()
    served = tmp_path / "served"
    served.mkdir()
    source = chart(tmp_path / "src", "cache", name="cache")
    write(tmp_path / "src", "cache/templates/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: cache}\n")
    subprocess.run([helm, "package", str(source), "--destination", str(served)], check=True, capture_output=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    subprocess.run([helm, "repo", "index", str(served), "--url", url], check=True, capture_output=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_a_dependency_from_an_allowed_host_is_downloaded(repo: Path, chart_repository: str) -> None:
    chart(repo, extra=f"dependencies:\n- {{name: cache, version: '>=0.1.0', repository: '{chart_repository}'}}\n")
    write(repo, "chart/templates/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: web}\n")
    assert "host 127.0.0.1" in refused(repo)
    manifests, _ = rendered(repo, limits=RenderLimits(helm_hosts=("127.0.0.1",)))
    assert sorted(names(manifests)) == ["ConfigMap/shop/cache", "ConfigMap/shop/web"]
    assert not (repo / "chart" / "charts").exists(), "the repository's export is never written to"


def test_huge_output_stops_at_the_render_budget(repo: Path) -> None:
    chart(repo)
    write(repo, "chart/templates/many.yaml", """\
        {{- range $i := until 20000 }}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: cm-{{ $i }}}
        data: {padding: {{ repeat 200 "x" | quote }}}
        {{- end }}
        """)
    with pytest.raises(RenderTooLarge) as excinfo:
        rendered(repo, limits=RenderLimits(max_total_bytes=1024 * 1024))
    assert "chart (helm template output): the render reads more than that" in str(excinfo.value)
    assert excinfo.value.bound == "bytes"


def test_a_template_that_runs_too_long_is_stopped(repo: Path) -> None:
    chart(repo)
    write(repo, "chart/templates/slow.yaml", """\
        {{- range $i := until 100000 }}{{ range $j := until 100000 }}{{ end }}{{ end }}
        """)
    message = refused(repo, limits=RenderLimits(helm_timeout=2.0))
    assert "helm timed out after 2s" in message


def test_a_chart_inside_a_walked_directory_is_named(repo: Path) -> None:
    write(repo, "deploy/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: plain}\n")
    chart(repo, "deploy/web")
    assert "deploy/web: a Helm chart (Chart.yaml) inside the directory rendered" in refused(repo, "deploy")


def test_helm_settings_need_a_chart(repo: Path) -> None:
    write(repo, "deploy/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: plain}\n")
    assert "the path holds no Chart.yaml" in refused(repo, "deploy", settings=HelmSettings(required=True))


PATCHED_CHART = """\
namespace: web
helmCharts:
- name: podinfo
  releaseName: front
  valuesInline: {replicaCount: 3}
patches:
- target: {kind: Deployment, name: front-podinfo}
  patch: |
    - op: add
      path: /metadata/labels/patched
      value: "yes"
"""


def test_kustomize_helm_charts_render_as_charts_do_then_take_the_patches(repo: Path) -> None:
    """Flux's post-render: a kustomization patches what a chart renders. The chart goes
    through syncer's chart rendering (capabilities, hooks left out and listed)."""
    shutil.copytree(CHARTS / "podinfo", repo / "k" / "charts" / "podinfo")
    write(repo, "k/kustomization.yaml", PATCHED_CHART)
    manifests, warnings = rendered(repo, "k")
    assert names(manifests) == ["Service/web/front-podinfo", "Deployment/web/front-podinfo"]
    deployment = manifests[1].obj
    assert deployment["metadata"]["labels"]["patched"] == "yes"
    assert deployment["spec"]["replicas"] == 3
    [warning] = warnings
    assert warning.startswith("k: helmCharts k/charts/podinfo: 3 Helm hook(s) left out")
    assert "Pod/front-podinfo-grpc-test" in warning


def test_kustomize_helm_charts_get_the_live_servers_capabilities_and_the_apps_namespace(repo: Path) -> None:
    """As a chart path is rendered: the entry names no namespace, so the release's is the app's."""
    chart(repo, "k/charts/caps")
    write(repo, "k/charts/caps/values.yaml", "{}\n")  # Kustomize reads a local chart's values.yaml
    write(repo, "k/charts/caps/templates/cm.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: caps, namespace: "{{ .Release.Namespace }}"}
        data:
          version: "{{ .Capabilities.KubeVersion.Version }}"
          widgets: "{{ .Capabilities.APIVersions.Has "example.com/v1" }}"
        """)
    write(repo, "k/kustomization.yaml", "helmCharts:\n- name: caps\n")
    manifests, _ = rendered(repo, "k", settings=HelmSettings(kube_version="1.37.2", api_versions=("example.com/v1",)))
    assert manifests[0].obj["data"] == {"version": "v1.37.2", "widgets": "true"}
    assert names(manifests) == ["ConfigMap/shop/caps"]


def test_kustomize_helm_charts_must_be_vendored(repo: Path) -> None:
    write(repo, "k/kustomization.yaml",
          "helmCharts:\n- name: podinfo\n  version: 6.5.0\n  repo: https://stefanprodan.github.io/podinfo\n")
    message = refused(repo, "k")
    assert ("k/kustomization.yaml: helmCharts podinfo 6.5.0: not vendored at charts/podinfo-6.5.0/podinfo from "
            "https://stefanprodan.github.io/podinfo") in message
    assert "helm pull --untar --untardir charts/podinfo-6.5.0" in message


def test_kustomize_helm_charts_read_no_values_or_charts_outside_the_repository(repo: Path, tmp_path: Path) -> None:
    outside = write(tmp_path, "secret-values.yaml", "password: hunter2\n")
    chart(repo, "k/charts/web")
    write(repo, "k/kustomization.yaml", f"helmCharts:\n- name: web\n  valuesFile: {outside}\n"
                                        f"  additionalValuesFiles: [../../secret-values.yaml]\n"
                                        f"helmGlobals:\n  configHome: /tmp/helm\n")
    message = refused(repo, "k")
    assert f"helmCharts[].valuesFile entry '{outside}': an absolute path" in message
    assert "helmCharts[].additionalValuesFiles entry '../../secret-values.yaml'" in message
    assert "helmGlobals.configHome: syncer gives helm a private, empty home" in message


def test_a_chart_inflated_by_kustomize_may_not_link_out_of_the_repository(repo: Path, tmp_path: Path) -> None:
    write(tmp_path, "host/passwd", "root:x:0:0\n")
    chart(repo, "k/charts/web")
    write(repo, "k/charts/web/values.yaml", "{}\n")
    write(repo, "k/charts/web/templates/cm.yaml",
          'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leak}\ndata: {x: {{ .Files.Get "files/passwd" | quote }}}\n')
    (repo / "k/charts/web/files").mkdir()
    (repo / "k/charts/web/files/passwd").symlink_to(tmp_path / "host/passwd")
    write(repo, "k/kustomization.yaml", "helmCharts:\n- name: web\n")
    message = refused(repo, "k")
    assert "symlink leads outside the repository" in message
    assert "root:x" not in message


def test_syncer_render_prints_a_chart_and_lists_its_hooks_on_stderr(vendored: Path) -> None:
    from click.testing import CliRunner

    import syncer.cli.render  # noqa: F401  (registers the command)
    from syncer.cli import cli

    write(vendored, "charts/podinfo/values-test.yaml", "replicaCount: 4\n")
    result = CliRunner().invoke(cli, [
        "render", "--repo", str(vendored), "--path", "charts/podinfo", "-n", "web", "--release-name", "front",
        "--kube-version", "1.37", "--helm-values", "values-test.yaml", "--helm-set", "ui.message=hi", "-o", "json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)["items"]
    assert [(item["kind"], item["metadata"]["name"]) for item in items] == [
        ("Service", "front-podinfo"), ("Deployment", "front-podinfo")]
    assert items[1]["spec"]["replicas"] == 4
    assert "warning: charts/podinfo: 3 Helm hook(s) left out" in result.stderr
    assert "Pod/front-podinfo-service-test-" in result.stderr and "Pod" not in result.stdout
    bad = CliRunner().invoke(cli, ["render", "--repo", str(vendored), "--path", "charts/podinfo",
                                   "--kube-version", "latest"])
    assert bad.exit_code == 2 and "--kube-version 'latest': not a Kubernetes version" in bad.stderr


def test_left_out_hooks_are_the_callers_to_report_when_it_carries_them(vendored: Path) -> None:
    from syncer.cli.options import SourceOptions, render_from_options

    options = SourceOptions(repo=str(vendored), path="charts/podinfo", helm=HelmSettings(kube_version=KUBE))
    carried: list[str] = []
    _, manifests = render_from_options(options, warnings=carried)
    assert len(manifests) == 2 and len(carried) == 1 and "Helm hook(s) left out" in carried[0]


def test_a_chart_past_the_byte_bound_is_refused_before_helm_reads_it(repo: Path) -> None:
    chart(repo)
    write(repo, "chart/files/big.bin", "x" * (2 * 1024 * 1024))
    os.mkfifo(repo / "chart" / "files" / "pipe")  # never opened: helm would block on it
    message = refused(repo, limits=RenderLimits(max_total_bytes=1024 * 1024))
    assert "chart/files/big.bin: the chart's files add up to more than the limit per app of 1048576 bytes" in message
    manifests, _ = rendered(repo)
    assert manifests == []


def test_a_path_runs_helm_when_a_base_of_its_kustomization_inflates_charts(repo: Path) -> None:
    """Such a path is given the live server's capabilities, as a chart path is."""
    from syncer.sources import runs_helm

    write(repo, "base/kustomization.yaml", "helmCharts:\n- name: web\n")
    write(repo, "overlay/kustomization.yaml", "resources: [../base]\n")
    write(repo, "plain/kustomization.yaml", "resources: [cm.yaml]\n")
    write(repo, "plain/cm.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: plain}\n")
    chart(repo, "chart")
    snapshot = Snapshot(revision="working-tree", root=repo, repo=str(repo))
    assert [runs_helm(snapshot, path) for path in ("overlay", "base", "chart", "plain", "missing")] == [
        True, True, True, False, False]
