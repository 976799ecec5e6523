"""The layering of the pipeline: sources and diff never talk to a cluster, diff never to Git.

Checked in a fresh interpreter, since this test process may have imported anything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = {
    "syncer.sources": ["kubernetes", "syncer.kube", "syncer.apply"],
    "syncer.diff": ["kubernetes", "syncer.kube", "syncer.apply", "git", "syncer.sources"],
    "syncer.model": ["kubernetes", "git"],
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_lower_layers(package: str) -> None:
    code = f"import json, sys, {package}; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", code], text=True)))
    offending = [m for m in loaded for f in FORBIDDEN[package] if m == f or m.startswith(f + ".")]
    assert offending == [], f"{package} imports {sorted(offending)}"
