"""How `syncer run` runs: the options of the daemon's runtime, whichever source its apps come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from syncer.apply.lock import default_identity
from syncer.apply.membercache import RELIST_INTERVAL
from syncer.daemon.leader import ElectionOptions
from syncer.daemon.reconciler import DEFAULT_LOCK_TIMEOUT
from syncer.sources import RenderLimits


@dataclass(frozen=True)
class DaemonOptions:
    listen: tuple[str, int] = ("0.0.0.0", 8080)
    cache_dir: Path | None = None
    webhook_secret: bytes | None = None
    """The shared webhook secret; None switches POST /webhook off (404)."""
    election: ElectionOptions | None = None
    """None: no leader election, this replica always syncs."""
    shard: ElectionOptions | None = None
    """Share the apps with the other replicas through membership Leases in this namespace,
    with these timings (`name` is not used); exclusive with `election`."""
    identity: str = field(default_factory=default_identity)
    advertise_url: str | None = None
    """This replica's HTTP address as other replicas reach it (for passing on webhooks)."""
    field_manager: str = "syncer"
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    max_workers: int = 16
    """Apps synced at once; more apps than this wait for a free worker."""
    watch: bool = True
    """Keep the apps' objects in a watch cache (`syncer.apply.membercache`): a change to one
    starts a sync of its app at once, and a resync that changes nothing reads nothing from
    the API server. False: every tick LISTs what its plan needs."""
    relist_interval: float = RELIST_INTERVAL
    """The watch cache's safety net: every kind it watches is listed again this often."""
    render_limits: RenderLimits = RenderLimits()
    """The bounds of each app's render (`--max-render-bytes`, `--max-objects`)."""
    render_workers: int = 2
    """Renders run in this many worker processes (`syncer.sources.renderpool`), so that their
    memory goes back to the system; 0 renders in the daemon's own process."""
