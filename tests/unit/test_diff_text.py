"""YAML rendering and unified diffs people read."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.diff import to_yaml, unified_yaml_diff


def test_to_yaml_orders_keys_the_way_manifests_are_written() -> None:
    obj = {
        "type": "Opaque",
        "data": {"b": "2", "a": "1"},
        "metadata": {"labels": {"z": "1", "a": "2"}, "namespace": "shop", "name": "db", "annotations": {"x": "y"}},
        "kind": "Secret",
        "immutable": True,
        "apiVersion": "v1",
    }
    assert to_yaml(obj) == (
        "apiVersion: v1\n"
        "kind: Secret\n"
        "metadata:\n"
        "  name: db\n"
        "  namespace: shop\n"
        "  labels:\n"
        "    a: '2'\n"
        "    z: '1'\n"
        "  annotations:\n"
        "    x: y\n"
        "data:\n"
        "  a: '1'\n"
        "  b: '2'\n"
        "immutable: true\n"
        "type: Opaque\n"
    )


def test_to_yaml_puts_name_first_in_list_items_and_blocks_multiline_strings() -> None:
    obj = {"spec": {"containers": [{"image": "nginx", "args": ["-g", "daemon off;"], "name": "web"}]},
           "data": {"run.sh": "#!/bin/sh\nexec nginx\n"}}
    assert to_yaml(obj) == (
        "spec:\n"
        "  containers:\n"
        "  - name: web\n"
        "    args:\n"
        "    - -g\n"
        "    - daemon off;\n"
        "    image: nginx\n"
        "data:\n"
        "  run.sh: |\n"
        "    #!/bin/sh\n"
        "    exec nginx\n"
    )


def test_long_strings_are_not_folded() -> None:
    value = "word " * 100
    assert to_yaml({"data": {"long": value.strip()}}).count("\n") == 2


def configmap(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
            "data": data}


def test_unified_diff_has_labelled_headers_and_three_lines_of_context() -> None:
    before = configmap(a="1", b="2", c="3", d="4", e="5", f="6")
    after = configmap(a="1", b="2", c="3", d="four", e="5", f="6")
    assert unified_yaml_diff(before, after, label="ConfigMap/shop/settings") == (
        "--- ConfigMap/shop/settings (live)\n"
        "+++ ConfigMap/shop/settings (desired)\n"
        "@@ -7,6 +7,6 @@\n"
        "   a: '1'\n"
        "   b: '2'\n"
        "   c: '3'\n"
        "-  d: '4'\n"
        "+  d: four\n"
        "   e: '5'\n"
        "   f: '6'\n"
    )


def test_key_order_of_the_input_does_not_make_a_diff() -> None:
    one = configmap(a="1", b="2")
    other = {"data": {"b": "2", "a": "1"}, "metadata": {"namespace": "shop", "name": "settings"},
             "kind": "ConfigMap", "apiVersion": "v1"}
    assert unified_yaml_diff(one, other, label="x") == ""


@pytest.mark.parametrize(
    ("before", "after", "sign"),
    [(None, configmap(a="1"), "+"), (configmap(a="1"), None, "-")],
    ids=["create", "delete"],
)
def test_missing_side_shows_every_line(before: dict[str, Any] | None, after: dict[str, Any] | None,
                                       sign: str) -> None:
    lines = unified_yaml_diff(before, after, label="ConfigMap/shop/settings").splitlines()
    assert lines[:2] == ["--- ConfigMap/shop/settings (live)", "+++ ConfigMap/shop/settings (desired)"]
    body = lines[3:]
    assert body == [sign + line for line in to_yaml(configmap(a="1")).splitlines()]
