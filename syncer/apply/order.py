"""Dependency order: which objects are applied in which step (pure: refs in, steps out).

The kind order is Flux's (fluxcd/pkg `ssa/sort.go`, itself kustomize's legacy order):
CustomResourceDefinition and Namespace first, then cluster policy, RBAC, ServiceAccounts,
ConfigMaps and Secrets, Services, workloads; kinds it does not name (custom resources,
Ingresses, ...) after those, and admission webhooks last, so a webhook never blocks the
objects of its own app.

Steps are sequential; the objects of one step are applied concurrently. An object's step is
decided by, in this priority:
1. its sync-wave (`syncer.dev/sync-wave: "<int>"`, default 0): waves run strictly in order;
2. within a wave, the kind order above, one step per kind rank present;
3. explicit dependencies: `config.kubernetes.io/depends-on` (the kpt/cli-utils format
   `<group>/namespaces/<namespace>/<kind>/<name>` or `<group>/<kind>/<name>`, comma-separated),
   plus implicit ones: an object in a namespace this sync creates depends on that Namespace, a
   custom resource on its CustomResourceDefinition when both are in the sync.
   An object whose dependency lands in a later step moves to that step and is placed after it.
A dependency cycle is an error naming every object in it. Deletion uses the reverse order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from syncer.errors import Problem, RenderError
from syncer.model import Manifest, ObjectRef

SYNC_WAVE_ANNOTATION = "syncer.dev/sync-wave"
DEPENDS_ON_ANNOTATION = "config.kubernetes.io/depends-on"

KIND_ORDER_FIRST = (
    "CustomResourceDefinition",
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "PriorityClass",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
KIND_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")

_KIND_RANK = {kind: index - len(KIND_ORDER_FIRST) for index, kind in enumerate(KIND_ORDER_FIRST)}
_KIND_RANK.update({kind: 1 + index for index, kind in enumerate(KIND_ORDER_LAST)})


def kind_rank(kind: str) -> int:
    """Negative for kinds applied early, 0 for kinds Flux's order does not name, positive last."""
    return _KIND_RANK.get(kind, 0)


@dataclass(frozen=True)
class OrderInfo:
    """What ordering needs to know of one object."""

    ref: ObjectRef
    wave: int = 0
    depends_on: tuple[ObjectRef, ...] = ()


def parse_sync_wave(value: str | None, *, where: str) -> int:
    if value is None or value == "":
        return 0
    try:
        return int(value.strip())
    except ValueError:
        raise RenderError(
            [Problem(where, f'annotation {SYNC_WAVE_ANNOTATION}: "{value}" is not an integer')]
        ) from None


def parse_depends_on(value: str | None, *, where: str) -> tuple[ObjectRef, ...]:
    """Parse `config.kubernetes.io/depends-on` (kpt / cli-utils object references)."""
    if not value:
        return ()
    refs = []
    for raw in value.split(","):
        parts = raw.strip().split("/")
        if len(parts) == 5 and parts[1] == "namespaces":
            group, _, namespace, kind, name = parts
            refs.append(ObjectRef(group=group, kind=kind, namespace=namespace, name=name))
        elif len(parts) == 3:
            group, kind, name = parts
            refs.append(ObjectRef(group=group, kind=kind, namespace=None, name=name))
        else:
            raise RenderError([Problem(
                where,
                f'annotation {DEPENDS_ON_ANNOTATION}: "{raw.strip()}" is not of the form '
                "<group>/namespaces/<namespace>/<kind>/<name> or <group>/<kind>/<name> "
                "(the group is empty for core kinds, e.g. /namespaces/shop/ConfigMap/settings)",
            )])
    return tuple(refs)


def order_info(manifest: Manifest) -> OrderInfo:
    """Ordering facts of a manifest, from its annotations."""
    where = f"{manifest.ref} ({manifest.origin})"
    annotations = manifest.annotations
    return OrderInfo(
        ref=manifest.ref,
        wave=parse_sync_wave(annotations.get(SYNC_WAVE_ANNOTATION), where=where),
        depends_on=parse_depends_on(annotations.get(DEPENDS_ON_ANNOTATION), where=where),
    )


