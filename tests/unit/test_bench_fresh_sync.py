"""bench.fresh_sync's pure parts: which syncer a variant runs, and what it reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bench.fresh_sync import _BOOTSTRAP, _variant

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_variant_runs_its_own_syncer_not_the_one_in_the_current_directory(tmp_path: Path) -> None:
    package = tmp_path / "variant" / "syncer"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import sys\nprint('variant', sys.argv[1:])\n")
    rusage = tmp_path / "rusage.json"
    done = subprocess.run([sys.executable, "-c", _BOOTSTRAP, "sync", "--dry-run"], cwd=REPO_ROOT,
                          env={"PYTHONPATH": str(tmp_path / "variant"), "FRESH_SYNC_RUSAGE": str(rusage)},
                          capture_output=True, text=True, check=True)
    assert done.stdout == "variant ['sync', '--dry-run']\n"
    assert set(json.loads(rusage.read_text())) == {"user", "system", "children"}


def test_a_variant_names_a_directory_holding_syncer(tmp_path: Path) -> None:
    assert _variant(f"after={REPO_ROOT}") == ("after", REPO_ROOT)
    with pytest.raises(click.BadParameter, match="LABEL=DIR"):
        _variant(f"after={tmp_path}")
    with pytest.raises(click.BadParameter):
        _variant(str(REPO_ROOT))
