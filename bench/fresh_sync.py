"""`python -m bench.fresh_sync`: client CPU per request of a fresh `syncer sync`, for one or
more checkouts of syncer side by side, on one local control plane.

    python -m bench.fresh_sync --objects 1000 --repeat 5 --variant before=/tmp/syncer-before --variant after=.
    python -m bench.fresh_sync --objects 1000 --repeat 1 --variant after=. --profile bench/out/fresh

Each round syncs a new copy of the generated app (`bench/generate.py`, fresh namespaces) with
each variant in turn, so the variants alternate under the same machine load; the median of
the rounds is reported. A variant is a directory whose `syncer` package is run
(`PYTHONPATH=DIR python -m syncer`). CPU is the process's own (`wait4`, start-up included),
requests are counted from the API server's audit log, as in `bench.run`. With `--profile`
one more fresh sync of each variant runs under py-spy (`--gil`), and its summary is printed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from bench.audit import SYNCER_AGENT
from bench.measure import Command, Measurement
from bench.profile import find_py_spy, parse_collapsed, py_spy_argv, summary
from bench.run import cluster
from bench.scenarios import App, Bench, Settings, syncer_bookkeeping, syncer_environment


def _variant(text: str) -> tuple[str, Path]:
    label, _, root = text.partition("=")
    if not label or not root or not (Path(root) / "syncer" / "__init__.py").exists():
        raise click.BadParameter(f"{text!r}: expected LABEL=DIR, DIR holding the syncer package")
    return label, Path(root).resolve()


_BOOTSTRAP = (
    "import atexit, json, os, resource, runpy, sys\n"
    "del sys.path[0]\n"
    "def report():\n"
    "    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "    with open(os.environ['FRESH_SYNC_RUSAGE'], 'w') as out:\n"
    "        json.dump({'user': own.ru_utime, 'system': own.ru_stime,\n"
    "                   'children': children.ru_utime + children.ru_stime}, out)\n"
    "if 'FRESH_SYNC_RUSAGE' in os.environ:\n"
    "    atexit.register(report)\n"
    "sys.argv[0] = 'syncer'\n"
    "runpy.run_module('syncer', run_name='__main__', alter_sys=True)\n"
)
"""syncer run as `python -m syncer` does, but from the variant's directory (PYTHONPATH), not
from the current one, which `-m` and `-c` put first on the path; writing its own user and
system CPU and its children's (git) to the file `FRESH_SYNC_RUSAGE` names, if any, as it exits."""


def _command(bench: Bench, app: App, *, label: str, root: Path, rusage: Path | None = None) -> Command:
    return Command(
        tool=label, scenario="fresh", objects=app.count,
        argv=[sys.executable, "-c", _BOOTSTRAP, *bench.syncer_args("sync", app)],
        user_agent=SYNCER_AGENT, bookkeeping=syncer_bookkeeping(app.home),
        env={**syncer_environment(), "PYTHONPATH": str(root),
             **({"FRESH_SYNC_RUSAGE": str(rusage)} if rusage is not None else {})},
    )


def _row(measurement: Measurement, rusage: Path) -> dict[str, Any]:
    split = json.loads(rusage.read_text())
    return {
        "cpu_seconds": round(measurement.cpu, 3),
        "user_seconds": round(split["user"], 3),
        "system_seconds": round(split["system"], 3),
        "children_seconds": round(split["children"], 3),
        "requests": measurement.requests.total,
        "cpu_ms_per_request": round(measurement.cpu_ms_per_request or 0.0, 3),
        "wall_seconds": round(measurement.wall, 2),
        "server_cpu_seconds": None if measurement.server_cpu is None else round(measurement.server_cpu, 2),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _profile(bench: Bench, *, label: str, root: Path, py_spy: str, out: Path) -> str:
    """Two more fresh syncs under py-spy: samples of the thread holding the GIL (Python CPU),
    then of every thread running on a CPU (with the GIL or without it: TLS, socket calls)."""
    texts = []
    for threads in ("gil", "running"):
        app = bench.new_app(f"p{threads[0]}{label[:6]}", bench.settings.objects)
        bench.commit(f"profile {label} {threads}")
        bench.settle()
        collapsed = out / f"fresh-{label}-{threads}.collapsed"
        command = _command(bench, app, label=label, root=root)
        argv = py_spy_argv(py_spy, output=collapsed, command=command.argv)
        if threads == "running":
            argv.remove("--gil")
        with (out / f"fresh-{label}-{threads}.err").open("wb") as stderr:
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, **(command.env or {})},
                           check=True)
        texts.append(summary(parse_collapsed(collapsed.read_text().splitlines()),
                             title=f"syncer sync, fresh, {label}, threads: {threads}"))
        (out / f"fresh-{label}-{threads}.txt").write_text(texts[-1])
        bench.settle()
    return "\n".join(texts)


