"""`python -m conformance [--report docs/conformance.md] [--set NAME ...] [--no-kubectl]`:
run the real-world sets and write the report (see conformance/report.py)."""

from __future__ import annotations

from pathlib import Path

import click

from conformance.report import render_report
from conformance.runner import corpus_root, run_all
from conformance.sets import groups

ROOT = Path(__file__).resolve().parent.parent


@click.command()
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=ROOT / "docs/conformance.md",
              show_default=True)
@click.option("--set", "names", multiple=True, help="Only these sets (by name); repeatable.")
@click.option("--no-kubectl", is_flag=True, help="Skip the kubectl comparison.")
def main(report: Path, names: tuple[str, ...], no_kubectl: bool) -> None:
    selected = [[s for s in group if not names or s.name in names] for group in groups()]
    results = run_all([g for g in selected if g], corpus=corpus_root(ROOT), kubectl=not no_kubectl)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_report(results))
    failing = [r.set.name for r in results if r.problems and not r.set.engine_issue]
    click.echo(f"wrote {report}; {len(results) - len(failing)} of {len(results)} sets as expected", err=True)
    raise SystemExit(1 if failing else 0)


main()
