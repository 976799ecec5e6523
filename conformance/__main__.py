"""`python -m conformance [--kubernetes-version 1.37 ...] [--group N ...] [--set NAME ...]`:
run the real-world sets on each version given and write the report (conformance/report.py).

Each version's results are kept beside the report as JSON (`conformance-1.37.json`); a run of
some sets or groups replaces those in the file, so the corpus can be run in chunks and one
version again alone. The report is rendered from every version's file (`--render-only`: from
the files alone, without running anything).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from conformance.report import newest_first, render_report
from conformance.results import VersionResults, load, results_path, save
from conformance.runner import corpus_root, run_version
from conformance.sets import groups, minor
from syncer.devcluster.assets import VERSION_ENV, resolve_version

ROOT = Path(__file__).resolve().parent.parent


@click.command()
@click.option("--kubernetes-version", "versions", multiple=True,
              help=f"Run on this version (1.37, 1.20); repeatable. Default: ${VERSION_ENV}, else the newest.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=ROOT / "docs/conformance.md",
              show_default=True)
@click.option("--set", "names", multiple=True, help="Only these sets (by name); repeatable.")
@click.option("--group", "group_numbers", multiple=True, type=int, help="Only these groups; repeatable.")
@click.option("--no-others", is_flag=True, help="Run syncer alone, not kubectl and kpt beside it.")
@click.option("--render-only", is_flag=True, help="Write the report from the kept results; run nothing.")
def main(versions: tuple[str, ...], report: Path, names: tuple[str, ...], group_numbers: tuple[int, ...],
         no_others: bool, render_only: bool) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    failing: list[str] = []
    if not render_only:
        selected = [[s for s in group if (not names or s.name in names) and (not group_numbers or s.group in group_numbers)]
                    for group in groups()]
        for requested in versions or (None,):
            full = resolve_version(requested)
            results = run_version([g for g in selected if g], version=full, corpus=corpus_root(ROOT),
                                  others=not no_others, progress=lambda text: click.echo(text, err=True))
            path = results_path(report, ".".join(str(p) for p in minor(results.kubernetes)))
            partial = bool(names or group_numbers)
            kept = load(path) if partial and path.exists() else VersionResults(kubernetes=results.kubernetes)
            save(kept.merge(results), path)
            failing += [f"{r.name} on {results.kubernetes}" for r in results.sets.values()
                        if r.problems and not r.engine_issue]
            click.echo(f"{path}: {len(results.sets)} set(s) run in {sum(results.group_seconds.values()):.0f}s", err=True)
    files = sorted(report.parent.glob(f"{report.stem}-*.json"))
    all_results = newest_first([load(path) for path in files])
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_report(all_results, files=[path.name for path in files]))
    click.echo(f"wrote {report}" + (f"; not as expected: {', '.join(failing)}" if failing else ""), err=True)
    raise SystemExit(1 if failing else 0)


main()