@click.command()
@click.option("--objects", type=click.IntRange(min=40), default=1000, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=5, show_default=True,
              help="Rounds; each round syncs a new app fresh with every variant.")
@click.option("--variant", "variants", multiple=True, required=True, help="LABEL=DIR (repeatable).")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also profile one fresh sync of each variant with py-spy; collapsed stacks and summaries here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(objects: int, repeat: int, variants: tuple[str, ...], profile_dir: Path | None,
         json_path: Path | None) -> None:
    """Client CPU per request of a fresh `syncer sync`, variants alternating."""
    console = Console(stderr=True)
    chosen = [_variant(text) for text in variants]
    py_spy = find_py_spy() or shutil.which("py-spy") if profile_dir else None
    if profile_dir and py_spy is None:
        raise click.ClickException("--profile needs py-spy on PATH or beside this Python")
    workdir = Path(tempfile.mkdtemp(prefix="syncer-fresh-"))
    rows: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in chosen}
    profiles: dict[str, str] = {}
    try:
        with cluster(kubeconfig=None, audit_log=None, console=console) as target:
            bench = Bench(settings=Settings(objects=objects, kpt=None), kubeconfig=target.kubeconfig,
                          server=target.server, workdir=workdir, logs=workdir / "logs", console=console,
                          run_id=secrets.token_hex(2))
            for _, root in chosen:
                subprocess.run([sys.executable, "-c", _BOOTSTRAP, "--version"], capture_output=True, check=False,
                               env={**syncer_environment(), "PYTHONPATH": str(root)})
            for round_index in range(repeat):
                for label, root in chosen:
                    app = bench.new_app(f"r{round_index}{label[:6]}", objects)
                    bench.commit(f"round {round_index} {label}")
                    bench.settle()
                    rusage = workdir / "rusage.json"
                    row = _row(bench.measure(_command(bench, app, label=label, root=root, rusage=rusage)), rusage)
                    rows[label].append(row)
                    console.print(f"  {label}: {row}")
            if profile_dir is not None and py_spy is not None:
                profile_dir.mkdir(parents=True, exist_ok=True)
                for label, root in chosen:
                    profiles[label] = _profile(bench, label=label, root=root, py_spy=py_spy, out=profile_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"| variant | CPU s (runs) | requests | ms/request (runs) | median ms/request | server CPU s, median |")
    print("|---|---|---:|---|---:|---:|")
    for label, runs in rows.items():
        per_request = [run["cpu_ms_per_request"] for run in runs]
        servers = [run["server_cpu_seconds"] for run in runs if run["server_cpu_seconds"] is not None]
        print(f"| {label} | {', '.join(str(run['cpu_seconds']) for run in runs)} | {runs[0]['requests']} | "
              f"{', '.join(f'{value:.2f}' for value in per_request)} | **{statistics.median(per_request):.2f}** | "
              f"{statistics.median(servers) if servers else '-'} |")
    for text in profiles.values():
        print("\n" + text)
    if json_path is not None:
        json_path.write_text(json.dumps({"objects": objects, "runs": rows, "profiles": profiles}, indent=2) + "\n")


if __name__ == "__main__":
    main()
