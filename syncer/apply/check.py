"""Deciding one desired object: unchanged, created, configured or recreated, and whether the
server accepts it. Runs in the plan's worker pool (and the executor's, for objects that had
to wait for their namespace or CRD): it returns its decision, a `Check`, or the server's
objection, and changes nothing it was given.

An object is proven unchanged locally when it can be (most objects of a resync); otherwise
the server is asked with a server-side apply dry-run (`dryRun=All`, the same field manager
as the real apply), which both validates the object and predicts the result. Its objection is
reported as the server gave it, field by field where its Status has `causes` (a schema error,
a CRD's `x-kubernetes-validations` rule), else its message, with the manifest's file:line.
"""

from __future__ import annotations

from typing import Any

from syncer.apply.options import SyncOptions
from syncer.apply.ownership import opted_in
from syncer.apply.planned import Check, Desired
from syncer.apply.prepare import as_stored
from syncer.diff import ObjectDiff, apply_ignores, compare, owned_fields, proven_unchanged, removed_paths, rules_for
from syncer.errors import ClusterError, Conflict, Invalid
from syncer.kube import Kube
from syncer.model import Action, Object

RECREATE_ANNOTATION = "syncer.dev/recreate"


def dry_run_apply(kube: Kube, desired: Desired, *, options: SyncOptions,
                  decode: bool = True) -> tuple[Object | None, str | None]:
    """Server-side apply dry-run: the predicted object (None with `decode=False`: the server's
    answer is not decoded), and the fields it takes over from other managers (forced), or a
    Conflict with --no-force-conflicts."""
    try:
        return desired.write(kube, field_manager=options.field_manager, force=False, dry_run=True,
                             decode=decode), None
    except Conflict as conflict:
        if not options.force_conflicts:
            raise Conflict(str(desired.ref), f"{conflict.message}; syncer leaves fields owned by other "
                           "managers alone with --no-force-conflicts (drop the flag to take them over)",
                           status=409) from conflict
        return desired.write(kube, field_manager=options.field_manager, force=True, dry_run=True,
                             decode=decode), conflict.message


def _explain_immutable(error: Invalid, desired: Desired) -> ClusterError:
    fields = error.immutable_fields()
    if not fields:
        return error.about_manifest(desired.origin)
    return Invalid(
        error.subject,
        f"{error.message} — immutable field(s) {', '.join(fields)} change; to delete and re-create "
        f'the object, annotate it with {RECREATE_ANNOTATION}: "true" ({desired.origin})',
        status=error.status, reason=error.reason, details=error.details,
    )


def project(live: Any, onto: Any) -> Any:
    """The parts of `live` at the paths `onto` sets (into maps, and into lists item by item
    when both have the same length; anything else whole): what a re-created object is
    compared with, so that server defaults and status, which a create sets again, do not
    show as removed."""
    if isinstance(onto, dict) and isinstance(live, dict):
        return {key: project(live[key], value) for key, value in onto.items() if key in live}
    if isinstance(onto, list) and isinstance(live, list) and len(onto) == len(live):
        return [project(item, wanted) for item, wanted in zip(live, onto)]
    return live


def check_object(kube: Kube, desired: Desired, *, options: SyncOptions) -> Check | ClusterError:
    """What the sync does to `desired`, or the server's objection to it."""
    rules = rules_for(desired.ref, desired.body, options.ignore)
    live = desired.live
    if live is not None and proven_unchanged(
        apply_ignores(as_stored(desired.body, live), rules=rules, live=live),
        apply_ignores(live, rules=rules, live=live),
        manager=options.field_manager,
    ):
        # What compare(live, predicted=live) would return, without normalising and masking
        # two copies of the live object: on a resync nearly every object takes this path.
        return Check(Action.UNCHANGED, ObjectDiff(desired.ref, desired.api_version, Action.UNCHANGED, ""))
    try:
        # A new object is compared as its manifest (server defaults would pollute its diff):
        # only the server's objection matters, its prediction is not decoded.
        predicted, conflicts = dry_run_apply(kube, desired, options=options, decode=live is not None)
    except Invalid as error:
        if live is not None and error.immutable_fields() and opted_in(desired.body, RECREATE_ANNOTATION):
            diff = compare(ref=desired.ref, api_version=desired.api_version, live=project(live, desired.body),
                           predicted=desired.body, ignore=rules, text=options.diff_text,
                           manager=options.field_manager, desired=desired.body)
            return Check(Action.RECREATED, ObjectDiff(desired.ref, desired.api_version, Action.RECREATED,
                                                      diff.diff, fields=diff.fields))
        return _explain_immutable(error, desired)
    except ClusterError as error:
        return error.about_manifest(desired.origin)
    if live is None:
        diff = compare(ref=desired.ref, api_version=desired.api_version, live=None,
                       predicted=desired.body, ignore=rules, text=options.diff_text)
    else:
        assert predicted is not None
        owned = owned_fields(live, options.field_manager)
        removed = removed_paths(desired.body, owned) if owned is not None else []
        diff = compare(ref=desired.ref, api_version=desired.api_version, live=live,
                       predicted=predicted, ignore=rules, removed=removed, text=options.diff_text,
                       manager=options.field_manager, desired=desired.body)
    return Check(diff.action, diff, conflicts)


def assumed_created(desired: Desired, *, options: SyncOptions) -> Check:
    """The decision for an object the server cannot check before the sync writes (its
    namespace or CRD is created by this sync): it is new, since its namespace or kind is.
    The server checks it as soon as it can (the `CheckBlocked` task)."""
    diff = compare(ref=desired.ref, api_version=desired.api_version, live=None, predicted=desired.body,
                   ignore=rules_for(desired.ref, desired.body, options.ignore), text=options.diff_text)
    return Check(Action.CREATED, diff)
