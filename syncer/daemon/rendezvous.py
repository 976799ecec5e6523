"""Which replica owns which app: rendezvous (highest random weight) hashing.

Every replica computes the same answer from the same member list, with no coordination:
each (member, app) pair gets a pseudo-random score and the member with the highest score
owns the app. Rendezvous hashing rather than a ring with virtual nodes because it needs no
tuning (a ring needs ~100 virtual nodes per member to spread evenly) and gives the two
properties sharding relies on by construction:

* removing a member moves only the apps it owned (every other app keeps its highest score);
  adding one moves to it only the apps it now scores highest on, about 1/N of them;
* the spread is even: each member's scores are independent, so each owns about 1/N.

The score is a BLAKE2b of the member's identity and the app's name (NUL between), stable
across processes, Python versions and machines, unlike `hash()`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping


def score(member: str, app: str) -> int:
    """The weight of `member` for `app`; the highest weight owns the app."""
    digest = hashlib.blake2b(member.encode() + b"\0" + app.encode(), digest_size=8, person=b"syncer-shard").digest()
    return int.from_bytes(digest, "big")


def owner(app: str, members: Iterable[str]) -> str | None:
    """The member that owns `app`, or None when there are no members. Ties (astronomically
    unlikely) go to the smaller identity, so every replica still agrees."""
    best: tuple[int, str] | None = None
    for member in members:
        candidate = (score(member, app), member)
        if best is None or candidate[0] > best[0] or (candidate[0] == best[0] and member < best[1]):
            best = candidate
    return None if best is None else best[1]


def assign(apps: Iterable[str], members: Iterable[str]) -> Mapping[str, str | None]:
    """Every app's owner (None for all when there are no members)."""
    roster = sorted(set(members))
    return {app: owner(app, roster) for app in apps}