def implicit_dependencies(
    infos: Sequence[OrderInfo], *, crd_kinds: Mapping[tuple[str, str], ObjectRef]
) -> dict[ObjectRef, set[ObjectRef]]:
    """Namespace and CRD dependencies that need no annotation.

    `crd_kinds` maps (group, kind) of custom resources to the CRD in this sync that defines them.
    """
    present = {info.ref for info in infos}
    implicit: dict[ObjectRef, set[ObjectRef]] = {}
    for info in infos:
        deps: set[ObjectRef] = set()
        if info.ref.namespace:
            namespace = ObjectRef(group="", kind="Namespace", namespace=None, name=info.ref.namespace)
            if namespace in present:
                deps.add(namespace)
        crd = crd_kinds.get((info.ref.group, info.ref.kind))
        if crd is not None and crd in present and crd != info.ref:
            deps.add(crd)
        if deps:
            implicit[info.ref] = deps
    return implicit


def _find_cycle(graph: Mapping[ObjectRef, Iterable[ObjectRef]]) -> list[ObjectRef] | None:
    """One dependency cycle, as the list of objects in it, or None."""
    state: dict[ObjectRef, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[ObjectRef, list[ObjectRef]]] = [(start, sorted(graph.get(start, ())))]
        path = [start]
        state[start] = 1
        while stack:
            node, pending = stack[-1]
            if not pending:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = pending.pop()
            if state.get(nxt) == 1:
                return path[path.index(nxt):]
            if not state.get(nxt) and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph.get(nxt, ()))))
    return None


def plan_steps(
    infos: Sequence[OrderInfo],
    *,
    crd_kinds: Mapping[tuple[str, str], ObjectRef] | None = None,
) -> list[list[ObjectRef]]:
    """Group objects into sequential steps; the objects of one step are independent.

    Dependencies on objects outside `infos` are ignored here (they already exist or are
    checked by the server). Raises RenderError for a dependency cycle.
    """
    by_ref = {info.ref: info for info in infos}
    deps: dict[ObjectRef, set[ObjectRef]] = {
        info.ref: {d for d in info.depends_on if d in by_ref and d != info.ref} for info in infos
    }
    for ref, extra in implicit_dependencies(infos, crd_kinds=crd_kinds or {}).items():
        deps[ref] |= extra
    cycle = _find_cycle(deps)
    if cycle:
        names = " -> ".join(str(ref) for ref in [*cycle, cycle[0]])
        raise RenderError([Problem(str(cycle[0]), f"dependency cycle: {names}")])

    # The (wave, kind rank) key an object gets, moved later when a dependency is later.
    key: dict[ObjectRef, tuple[int, int]] = {}

    def effective_key(ref: ObjectRef) -> tuple[int, int]:
        if ref not in key:
            info = by_ref[ref]
            own = (info.wave, kind_rank(ref.kind))
            key[ref] = max([own, *(effective_key(d) for d in deps[ref])])
        return key[ref]

    # Within one key, dependencies between its members become sub-levels.
    level: dict[ObjectRef, int] = {}

    def sub_level(ref: ObjectRef) -> int:
        if ref not in level:
            same_key = [d for d in deps[ref] if effective_key(d) == effective_key(ref)]
            level[ref] = 1 + max((sub_level(d) for d in same_key), default=-1)
        return level[ref]

    steps: dict[tuple[int, int, int], list[ObjectRef]] = {}
    for info in infos:
        wave, rank = effective_key(info.ref)
        steps.setdefault((wave, rank, sub_level(info.ref)), []).append(info.ref)
    return [sorted(steps[k], key=_stable) for k in sorted(steps)]


def deletion_steps(refs: Iterable[ObjectRef]) -> list[list[ObjectRef]]:
    """Reverse kind order for pruning: webhooks first, Namespaces and CRDs last."""
    steps = plan_steps([OrderInfo(ref=ref) for ref in refs])
    return list(reversed(steps))


def _stable(ref: ObjectRef) -> tuple[str, str, str, str]:
    return (ref.namespace or "", ref.group, ref.kind, ref.name)
