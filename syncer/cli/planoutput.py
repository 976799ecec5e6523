"""How a plan document is shown: the markdown of a pull-request comment, and reading one back.

The markdown puts the summary first (what a reviewer decides on), then one collapsed
`<details>` per object that changes, holding its diff as `syncer diff` shows it: Secret
values are masked there already (`syncer.diff.compare`), and the document holds no values.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from syncer.apply.changeset import ACTIONS
from syncer.diff.explain import Cause, FieldChange
from syncer.errors import ConfigError

_SIGNS = {"created": "+", "configured": "~", "recreated": "±", "deleted": "-"}


def _name(entry: Mapping[str, Any]) -> str:
    where = f"{entry['namespace']}/{entry['name']}" if entry.get("namespace") else str(entry["name"])
    return f"{entry['kind']}/{where}"


def plan_markdown(document: Mapping[str, Any], *, diffs: Mapping[str, str]) -> str:
    """A pull-request comment. `diffs`: `Kind/namespace/name` -> its unified diff (masked)."""
    entries = [*document.get("objects", []), *document.get("prune", [])]
    counts = Counter(str(e["action"]) for e in entries)
    summary = ", ".join(f"{counts[a]} {a}" for a in map(str, ACTIONS) if counts.get(a)) or "no objects"
    cluster = document.get("cluster", {})
    lines = [
        f"### syncer plan: app `{document['app']}` at `{document['revision']}`",
        "",
        f"**{summary}** ({'changes' if document.get('hasChanges') else 'no changes'})",
        "",
        *([f"> **A sync would refuse this plan:** {document['blocked']}", ""] if document.get("blocked") else []),
        f"- inventory: `{document['inventory']['parent']}`",
        f"- cluster: kube-system uid `{cluster.get('uid')}`, Kubernetes {cluster.get('serverVersion')}",
        f"- plan digest: `{document['digest']}`" + (" (signed)" if document.get("signature") else ""),
        f"- made at {document['created']}",
    ]
    lines += [f"- warning: {warning}" for warning in document.get("warnings", [])]
    for entry in entries:
        action = str(entry["action"])
        if action == "unchanged":
            continue
        name = _name(entry)
        fields = entry.get("fields", [])
        why = f", {entry['reason']}" if entry.get("reason") else ""
        count = f", {len(fields)} field(s)" if fields else ""
        lines += ["", "<details>",
                  f"<summary><code>{_SIGNS.get(action, ' ')} {action} {entry['apiVersion']} {name}</code>{why}{count}"
                  "</summary>", ""]
        if entry.get("message"):
            lines += [str(entry["message"]), ""]
        if fields:
            lines += [f"- `{f['path']}` {_cause(f)}" for f in fields] + [""]
        diff = diffs.get(name, "")
        if diff:
            lines += ["```diff", diff.rstrip("\n").replace("```", "` ` `"), "```", ""]
        lines.append("</details>")
    return "\n".join(lines) + "\n"


def read_plan_file(path: str) -> dict[str, Any]:
    """The plan document in `path` (JSON, or the YAML of `-o yaml`)."""
    try:
        text = Path(path).read_text()
        document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the plan: {error}") from error
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a plan document (expected a mapping with kind Plan)")
    return document


def read_key_file(path: str | None) -> bytes | None:
    """The HMAC key of --plan-key-file: the file's bytes, without surrounding whitespace."""
    if path is None:
        return None
    try:
        key = Path(path).read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"--plan-key-file {path}: {error.strerror}") from error
    if len(key) < 16:
        raise ConfigError(f"--plan-key-file {path}: a key of {len(key)} bytes is too short; use at least 16 "
                          "(e.g. `openssl rand -hex 32`)")
    return key


def _cause(field: Mapping[str, Any]) -> str:
    """A planned field's cause as the diff text says it (`syncer.diff.explain.FieldChange.describe`)."""
    return FieldChange(path=str(field["path"]), cause=Cause(str(field["cause"])), manager=field.get("manager"),
                       time=field.get("time"), takes_over=bool(field.get("takesOver"))).describe()
