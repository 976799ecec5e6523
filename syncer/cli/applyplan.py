"""`syncer apply PLAN`: execute exactly the plan `syncer plan` wrote and someone reviewed.

It renders the recorded revision again with the recorded options, and syncs it through
`syncer sync`'s own path (lock, plan again under the lock, execute, record). Before its
first write it compares the plan made now with the reviewed one (`planfile.moved_objects`)
and refuses, exit 3, naming what moved, when any object's action, changed fields or body, or
the prune set differs; it also refuses a plan of another cluster, an expired one, and one
whose digest (or, with --plan-key-file, signature) does not match. Refused, nothing is written.

A plan applied once is refused the second time: its objects are no longer `configured` but
`unchanged`, which is a different plan. A plan with no changes applies (writing nothing) as
often as the cluster still matches it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import click

from syncer.apply.planfile import Context, age_problem, integrity_problems, moved_since
from syncer.apply.planned import Plan
from syncer.apply.sync import PlanRefused
from syncer.cli import cli
from syncer.cli.appselect import command_target, given
from syncer.cli.common import Duration, cluster_options, output_option, with_prune_options
from syncer.cli.options import source_options
from syncer.cli.plan import RECORDED_SOURCE, cluster_identity, recorded_prune_options, render_target
from syncer.cli.planoutput import read_key_file, read_plan_file
from syncer.cli.sync import run_sync

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def refused(path: str, reasons: list[str]) -> PlanRefused:
    return PlanRefused(f"plan {path}: refused, nothing was written: " + "; ".join(reasons))


@cli.command("apply")
@click.argument("plan_file", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
@source_options
@cluster_options
@output_option
@click.option("--plan-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Check the plan's signature with this key (the one `syncer plan --plan-key-file` signed it with).")
@click.option("--max-age", type=Duration(minimum=1), default="24h", show_default=True,
              help="Refuse a plan made longer ago than this.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Requests in flight at once.")
@click.option("--qps", type=click.FloatRange(min=0), default=1000, show_default=True,
              help="Requests per second at most (0: no limit).")
@click.option("--wait", is_flag=True, help="Wait until the applied objects are healthy.")
@click.option("--timeout", type=Duration(minimum=1), default="5m", show_default=True,
              help="How long to wait for health (--wait) and for CRDs to be Established.")
@click.option("--lock-timeout", type=Duration(), default="2m", show_default=True,
              help="How long to wait while another sync of the same app runs.")
@click.option("--lock-duration", type=Duration(minimum=2), default="30s", show_default=True,
              help="How long the app's lock lasts without renewal.")
@click.option("--show-unchanged", "verbose", is_flag=True, help="List unchanged objects too.")
def apply_command(
    *, plan_file: str, kubeconfig: str | None, context: str | None, output: str, plan_key_file: str | None,
    max_age: float, concurrency: int, qps: float, wait: bool, timeout: float, lock_timeout: float,
    lock_duration: float, verbose: bool, **flags: Any,
) -> None:
    """Apply a plan that `syncer plan -o json` wrote, exactly: refused (exit 3, nothing written)
    when the cluster moved since in any planned object or the prune set, when it is another
    cluster, or when the plan is older than --max-age. Give the credentials the source needs
    (--ssh-key, --token-file, ...); the plan records the rest."""
    recorded_flags = [f"--{name.replace('_', '-')}" for name in RECORDED_SOURCE if given(name)]
    if recorded_flags:
        raise click.UsageError(f"the plan records the source and its options; drop {', '.join(recorded_flags)}")
    key = read_key_file(plan_key_file)
    document = read_plan_file(plan_file)
    problems = integrity_problems(document, key=key)
    if problems:
        raise refused(plan_file, problems)
    too_old = age_problem(document, now=datetime.now(timezone.utc), max_age=max_age)
    if too_old:
        raise refused(plan_file, [too_old])
    cluster = cluster_identity(kubeconfig=kubeconfig, context=context)
    if cluster.uid != document["cluster"]["uid"]:
        raise refused(plan_file, [f"it was made for the cluster whose kube-system namespace has uid "
                                  f"{document['cluster']['uid']}; this one's is {cluster.uid}"])

    recorded = document["source"]
    source = {**flags, **{key: recorded.get(key) for key in RECORDED_SOURCE}}
    if _SHA.fullmatch(str(document["revision"])):
        source["revision"] = document["revision"]
    rendering: list[str] = []
    with command_target(source, app=recorded.get("name"), app_object=recorded.get("appObject"),
                        field_manager=recorded["fieldManager"], ignore_file=recorded.get("ignoreDifferences"),
                        kubeconfig=kubeconfig, context=context) as target:
        revision, manifests = render_target(target, kubeconfig=kubeconfig, context=context, rendering=rendering)
    if revision != document["revision"]:
        raise refused(plan_file, [f"it plans revision {document['revision']}, and the source now gives {revision}"])
    facts = Context(source=recorded, cluster_uid=cluster.uid, server_version=cluster.version,
                    salt=document["salt"], created=document["created"])

    def accept(plan: Plan) -> None:
        moved = moved_since(document, plan, manifests=manifests, context=facts)
        if moved:
            raise refused(plan_file, ["the cluster or the source moved since the plan was made", *moved])

    base = with_prune_options(target.options, recorded_prune_options(recorded))
    options = replace(base, concurrency=concurrency, prune=base.prune and bool(recorded["prune"]), dry_run=False,
                      wait=wait or base.wait, timeout=target.flag_or_app("timeout", timeout, base.timeout),
                      lock_timeout=lock_timeout, lock_duration=int(lock_duration), diff_text=False)
    run_sync(manifests, options=options, revision=revision, kubeconfig=kubeconfig, context=context, qps=qps,
             impersonate=target.impersonate, output=output, namespace_from="", verbose=verbose, rendering=rendering,
             accept=accept)
