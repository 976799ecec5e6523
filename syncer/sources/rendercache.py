"""A cache of rendered manifests per commit: re-reading a thousand YAML files costs more than
everything else a no-op resync does, and a commit's files never change.

Only Git snapshots have one (a plain directory can change at any time), and only renders that
did not run Kustomize are cached (its output depends on the binary, not just on the commit).
The key covers everything else the result depends on: the path, the default namespace, the
limits, syncer's own version and the version of the YAML reader's rules. An unreadable entry is ignored and rendered again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from syncer import __version__
from syncer.model import Manifest, Origin
from syncer.sources.snapshot import Snapshot
from syncer.sources.yamldialect import READER_VERSION
from syncer.sources.limits import RenderLimits

log = logging.getLogger(__name__)


def cache_file(snapshot: Snapshot, *, path: str, namespace: str, limits: RenderLimits) -> Path | None:
    if snapshot.render_cache is None:
        return None
    key = json.dumps([__version__, READER_VERSION, path, namespace, asdict(limits)], sort_keys=True)
    return snapshot.render_cache / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def load(file: Path) -> list[Manifest] | None:
    try:
        entries = json.loads(file.read_bytes())
        return [
            Manifest(obj=e["obj"], origin=Origin(e["file"], e["document"], e["line"]),
                     namespace_defaulted=e["defaulted"])
            for e in entries
        ]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("%s: ignoring an unreadable render cache entry: %s", file, error)
        return None


def store(file: Path, manifests: list[Manifest]) -> None:
    entries = [
        {"obj": m.obj, "file": m.origin.file, "document": m.origin.document, "line": m.origin.line,
         "defaulted": m.namespace_defaulted}
        for m in manifests
    ]
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".render-", dir=file.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(entries, out, separators=(",", ":"))
        os.replace(temporary, file)
    except OSError as error:  # a cache that cannot be written only costs time
        log.warning("%s: cannot write the render cache: %s", file, error)
