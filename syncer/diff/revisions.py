"""The objects of two renders, paired by identity and compared: the offline revision diff.

No cluster takes part, so there is no dry-run prediction and no live object: the object at the
first revision stands where `compare` takes the live one and the object at the second where it
takes the prediction. Normalising, Secret masking and the diff text are `compare`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncer.diff.compare import ObjectDiff, compare
from syncer.model import Manifest, ObjectRef


def compare_renders(
    before: Sequence[Manifest], after: Sequence[Manifest], *, sides: tuple[str, str],
) -> list[ObjectDiff]:
    """One diff per object of either render: the objects of `after` in its order (created,
    configured or unchanged), then those only `before` has, in its order (deleted). `sides`
    names the two revisions in the diff headers. An object's apiVersion may differ between the
    two (its identity has no version): the change shows in the diff."""
    earlier: dict[ObjectRef, Manifest] = {m.ref: m for m in before}
    later = {m.ref for m in after}
    diffs = [
        compare(ref=m.ref, api_version=m.api_version, predicted=m.obj, sides=sides,
                live=earlier[m.ref].obj if m.ref in earlier else None)
        for m in after
    ]
    diffs += [compare(ref=m.ref, api_version=m.api_version, live=m.obj, predicted=None, sides=sides)
              for m in before if m.ref not in later]
    return diffs
