"""Rendering a snapshot's files into validated manifests (syncer.sources.render)."""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from syncer.errors import Problem, RenderError, SourceError
from syncer.model import Origin
from syncer.sources import RenderLimits, Snapshot, render
from syncer.sources.validate import RenderedDocument, validate
from syncer.sources.yamlload import flow_depth


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def snapshot_of(root: Path) -> Snapshot:
    return Snapshot(revision="working-tree", root=root, repo=str(root))


def problems_of(excinfo: pytest.ExceptionInfo[RenderError]) -> list[str]:
    return [str(problem) for problem in excinfo.value.problems]


CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  key: value
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


# -- walking and decoding -------------------------------------------------------------------


def test_walks_sorted_and_recursive_and_records_origins(repo: Path) -> None:
    write(repo, "apps/b.yaml", CONFIGMAP.format(name="b"))
    write(repo, "apps/a.yml", CONFIGMAP.format(name="a"))
    write(repo, "apps/sub/c.json", '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}')
    write(
        repo,
        "apps/multi.yaml",
        """
        # leading comment
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: first}
        ---
        ---

        apiVersion: v1
        kind: Secret
        metadata: {name: second}
        """,
    )
    write(repo, "apps/README.md", "not yaml: [")

    manifests = render(snapshot_of(repo), "apps")

    assert [m.ref.name for m in manifests] == ["a", "b", "first", "second", "c"]
    assert [m.origin for m in manifests] == [
        Origin("apps/a.yml", 0, 1),
        Origin("apps/b.yaml", 0, 1),
        Origin("apps/multi.yaml", 0, 3),
        Origin("apps/multi.yaml", 2, 9),
        Origin("apps/sub/c.json", 0, 1),
    ]


def test_hidden_files_and_directories_are_not_read(repo: Path) -> None:
    write(repo, ".github/workflows/ci.yaml", "on: push\njobs: {}\n")
    write(repo, ".hidden.yaml", "not: a manifest\n")
    write(repo, "cm.yaml", CONFIGMAP.format(name="cm"))

    assert [m.ref.name for m in render(snapshot_of(repo))] == ["cm"]


def test_path_may_name_a_single_file(repo: Path) -> None:
    write(repo, "one.yaml", CONFIGMAP.format(name="one"))
    write(repo, "two.yaml", CONFIGMAP.format(name="two"))

    assert [m.ref.name for m in render(snapshot_of(repo), "two.yaml")] == ["two"]


def test_key_order_is_kept_and_timestamps_stay_strings(repo: Path) -> None:
    write(
        repo,
        "cm.yaml",
        """
        kind: ConfigMap
        apiVersion: v1
        metadata:
          name: dated
          annotations:
            released: 2024-05-01
        data:
          zeta: "1"
          alpha: "2"
        """,
    )

    (manifest,) = render(snapshot_of(repo))

    assert list(manifest.obj) == ["kind", "apiVersion", "metadata", "data"]
    assert list(manifest.obj["data"]) == ["zeta", "alpha"]
    assert manifest.annotations == {"released": "2024-05-01"}


def test_list_kinds_are_flattened_with_item_lines(repo: Path) -> None:
    write(
        repo,
        "list.yaml",
        """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: one}
        - apiVersion: v1
          kind: ConfigMapList
          items:
          - apiVersion: v1
            kind: ConfigMap
            metadata: {name: nested}
        """,
    )
    write(repo, "svc.json", '{"apiVersion": "v1", "kind": "ServiceList", "items": '
                            '[{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}]}')  # fmt: skip

    manifests = render(snapshot_of(repo))

    assert [(m.kind, m.ref.name, str(m.origin)) for m in manifests] == [
        ("ConfigMap", "one", "list.yaml:4"),
        ("ConfigMap", "nested", "list.yaml:7"),
        ("Service", "web", "svc.json:1"),
    ]


# -- namespaces -----------------------------------------------------------------------------


