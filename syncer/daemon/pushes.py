"""POST /webhook: an authenticated Git push triggers the apps it concerns, on their owner.

With leader election a standby passes the push on to the leader; sharded, each replica
triggers the apps it owns and passes the push on, once, to the owners of the others. A push
that was itself passed on (`FORWARDED_HEADER`) goes no further.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from syncer.daemon.leader import LeaderElector
from syncer.daemon.shard import ShardMember
from syncer.daemon.source import AppSource
from syncer.daemon.webhook import WebhookRejected, authenticate, event_name, is_push, parse_push

log = logging.getLogger(__name__)

FORWARDED_HEADER = "x-syncer-forwarded"
_FORWARD_HEADERS = ("content-type", "x-hub-signature-256", "x-gitea-signature", "x-gogs-signature",
                    "x-gitlab-token", "x-github-event", "x-gitea-event", "x-gogs-event", "x-gitlab-event")


class PushHandler:
    def __init__(
        self, *, source: AppSource, secret: bytes | None, identity: str, trigger: Callable[[str], None],
        elector: LeaderElector | None = None, shard: ShardMember | None = None,
    ) -> None:
        self._source = source
        self._secret = secret
        self._identity = identity
        self._trigger = trigger
        self._elector = elector
        self._shard = shard

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        secret = self._secret
        if secret is None:
            return 404, {"error": "webhooks are off: start syncer run with --webhook-secret-file "
                                  "or SYNCER_WEBHOOK_SECRET"}
        try:
            provider = authenticate(headers, body, secret=secret)
            if not is_push(headers):
                return 200, {"triggered": [], "ignored": f"event {event_name(headers)!r} is not a push"}
            push = parse_push(body)
        except WebhookRejected as rejected:
            log.warning("webhook rejected (%d): %s", rejected.status, rejected)
            return rejected.status, {"error": str(rejected)}
        apps = self._source.apps_for_push(push)
        if self._elector is not None and not self._elector.is_leader:
            return self._forward(headers, body)
        passed_on: list[str] = []
        if self._shard is not None:
            apps, passed_on = self._pass_on_to_owners(headers, body, apps)
        for app in apps:
            reconciler = self._source.reconciler_of(app)
            if reconciler is not None:
                reconciler.expect_news()
            self._trigger(app)
        log.info("webhook from %s: push to %s triggered %s", provider, push.ref or "?",
                 ", ".join(apps) or "no app", extra={"apps": apps, "ref": push.ref})
        return 202, {"triggered": sorted(apps + passed_on)}

    def _pass_on_to_owners(self, headers: dict[str, str], body: bytes, apps: list[str]) -> tuple[list[str], list[str]]:
        """Sharded: the apps to trigger here (those this replica owns), and those that other
        replicas triggered after this one passed the push on to each owner once. An app
        without a known owner now (membership is changing) is triggered anyway by whoever
        takes it over."""
        assert self._shard is not None
        shard = self._shard
        local = [app for app in apps if shard.owns(app)]
        if headers.get(FORWARDED_HEADER):
            return local, []
        triggered: list[str] = []
        for url in sorted({url for app in apps if app not in local and (url := shard.owner_url(app))}):
            status, answer = self._post(url, headers, body, to="the owning replica")
            if status == 202:
                triggered.extend(str(app) for app in answer.get("triggered") or [])
            else:
                log.warning("webhook: cannot pass the push on to %s (%d): %s", url, status, answer.get("error"))
        return local, triggered

    def _forward(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """A standby passes an authenticated push on to the leader, which alone syncs: with
        several replicas behind one Service, about half of all webhooks reach a standby."""
        assert self._elector is not None
        url = self._elector.leader_url
        if headers.get(FORWARDED_HEADER) or not url:
            return 503, {"error": "this replica is a standby and does not know the leader's address; "
                                  "the push is picked up at the next interval"}
        return self._post(url, headers, body, to="the leader")

    def _post(self, url: str, headers: dict[str, str], body: bytes, *, to: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            url.rstrip("/") + "/webhook", data=body, method="POST",
            headers={**{k: v for k, v in headers.items() if k in _FORWARD_HEADERS},
                     FORWARDED_HEADER: self._identity},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - another replica
                return int(response.status), json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read() or b"{}")
            except ValueError:
                return error.code, {"error": f"{to} at {url} answered {error.code}"}
        except (OSError, ValueError) as error:
            return 503, {"error": f"cannot pass the push on to {to} at {url}: {error}"}
