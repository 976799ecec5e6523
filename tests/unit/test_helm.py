"""The pure parts of Helm rendering: the command line, hooks, dependencies and their hosts,
the scrubbed environment, and an App's `spec.helm`."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from syncer.daemon.appspec import InvalidApp, ValuesReference, app_spec
from syncer.sources.helm import (
    Dependency,
    HelmSettings,
    dependency_problem,
    helm_environment,
    hook_of,
    host_allowed,
    pull_command,
    source_at,
    sources,
    template_command,
    vendored_names,
    with_capabilities,
)


def test_the_command_line_renders_crds_and_hooks_with_values_in_order_and_no_cluster() -> None:
    settings = HelmSettings(set_values=("image.tag=1.2", "replicas=3"), kube_version="1.37.2",
                            api_versions=("v1", "apps/v1"))
    command = template_command("/bin/helm", chart=Path("/w/chart"), release="web", namespace="shop",
                               values_files=[Path("/r/a.yaml"), Path("/w/values-0.yaml")], settings=settings)
    assert command == [
        "/bin/helm", "template", "web", "/w/chart", "--namespace", "shop", "--include-crds",
        "--values", "/r/a.yaml", "--values", "/w/values-0.yaml",
        "--set", "image.tag=1.2", "--set", "replicas=3",
        "--kube-version", "1.37.2", "--api-versions", "v1", "--api-versions", "apps/v1",
    ]
    for widening in ("--no-hooks", "--post-renderer", "--validate", "--dry-run", "--dependency-update"):
        assert widening not in command


def test_capabilities_come_from_the_server_unless_given() -> None:
    live = with_capabilities(HelmSettings(), version=(1, 37, 2), api_versions=("v1", "apps/v1"))
    assert (live.kube_version, live.api_versions) == ("1.37.2", ("v1", "apps/v1"))
    given = with_capabilities(HelmSettings(kube_version="1.30", api_versions=("x.io/v1",)), version=(1, 37, 2),
                              api_versions=("v1",))
    assert (given.kube_version, given.api_versions) == ("1.30", ("x.io/v1",))


@pytest.mark.parametrize(("obj", "hook"), [
    ({"kind": "Pod", "metadata": {"annotations": {"helm.sh/hook": "test"}}}, "test"),
    ({"kind": "Job", "metadata": {"annotations": {"helm.sh/hook": "pre-install,pre-upgrade"}}}, "pre-install,pre-upgrade"),
    ({"kind": "Job", "metadata": {"annotations": {"helm.sh/hook-weight": "1"}}}, None),
    ({"kind": "Job", "metadata": {}}, None),
    ({"kind": "Job", "metadata": None}, None),
    ("not an object", None),
])
def test_hooks_are_told_by_their_annotation(obj: object, hook: str | None) -> None:
    assert hook_of(obj) == hook


def test_each_document_is_traced_to_its_template() -> None:
    output = b"---\n# Source: web/templates/a.yaml\nkind: A\n---\n# Source: web/templates/b.yaml\nkind: B\n"
    marks = sources(output)
    assert marks == [(2, "web/templates/a.yaml"), (5, "web/templates/b.yaml")]
    assert source_at(marks, 3) == "web/templates/a.yaml"
    assert source_at(marks, 6) == "web/templates/b.yaml"


def test_a_dependency_from_a_host_not_allowed_is_refused_naming_chart_dependency_and_host() -> None:
    dependency = Dependency(name="redis", version="17.3.0", repository="https://charts.example.com/stable")
    problem = dependency_problem("web", dependency, allowed=())
    assert problem is not None
    assert "chart web" in problem and "dependency redis 17.3.0" in problem and "charts.example.com" in problem
    assert "--helm-allow-host charts.example.com" in problem
    assert dependency_problem("web", dependency, allowed=("charts.example.com",)) is None
    assert dependency_problem("web", dependency, allowed=("other.example.com",)) is not None


@pytest.mark.parametrize(("repository", "allowed", "expected"), [
    ("https://charts.example.com/x", ("charts.example.com",), True),
    ("https://CHARTS.example.com/x", ("charts.example.com",), True),
    ("http://127.0.0.1:8879/charts", ("127.0.0.1",), True),
    ("http://127.0.0.1:8879/charts", ("127.0.0.1:8879",), True),
    ("http://127.0.0.1:8879/charts", ("127.0.0.1:9999",), False),
    ("oci://registry.example.com/charts", ("registry.example.com",), True),
    ("https://evil.example.com.attacker.io/x", ("evil.example.com",), False),
    ("https://user@charts.example.com/x", ("user",), False),
])
def test_hosts_are_matched_by_name_or_name_and_port(repository: str, allowed: tuple[str, ...], expected: bool) -> None:
    assert host_allowed(repository, allowed) is expected


@pytest.mark.parametrize("repository", ["@stable", "alias:stable", "", "ftp://x.example.com/c", "/abs/path"])
def test_repositories_syncer_cannot_resolve_are_refused(repository: str) -> None:
    problem = dependency_problem("web", Dependency(name="db", version="1.0.0", repository=repository),
                                 allowed=("x.example.com",))
    assert problem is not None and "dependency db" in problem


def test_pulls_name_the_repository_and_version() -> None:
    https = pull_command("helm", Dependency("redis", "1.2.3", "https://c.example.com/r"), destination=Path("/d"))
    assert https == ["helm", "pull", "redis", "--repo", "https://c.example.com/r", "--version", "1.2.3",
                     "--destination", "/d"]
    oci = pull_command("helm", Dependency("redis", "1.2.3", "oci://r.example.com/charts/"), destination=Path("/d"))
    assert oci[:3] == ["helm", "pull", "oci://r.example.com/charts/redis"]


def test_vendored_charts_are_directories_or_packages(tmp_path: Path) -> None:
    charts = tmp_path / "charts"
    (charts / "dir-name").mkdir(parents=True)
    (charts / "dir-name" / "Chart.yaml").write_text("apiVersion: v2\nname: common\nversion: 1.0.0\n")
    with tarfile.open(charts / "redis-cluster-17.3.0.tgz", "w:gz"):
        pass
    (charts / "notes.txt").write_text("")
    assert vendored_names(charts) == {"common", "redis-cluster"}
    assert vendored_names(tmp_path / "missing") == set()


def test_helm_reads_nothing_of_the_users_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", "/home/me/.config/helm/repositories.yaml")
    monkeypatch.setenv("HELM_PLUGINS", "/home/me/.local/share/helm/plugins")
    monkeypatch.setenv("KUBECONFIG", "/home/me/.kube/config")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    home = tmp_path / "home"
    environment = helm_environment(home)
    for name, value in environment.items():
        if name.startswith("HELM_") or name in ("HOME", "KUBECONFIG"):
            assert value.startswith(str(home)), name
    assert "AWS_SECRET_ACCESS_KEY" not in environment
    assert list((home / "plugins").iterdir()) == []
    assert (home / "kubeconfig").read_text() == ""


def app(spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "syncer.dev/v1alpha1", "kind": "App", "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"repo": "https://git.example.com/web.git", "path": "charts/web", **spec}}


def test_an_app_names_its_chart_values_and_where_more_values_are() -> None:
    spec = app_spec(app({"targetNamespace": "web", "helm": {
        "valuesFiles": ["values-prod.yaml", "../shared/values.yaml"],
        "values": {"replicaCount": 2, "image": {"tag": "6.1"}},
        "valuesFrom": [{"kind": "ConfigMap", "name": "web-values"},
                       {"kind": "Secret", "name": "web-secrets", "valuesKey": "secret.yaml", "optional": True}],
    }}))
    helm = spec.config.helm
    assert helm.required and helm.release_name == "web"
    assert helm.values_files == ("values-prod.yaml", "../shared/values.yaml")
    assert helm.values == ('{"image": {"tag": "6.1"}, "replicaCount": 2}',)
    assert spec.values_from == (ValuesReference("ConfigMap", "web-values"),
                                ValuesReference("Secret", "web-secrets", key="secret.yaml", optional=True))
    assert app_spec(app({"helm": {"releaseName": "shop-web"}})).config.helm.release_name == "shop-web"
    plain = app_spec(app({})).config
    assert not plain.helm.required and plain.chart.release_name == "web", "a chart's release is named after the App"


@pytest.mark.parametrize(("helm", "problem"), [
    ("chart", "spec.helm: must be"),
    ({"valuesFile": ["x"]}, "unknown field 'valuesFile'"),
    ({"releaseName": "Web_1"}, "releaseName: 'Web_1' is not a Helm release name"),
    ({"releaseName": "a" * 54}, "is not a Helm release name"),
    ({"valuesFiles": "values.yaml"}, "valuesFiles: must be a list"),
    ({"valuesFiles": ["/etc/passwd"]}, "valuesFiles: '/etc/passwd' must be a path in the repository"),
    ({"valuesFiles": ["https://x.example.com/v.yaml"]}, "must be a path in the repository"),
    ({"values": ["a"]}, "values: must be an object"),
    ({"valuesFrom": {"kind": "Secret"}}, "valuesFrom: must be a list"),
    ({"valuesFrom": [{"kind": "Pod", "name": "x"}]}, "valuesFrom[0].kind: 'Pod' is not ConfigMap or Secret"),
    ({"valuesFrom": [{"kind": "Secret", "name": "X!"}]}, "valuesFrom[0].name: 'X!' is not the name of a Secret"),
    ({"valuesFrom": [{"kind": "Secret", "name": "x", "optional": "yes"}]}, "optional: 'yes' is not true or false"),
    ({"valuesFrom": [{"kind": "Secret", "name": "x", "targetPath": "a"}]}, "unknown field 'targetPath'"),
])
def test_an_invalid_helm_spec_is_named(helm: object, problem: str) -> None:
    with pytest.raises(InvalidApp) as invalid:
        app_spec(app({"helm": helm}))
    assert problem in str(invalid.value)