def test_namespaced_objects_get_the_default_namespace(repo: Path) -> None:
    write(
        repo,
        "all.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: defaulted}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: explicit, namespace: other}
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: reader, namespace: ignored}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop}
        ---
        apiVersion: example.com/v1
        kind: Unknown
        metadata: {name: guessed}
        """,
    )

    manifests = {m.ref.name: m for m in render(snapshot_of(repo), namespace="shop")}

    assert manifests["defaulted"].ref.namespace == "shop"
    assert manifests["defaulted"].namespace_defaulted
    assert manifests["explicit"].ref.namespace == "other"
    assert not manifests["explicit"].namespace_defaulted
    assert manifests["reader"].ref.namespace is None
    assert "namespace" not in manifests["reader"].obj["metadata"]
    assert manifests["shop"].ref.namespace is None
    assert not manifests["shop"].namespace_defaulted
    assert manifests["guessed"].ref.namespace == "shop"
    assert manifests["guessed"].namespace_defaulted


def test_crds_in_the_same_render_decide_the_scope_of_their_kind(repo: Path) -> None:
    write(
        repo,
        "crds.yaml",
        """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: clusterwidgets.example.com}
        spec:
          group: example.com
          scope: Cluster
          names: {kind: ClusterWidget, plural: clusterwidgets}
        ---
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {kind: Widget, plural: widgets}
        """,
    )
    write(
        repo,
        "objects.yaml",
        """
        apiVersion: example.com/v1
        kind: ClusterWidget
        metadata: {name: global}
        ---
        apiVersion: example.com/v1alpha1
        kind: Widget
        metadata: {name: local}
        """,
    )

    manifests = {m.ref.name: m for m in render(snapshot_of(repo), namespace="apps")}

    assert manifests["clusterwidgets.example.com"].ref.namespace is None
    assert manifests["global"].ref.namespace is None
    assert not manifests["global"].namespace_defaulted
    assert manifests["local"].ref.namespace == "apps"


# -- problems -------------------------------------------------------------------------------


def test_broken_yaml_names_file_and_line_and_all_problems_are_collected(repo: Path) -> None:
    write(repo, "a-good.yaml", CONFIGMAP.format(name="good"))
    write(repo, "b-broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n   bad: indent\n")
    write(repo, "c-invalid.yaml", "apiVersion: v1\nmetadata: {}\n---\n- just\n- a list\n")

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo))

    problems = problems_of(excinfo)
    assert len(problems) == 3
    assert problems[0].startswith("b-broken.yaml:5: invalid YAML")
    assert problems[1] == "c-invalid.yaml:1: kind and metadata.name are missing"
    assert problems[2].startswith("c-invalid.yaml:4: the document is a list, not a Kubernetes object")
    assert excinfo.value.exit_code == 2


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 42}\n", "metadata.name must be a string, not a number"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: [x]\n", "metadata must be a mapping, not a list"),
        ("apiVersion: 1\nkind: ConfigMap\nmetadata: {name: x}\n", "apiVersion must be a string, not a number"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\n", "metadata.name is missing"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: 7}\n", "metadata.namespace must be a string"),
        ("just a string\n", "the document is a string, not a Kubernetes object"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: 1, a: 2}\n", "duplicate key 'a'"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: !!int abc}\n", "cannot decode the document"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: *nowhere}\n", "alias *nowhere is not defined"),
    ],
)
def test_invalid_documents(repo: Path, document: str, expected: str) -> None:
    write(repo, "doc.yaml", document)

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo))

    assert any(expected in problem for problem in problems_of(excinfo)), problems_of(excinfo)


def test_duplicates_name_both_origins(repo: Path) -> None:
    write(repo, "a.yaml", CONFIGMAP.format(name="same").replace("value", "first"))
    other, same = CONFIGMAP.format(name="other").lstrip(), CONFIGMAP.format(name="same").lstrip()
    write(repo, "b.yaml", f"---\n{other}---\n{same}")  # `same` starts on line 9

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo), namespace="shop")

    assert problems_of(excinfo) == [
        "b.yaml:9: ConfigMap/shop/same is defined twice: here and at a.yaml:1; remove one of them"
    ]


def test_an_object_written_twice_identically_is_one_object(repo: Path) -> None:
    """Knative's release YAML repeats its CRDs word for word; kubectl applies both, harmlessly."""
    write(repo, "a.yaml", CONFIGMAP.format(name="same"))
    write(repo, "b.yaml", "---\n" + CONFIGMAP.format(name="same").lstrip())

    (manifest,) = render(snapshot_of(repo), namespace="shop")

    assert manifest.origin == Origin(file="a.yaml", document=0, line=1)


def test_same_name_in_different_namespaces_or_groups_is_no_duplicate(repo: Path) -> None:
    write(repo, "a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: one}\n")
    write(repo, "b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: two}\n")
    write(repo, "c.yaml", "apiVersion: example.com/v1\nkind: ConfigMap\nmetadata: {name: x, namespace: one}\n")

    assert len(render(snapshot_of(repo))) == 3


def test_validate_is_pure_and_reports_where_list_items_are() -> None:
    document = RenderedDocument(
        obj={"apiVersion": "v1", "kind": "List", "items": [{"kind": "ConfigMap"}]},
        origin=Origin("out", 3),
        where="overlay (kustomize output, document 4)",
    )

    manifests, problems = validate([document], namespace="default")

    assert manifests == []
    assert problems == [
        Problem("overlay (kustomize output, document 4), item 1", "apiVersion and metadata.name are missing")
    ]


