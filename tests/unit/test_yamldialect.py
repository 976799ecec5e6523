"""YAML read as Kubernetes reads it (sigs.k8s.io/yaml over go-yaml v2), not as PyYAML does."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from syncer.errors import RenderError
from syncer.sources import Snapshot, render
from syncer.sources.yamldialect import json_key
from syncer.sources.yamlload import Budget, RenderLimits, load_yaml


def load_one(text: str) -> Any:
    documents, problems = load_yaml(text.encode(), file="f.yaml", budget=Budget(RenderLimits()))
    assert problems == []
    (document,) = documents
    return document.obj


@pytest.mark.parametrize(
    ("scalar", "kubernetes_reads"),
    [
        ("=", "="),  # PyYAML: tag:yaml.org,2002:value, which its safe loader cannot construct
        ("=~", "=~"),
        ("y", True),  # PyYAML: "y"
        ("Y", True),
        ("n", False),
        ("yes", True),
        ("off", False),
        ("1:30", "1:30"),  # PyYAML: 90 (base 60)
        ("190:20:30.15", "190:20:30.15"),
        ("1e3", 1000),  # PyYAML: "1e3"; Go writes 1000.0 into JSON as 1000
        ("1.5e3", 1500),
        ("2.5", 2.5),
        ("3.0", 3),
        ("0o17", 15),  # PyYAML: "0o17"
        ("0777", 511),
        ("08", 8),  # PyYAML: "08"; go-yaml: the float 8
        ("0x1F", 31),
        ("-0b101", -5),
        ("1_000", 1000),
        ("2024-05-01", "2024-05-01"),  # PyYAML: a date
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("~", None),
        ("null", None),
        ("'yes'", "yes"),
        ('"1e3"', "1e3"),
        ("!!str 08", "08"),
        ("99999999999999999999", 1e20),
        ("v1.2", "v1.2"),
        ("1.2.3", "1.2.3"),
    ],
)
def test_plain_scalars_resolve_as_kubernetes_resolves_them(scalar: str, kubernetes_reads: Any) -> None:
    value = load_one(f"value: {scalar}\n")["value"]

    assert value == kubernetes_reads
    assert type(value) is type(kubernetes_reads)


def test_map_keys_become_the_strings_sigs_k8s_io_yaml_writes() -> None:
    obj = load_one(
        textwrap.dedent(
            """
            portLevelMtls:
              8443: {mode: PERMISSIVE}
            0x10: hex
            y: yes-key
            2.5: float
            1e6: big
            """
        )
    )

    assert obj == {
        "portLevelMtls": {"8443": {"mode": "PERMISSIVE"}},
        "16": "hex",
        "true": "yes-key",
        "2.5": "float",
        "1e+06": "big",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: .nan\n", "f.yaml:1: invalid YAML: nan cannot be sent to Kubernetes"),
        ("a: -.inf\n", "f.yaml:1: invalid YAML: -inf cannot be sent to Kubernetes"),
        ("~: a\n", "f.yaml:1: invalid YAML: a null map key cannot be sent to Kubernetes"),
        ("16: a\n0x10: b\n", "f.yaml:2: duplicate key '16' (first at line 1)"),
        ("a: !!int abc\n", "f.yaml:1: cannot decode the document: a value does not fit its explicit tag"),
        ("a: !!bool maybe\n", "a value does not fit its explicit tag"),
    ],
)
def test_what_kubernetes_cannot_read_is_a_problem_with_its_line(text: str, problem: str) -> None:
    _, problems = load_yaml(text.encode(), file="f.yaml", budget=Budget(RenderLimits()))

    assert any(str(found).startswith(problem) or problem in str(found) for found in problems), problems


@pytest.mark.parametrize(("key", "text"), [(1.0e6, "1e+06"), (123456.0, "123456"), (0.0001, "0.0001"), (1e-05, "1e-05"), (-2.5, "-2.5")])
def test_float_keys_are_formatted_as_go_formats_them(key: float, text: str) -> None:
    assert json_key(key) == text


def test_a_yes_label_is_a_validation_error_naming_file_line_object_and_field(tmp_path: Path) -> None:
    """Flux's test7: `labeled: yes` is a boolean to PyYAML, kubectl and the API server alike."""
    (tmp_path / "deploy.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    labeled: yes\n"
        "spec:\n  template:\n    metadata:\n      annotations: {port: 8080}\n"
    )

    with pytest.raises(RenderError) as excinfo:
        render(Snapshot(revision="working-tree", root=tmp_path, repo=str(tmp_path)))

    assert [str(problem) for problem in excinfo.value.problems] == [
        "deploy.yaml:6: Deployment/web: metadata.labels.labeled must be a string, not a boolean (true); quote it "
        "(YAML reads yes/no/on/off/y/n/true/false unquoted as booleans, as Kubernetes does)",
        "deploy.yaml:6: Deployment/web: spec.template.metadata.annotations.port must be a string, not a number (8080); "
        "quote it",
    ]


def test_configmap_data_must_be_strings(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {enabled: on, x: '1'}\n")

    with pytest.raises(RenderError) as excinfo:
        render(Snapshot(revision="working-tree", root=tmp_path, repo=str(tmp_path)))

    (problem,) = excinfo.value.problems
    assert str(problem).startswith("cm.yaml:1: ConfigMap/c: data.enabled must be a string, not a boolean (true)")


def test_prometheus_operator_bundle_bare_equals_sign_is_the_string(tmp_path: Path) -> None:
    """prometheus-operator v0.80's CRDs list the relabel actions `=` and `=~` unquoted."""
    obj = load_one("enum:\n- =\n- =~\n- '!='\n")

    assert obj == {"enum": ["=", "=~", "!="]}
