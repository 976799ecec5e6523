"""A kustomization reads only files inside the app's repository (issue 11, report 1).

Kustomize follows `resources` anywhere and fetches URLs; every file reference of every
kustomization reached is checked before Kustomize runs, so nothing outside is ever read or
fetched. The SSRF case is proven with a real HTTP server on 127.0.0.1 that must see no request.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from syncer.errors import RenderError
from syncer.sources import Snapshot, render

needs_kustomize = pytest.mark.skipif(
    shutil.which("kustomize") is None and shutil.which("kubectl") is None,
    reason="neither kustomize nor kubectl is on PATH",
)

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {key: value}\n"


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def render_problems(repo: Path, path: str = "app") -> list[str]:
    with pytest.raises(RenderError) as excinfo:
        render(Snapshot(revision="working-tree", root=repo, repo=str(repo)), path)
    return [str(problem) for problem in excinfo.value.problems]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


@needs_kustomize
def test_a_url_resource_is_refused_and_never_fetched(repo: Path, recording_server: tuple[str, list[str]]) -> None:
    url, requests = recording_server
    write(repo, "app/kustomization.yaml", f"resources: [cm.yaml, {url}/x.yaml]\n")
    write(repo, "app/cm.yaml", CONFIGMAP % "local")

    problems = render_problems(repo)

    assert len(problems) == 1
    assert problems[0].startswith(f"app/kustomization.yaml: resources entry '{url}/x.yaml': a URL")
    assert requests == []


@needs_kustomize
def test_a_nested_kustomization_is_checked_too(repo: Path, recording_server: tuple[str, list[str]]) -> None:
    url, requests = recording_server
    write(repo, "app/kustomization.yaml", "resources: [../base]\n")
    write(repo, "base/kustomization.yaml", f"components: [../component]\n")
    write(repo, "component/kustomization.yaml",
          f"apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [{url}/y.yaml]\n")

    problems = render_problems(repo)

    assert [p.split(": a URL")[0] for p in problems] == [f"component/kustomization.yaml: resources entry '{url}/y.yaml'"]
    assert requests == []


@needs_kustomize
def test_file_urls_and_absolute_paths_outside_are_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "kustomization.yaml", "resources: [cm.yaml]\n")
    write(outside, "cm.yaml", CONFIGMAP % "stolen")
    write(repo, "app/kustomization.yaml", textwrap.dedent(f"""\
        resources:
        - file://{outside}
        - {outside}
        - git@github.com:org/repo.git
        - github.com/org/repo//deploy?ref=main
        - ../../outside
        """))

    problems = render_problems(repo)

    assert problems == [
        f"app/kustomization.yaml: resources entry 'file://{outside}': a URL: syncer builds kustomizations only "
        "from files inside the repository (remote and file:// bases are refused); vendor the base into the repository",
        f"app/kustomization.yaml: resources entry '{outside}': an absolute path: use a path relative to the "
        "kustomization, inside the repository",
        "app/kustomization.yaml: resources entry 'git@github.com:org/repo.git': a URL: syncer builds kustomizations "
        "only from files inside the repository (remote and file:// bases are refused); vendor the base into the "
        "repository",
        "app/kustomization.yaml: resources entry 'github.com/org/repo//deploy?ref=main': a URL: syncer builds "
        "kustomizations only from files inside the repository (remote and file:// bases are refused); vendor the "
        "base into the repository",
        "app/kustomization.yaml: resources entry '../../outside': leads outside the repository; keep bases inside it",
    ]


@needs_kustomize
def test_every_file_field_is_checked(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("hunter2\n")
    write(repo, "app/kustomization.yaml", textwrap.dedent(f"""\
        resources: [cm.yaml]
        patches:
        - path: {secret}
        patchesStrategicMerge:
        - https://example.invalid/patch.yaml
        - |-
          apiVersion: v1
          kind: ConfigMap
          metadata: {{name: local}}
        secretGenerator:
        - name: copied
          files: [key={secret}]
          envs: [../../{secret.name}]
        openapi: {{path: "file://{secret}"}}
        """))
    write(repo, "app/cm.yaml", CONFIGMAP % "local")

    problems = render_problems(repo)

    assert [p.split("': ")[0] for p in problems] == [
        "app/kustomization.yaml: patchesStrategicMerge entry 'https://example.invalid/patch.yaml",
        f"app/kustomization.yaml: patches[].path entry '{secret}",
        f"app/kustomization.yaml: openapi.path entry 'file://{secret}",
        f"app/kustomization.yaml: secretGenerator[].files entry '{secret}",
        f"app/kustomization.yaml: secretGenerator[].envs entry '../../{secret.name}",
    ]
    assert not any("hunter2" in p for p in problems)


@needs_kustomize
def test_a_missing_name_is_not_left_to_kustomize_as_a_remote_base(repo: Path) -> None:
    write(repo, "app/kustomization.yaml", "resources: [missing.yaml, example.com/org/repo]\n")

    assert render_problems(repo) == [
        f"app/kustomization.yaml: resources entry {entry!r}: not found in the repository (Kustomize would try "
        "it as a remote base, which syncer refuses); check the path"
        for entry in ("missing.yaml", "example.com/org/repo")
    ]


@needs_kustomize
def test_local_bases_patches_and_generators_inside_still_build(repo: Path) -> None:
    write(repo, "base/kustomization.yaml", "resources: [cm.yaml]\n")
    write(repo, "base/cm.yaml", CONFIGMAP % "settings")
    write(repo, "app/kustomization.yaml", textwrap.dedent("""\
        resources: [../base]
        patches:
        - path: patch.yaml
        configMapGenerator:
        - name: generated
          files: [greeting=hello.txt]
        generatorOptions: {disableNameSuffixHash: true}
        """))
    write(repo, "app/patch.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {key: patched}\n")
    write(repo, "app/hello.txt", "hello\n")

    manifests = render(Snapshot(revision="working-tree", root=repo, repo=str(repo)), "app")

    by_name = {m.ref.name: m.obj for m in manifests}
    assert by_name["settings"]["data"] == {"key": "patched"}
    assert by_name["generated"]["data"] == {"greeting": "hello\n"}