# -- paths and symlinks ---------------------------------------------------------------------


def test_symlink_out_of_the_repository_is_an_error_naming_it(repo: Path, tmp_path: Path) -> None:
    secret = write(tmp_path, "outside/secret.yaml", CONFIGMAP.format(name="stolen"))
    write(repo, "apps/cm.yaml", CONFIGMAP.format(name="cm"))
    (repo / "apps/link.yaml").symlink_to(secret)
    (repo / "apps/linkdir").symlink_to(secret.parent)

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo))

    problems = problems_of(excinfo)
    assert len(problems) == 2
    assert problems[0].startswith("apps/link.yaml: symlink leads outside the repository")
    assert problems[1].startswith("apps/linkdir: symlink leads outside the repository")


def test_symlinks_inside_the_repository_are_followed(repo: Path) -> None:
    write(repo, "shared/cm.yaml", CONFIGMAP.format(name="shared"))
    (repo / "apps").mkdir()
    (repo / "apps/cm.yaml").symlink_to("../shared/cm.yaml")
    (repo / "apps/loop").symlink_to(".")

    manifests = render(snapshot_of(repo), "apps")

    assert [(m.ref.name, m.origin.file) for m in manifests] == [("shared", "apps/cm.yaml")]


@pytest.mark.parametrize("path", ["../repo", "apps/../../x", "/etc"])
def test_path_must_stay_in_the_repository(repo: Path, path: str) -> None:
    (repo / "apps").mkdir()

    with pytest.raises(SourceError, match="must be relative to the repository root"):
        render(snapshot_of(repo), path)


def test_path_not_in_repository(repo: Path) -> None:
    with pytest.raises(SourceError, match="path 'nope' not found in repository .* at revision working-tree"):
        render(snapshot_of(repo), "nope")


def test_path_that_is_a_symlink_out_of_the_repository(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (repo / "apps").symlink_to(tmp_path / "elsewhere")

    with pytest.raises(SourceError, match="symlink leading outside the repository"):
        render(snapshot_of(repo), "apps")


# -- limits ---------------------------------------------------------------------------------

BILLION_LAUGHS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: lol}
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def merge_key_bomb(levels: int) -> str:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: merge}", "data:", "  l0: &l0 {a: x, b: y}"]
    lines += [f"  l{n}: &l{n} {{<<: [*l{n - 1}, *l{n - 1}], k{n}: v}}" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, merge_key_bomb(40)], ids=["billion-laughs", "merge-keys"])
def test_yaml_bombs_fail_fast(repo: Path, bomb: str) -> None:
    write(repo, "bomb.yaml", bomb)

    started = time.monotonic()
    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo))

    assert time.monotonic() - started < 0.5
    (problem,) = problems_of(excinfo)
    assert problem.startswith("bomb.yaml:")
    assert "aliases expanded" in problem


def test_deep_nesting_is_rejected_without_crashing(repo: Path) -> None:
    write(repo, "deep.yaml", "[" * 200_000 + "]" * 200_000)

    with pytest.raises(RenderError, match="deep.yaml:1: invalid YAML: nested more than 256 levels deep"):
        render(snapshot_of(repo))


def test_recursive_alias_is_rejected(repo: Path) -> None:
    write(repo, "loop.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: x, self: *m}\n")

    with pytest.raises(RenderError, match="alias \\*m refers to a node that contains it"):
        render(snapshot_of(repo))


