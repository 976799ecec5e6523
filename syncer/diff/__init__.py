"""The three-way diff: desired (Git), live (cluster) and last applied (syncer's managed fields).

Pure: dicts in, data out. Nothing here imports the Kubernetes client or Git or does I/O; the
planner fetches live objects and dry-run predictions and hands them in.
"""

from syncer.diff.compare import ObjectDiff, compare
from syncer.diff.explain import CHANGE_CAUSES, Cause, FieldChange, explain
from syncer.diff.fieldsets import (
    FieldSet,
    is_subset,
    managed_by,
    owned_fields,
    present_paths,
    proven_unchanged,
    removed_paths,
    values_equal,
)
from syncer.diff.ignore import (
    IGNORE_ANNOTATION,
    IgnoreRule,
    apply_ignores,
    parse_ignore_rules,
    pointer_path,
    rules_for,
)
from syncer.diff.normalize import Path, normalize, without_paths
from syncer.diff.secrets import PROCESS_SALT, is_secret, mask_secret, scrub, secret_marker, secret_values
from syncer.diff.text import to_yaml, unified_yaml_diff

__all__ = [
    "CHANGE_CAUSES",
    "Cause",
    "FieldChange",
    "explain",
    "FieldSet",
    "IGNORE_ANNOTATION",
    "IgnoreRule",
    "ObjectDiff",
    "PROCESS_SALT",
    "Path",
    "apply_ignores",
    "compare",
    "is_secret",
    "is_subset",
    "managed_by",
    "mask_secret",
    "normalize",
    "owned_fields",
    "parse_ignore_rules",
    "pointer_path",
    "present_paths",
    "proven_unchanged",
    "removed_paths",
    "rules_for",
    "scrub",
    "secret_marker",
    "secret_values",
    "to_yaml",
    "unified_yaml_diff",
    "values_equal",
    "without_paths",
]
