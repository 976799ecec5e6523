"""Which apps this replica syncs now: the one question the daemon asks before every tick.

Three answers implement it: `SoleOwner` (one replica, every app), `LeaderElector` (the
leader owns every app, a standby none; `syncer.daemon.leader`) and `ShardMember` (each live
replica owns its share by rendezvous hashing; `syncer.daemon.shard`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol


class Ownership(Protocol):
    def owns(self, app: str) -> bool:
        """Whether a tick of `app` may start here now; asked at the start of every tick."""
        ...

    def describe(self, apps: Collection[str]) -> str:
        """This replica's role for /readyz (`apps`: the apps configured)."""
        ...

    def start(self) -> None: ...

    def stop(self, *, release: bool = True) -> None:
        """Stop; `release` hands the apps over at once instead of after the lease expires."""
        ...


class SoleOwner:
    """No election: this replica syncs every app."""

    def owns(self, app: str) -> bool:
        return True

    def describe(self, apps: Collection[str]) -> str:
        return "leader (leader election off)"

    def start(self) -> None:
        pass

    def stop(self, *, release: bool = True) -> None:
        pass