def test_aliases_within_limits_are_fine(repo: Path) -> None:
    write(
        repo,
        "anchors.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: anchored
          labels: &labels {app: web}
          annotations:
            <<: *labels
            extra: "yes"
        """,
    )

    (manifest,) = render(snapshot_of(repo))

    assert manifest.annotations == {"app": "web", "extra": "yes"}


def test_file_size_limit(repo: Path) -> None:
    big = write(repo, "big.yaml", CONFIGMAP.format(name="big") + "  padding: " + "x" * 200 + "\n")
    write(repo, "small.yaml", CONFIGMAP.format(name="small"))

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo), limits=RenderLimits(max_file_bytes=150))

    (problem,) = problems_of(excinfo)
    size = big.stat().st_size
    assert problem == f"big.yaml: the file has {size} bytes, more than the limit of 150; split it"


def test_object_and_total_size_limits(repo: Path) -> None:
    write(repo, "many.yaml", "".join("---\n" + CONFIGMAP.format(name=f"cm{n}") for n in range(5)))

    with pytest.raises(RenderError, match="more than 3 objects"):
        render(snapshot_of(repo), limits=RenderLimits(max_objects=3))
    with pytest.raises(RenderError, match="the limit per app is 100 bytes"):
        render(snapshot_of(repo), limits=RenderLimits(max_total_bytes=100))


# -- kustomize ------------------------------------------------------------------------------

needs_kustomize = pytest.mark.skipif(
    shutil.which("kustomize") is None and shutil.which("kubectl") is None,
    reason="neither kustomize nor kubectl is on PATH",
)


def kustomize_repo(repo: Path) -> None:
    write(repo, "base/kustomization.yaml", "resources: [cm.yaml, deploy.yaml]\n")
    write(repo, "base/cm.yaml", CONFIGMAP.format(name="settings"))
    write(
        repo,
        "base/deploy.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {containers: [{name: web, image: nginx}]}
        """,
    )
    write(repo, "overlays/prod/kustomization.yaml", "namespace: prod\nnamePrefix: prod-\nresources: [../../base]\n")


@needs_kustomize
def test_kustomization_is_built_with_kustomize(repo: Path) -> None:
    kustomize_repo(repo)

    manifests = render(snapshot_of(repo), "overlays/prod", namespace="ignored")

    assert sorted(str(m.ref) for m in manifests) == ["ConfigMap/prod/prod-settings", "Deployment/prod/prod-web"]
    assert {m.origin.file for m in manifests} == {"overlays/prod"}
    assert sorted(m.origin.document for m in manifests) == [0, 1]


@needs_kustomize
def test_kustomization_below_a_walked_directory_is_built_not_read(repo: Path) -> None:
    kustomize_repo(repo)
    write(repo, "plain.yaml", CONFIGMAP.format(name="plain"))

    manifests = render(snapshot_of(repo), namespace="dev")

    assert sorted(str(m.ref) for m in manifests) == [
        "ConfigMap/dev/plain",
        "ConfigMap/dev/settings",
        "ConfigMap/prod/prod-settings",
        "Deployment/dev/web",
        "Deployment/prod/prod-web",
    ]


@needs_kustomize
def test_kustomize_errors_name_the_directory(repo: Path) -> None:
    write(repo, "app/kustomization.yaml", "resources: [missing.yaml]\n")

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo), "app")

    (problem,) = problems_of(excinfo)
    assert problem.startswith("app/kustomization.yaml: resources entry 'missing.yaml': not found in the repository")
    assert str(repo) not in problem


@needs_kustomize
def test_kustomize_failures_name_the_directory(repo: Path) -> None:
    write(repo, "app/kustomization.yaml", "resources: [cm.yaml]\n")
    write(repo, "app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\n")

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo), "app")

    (problem,) = problems_of(excinfo)
    assert problem.startswith("app: ") and "failed" in problem
    assert str(repo) not in problem


def test_kustomize_bases_outside_the_repository_are_refused(repo: Path, tmp_path: Path) -> None:
    write(tmp_path, "outside/kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path, "outside/cm.yaml", CONFIGMAP.format(name="outside"))
    write(repo, "app/kustomization.yaml", f"resources: [../../outside, {tmp_path / 'outside'}]\n")

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo), "app")

    assert problems_of(excinfo) == [
        "app/kustomization.yaml: resources entry '../../outside': leads outside the repository; keep bases inside it",
        f"app/kustomization.yaml: resources entry '{tmp_path / 'outside'}': an absolute path: use a path relative "
        "to the kustomization, inside the repository",
    ]


def test_kustomization_without_kustomize_is_a_clear_error(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kustomize_repo(repo)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo), "overlays/prod")

    (problem,) = problems_of(excinfo)
    assert problem.startswith("overlays/prod: this directory holds a kustomization, which needs Kustomize")


def test_relative_origins_do_not_depend_on_a_symlinked_root(repo: Path, tmp_path: Path) -> None:
    write(repo, "cm.yaml", CONFIGMAP.format(name="cm"))
    alias = tmp_path / "alias"
    os.symlink(repo, alias)

    (manifest,) = render(snapshot_of(alias))

    assert manifest.origin.file == "cm.yaml"


@pytest.mark.parametrize(
    ("text", "depth"),
    [("[[[]]]", 3), ("{a: [1, {b: 2}]}", 3), ("a: '[[['\nb: \"[[\\\"[\"\n", 0), ("a: 1 # [[[[\n[x]", 1), ("", 0)],
)
def test_flow_depth_counts_only_flow_collections(text: str, depth: int) -> None:
    assert flow_depth(text.encode(), end=len(text)) == depth
