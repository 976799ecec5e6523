"""Log output of the daemon: plain text lines, or JSON lines for log collectors.

Sync results are logged with their data in `extra` (app, revision, summary, ...); the JSON
formatter puts those fields into the object, so a collector can filter on `app` without
parsing the message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from syncer import SCHEMA_VERSION

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("apscheduler", "urllib3", "kubernetes", "git")
"""Chatty below WARNING (APScheduler logs every job run at INFO)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: schemaVersion and kind, time, level, logger, message, the
    record's extra fields, and the traceback as `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "schemaVersion": SCHEMA_VERSION,
            "kind": "LogRecord",
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(*, json_lines: bool, verbose: int) -> None:
    """INFO by default (one line per sync), DEBUG with -v; on stderr, replacing any handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    # APScheduler warns when an interval fires while the app's previous tick still runs; that
    # is the intended behaviour (max_instances=1), not something for operators to act on.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
