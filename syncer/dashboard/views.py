"""The dashboard's pages as HTML: pure functions from plain data to text.

Everything shown is escaped here, once (`esc`): App specs, statuses, object names and Event
messages are written by tenants. The pages are server-rendered and work without JavaScript;
the script only swaps in the fresh `<main>` the event stream sends. No external assets: the
stylesheet and the script are served by the daemon (`syncer.dashboard.assets`).

What the pages show is what `kubectl get apps` and the App's status hold, the objects of the
last sync this daemon ran, and the App's recent Events. Secrets never reach here with a
value: the status and the change set name objects and actions, never their data.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from syncer.apply.history import HistoryEntry
from syncer.dashboard.compare import entry_key, history_of
from syncer.model import Object

MAX_EVENTS = 20


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def app_path(namespace: str, name: str) -> str:
    return f"/apps/{quote(namespace, safe='')}/{quote(name, safe='')}"


def age(timestamp: str, *, now: datetime) -> str:
    """`2024-05-01T10:00:00Z` -> `5m` (kubectl's ages); `-` when there is none."""
    if not timestamp:
        return "-"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return {}


@dataclass(frozen=True)
class AppRow:
    """One App as `kubectl get apps` shows it, plus whether it is suspended and its last sync."""

    namespace: str
    name: str
    ready: str
    reason: str
    message: str
    revision: str
    health: str
    drift: str
    suspended: bool
    last_sync: str
    """When the last sync's outcome was recorded (RFC 3339), "" when none was."""
    result: str
    held: bool = False
    """A rollback holds the App at `revision` (`status.hold.holding`)."""
    hold_set: bool = False
    """`spec.hold` is set (holding, or ended by a commit but not yet released)."""


def app_row(app: Object) -> AppRow:
    metadata = app.get("metadata") or {}
    status = app.get("status") or {}
    ready = _condition(status, "Ready")
    drift = status.get("drift") or {}
    last = status.get("lastSync") or {}
    return AppRow(
        namespace=str(metadata.get("namespace") or ""), name=str(metadata.get("name") or ""),
        ready=str(ready.get("status") or "Unknown"), reason=str(ready.get("reason") or ""),
        message=str(ready.get("message") or ""), revision=str(status.get("lastAppliedRevision") or "")[:12],
        health=str(status.get("health") or "-"), drift=str(drift.get("count", "-")),
        suspended=bool((app.get("spec") or {}).get("suspend")), last_sync=str(last.get("time") or ""),
        result=str(last.get("result") or ""), held=bool((status.get("hold") or {}).get("holding")),
        hold_set=bool((app.get("spec") or {}).get("hold")),
    )


def badge(value: str) -> str:
    kind = {"True": "ok", "Healthy": "ok", "Succeeded": "ok", "False": "bad", "Degraded": "bad", "Failed": "bad",
            "Missing": "bad"}.get(value, "wait" if value not in ("-", "") else "none")
    return f'<span class="badge {kind}">{esc(value or "-")}</span>'


def apps_main(rows: Sequence[AppRow], *, now: datetime) -> str:
    """The apps list: the columns of `kubectl get apps`, suspended and last sync."""
    if not rows:
        return ('<h1>Apps</h1><p class="empty">No Apps you may see. Create one with '
                '<code>kubectl apply -f app.yaml</code> (README, "Apps").</p>')
    body = "".join(
        f'<tr data-app="{esc(row.namespace)}/{esc(row.name)}">'
        f'<td data-label="Namespace">{esc(row.namespace)}</td>'
        f'<th scope="row" data-label="App"><a href="{esc(app_path(row.namespace, row.name))}">{esc(row.name)}</a></th>'
        f'<td data-label="Ready" title="{esc(row.message)}">{badge(row.ready)}'
        f'{" <small>" + esc(row.reason) + "</small>" if row.reason else ""}</td>'
        f'<td data-label="Revision"><code>{esc(row.revision or "-")}</code>'
        f'{" <small>held (rolled back)</small>" if row.held else ""}</td>'
        f'<td data-label="Health">{badge(row.health)}</td>'
        f'<td data-label="Drift">{esc(row.drift)}</td>'
        f'<td data-label="Suspended">{"yes" if row.suspended else "no"}</td>'
        f'<td data-label="Last sync">{esc(row.result or "never")}'
        f'{" <small>" + esc(age(row.last_sync, now=now)) + " ago</small>" if row.last_sync else ""}</td>'
        "</tr>"
        for row in rows
    )
    return ('<h1>Apps</h1><div class="scroll"><table class="apps"><caption class="sr">Apps, their readiness, '
            'revision, health, drift and last sync</caption><thead><tr><th scope="col">Namespace</th>'
            '<th scope="col">App</th><th scope="col">Ready</th><th scope="col">Revision</th>'
            '<th scope="col">Health</th><th scope="col">Drift</th><th scope="col">Suspended</th>'
            f'<th scope="col">Last sync</th></tr></thead><tbody>{body}</tbody></table></div>')


@dataclass(frozen=True)
class ObjectRow:
    """One object of the App's last sync by this daemon: what the sync did, and its health now."""

    kind: str
    namespace: str
    name: str
    action: str
    health: str
    message: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    """The last sync's diff of an updated object: each field that differed, and why (git,
    drift, foreign; `syncer.diff.explain`). Paths and causes only, never values: a Secret's
    data is never shown."""


@dataclass(frozen=True)
class EventRow:
    type: str
    reason: str
    message: str
    time: str
    count: int


def event_rows(events: Sequence[Object]) -> list[EventRow]:
    """The newest `MAX_EVENTS` Events, newest first (core/v1 fields, events.k8s.io twins as
    fallback)."""
    rows = []
    for event in events:
        series = event.get("series") or {}
        when = str(event.get("lastTimestamp") or series.get("lastObservedTime") or event.get("eventTime")
                   or (event.get("metadata") or {}).get("creationTimestamp") or "")
        rows.append(EventRow(type=str(event.get("type") or "Normal"), reason=str(event.get("reason") or ""),
                             message=str(event.get("message") or event.get("note") or ""), time=when,
                             count=int(event.get("count") or series.get("count") or 1)))
    rows.sort(key=lambda row: row.time, reverse=True)
    return rows[:MAX_EVENTS]


@dataclass(frozen=True)
class Actions:
    """The buttons the page offers: none unless `--ui-actions`, and only those the user may use."""

    csrf: str = ""
    allowed: bool = False


def facts_list(items: Sequence[tuple[str, str]]) -> str:
    return "<dl class=\"facts\">" + "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in items) + "</dl>"


def _actions(app: AppRow, actions: Actions) -> str:
    if not actions.allowed:
        return ""
    base = esc(app_path(app.namespace, app.name))
    csrf = f'<input type="hidden" name="csrf" value="{esc(actions.csrf)}">'
    toggle = "resume" if app.suspended else "suspend"
    buttons = [] if app.suspended else [
        f'<form method="post" action="{base}/reconcile">{csrf}<button type="submit" id="action-reconcile">'
        "Reconcile now</button></form>"]
    buttons.append(f'<form method="post" action="{base}/{toggle}">{csrf}<button type="submit" id="action-{toggle}">'
                   f'{toggle.capitalize()}</button></form>')
    if app.hold_set:
        buttons.append(f'<form method="post" action="{base}/release">{csrf}<button type="submit" id="action-release">'
                       "Release the hold</button></form>")
    return '<section aria-label="Actions" class="actions">' + "".join(buttons) + "</section>"


def app_main(app: Object, *, objects: Sequence[ObjectRow] | None, events: Sequence[EventRow], actions: Actions,
             now: datetime) -> str:
    """One App: its conditions and last sync, the objects of its last sync, its recent Events."""
    row = app_row(app)
    spec = app.get("spec") or {}
    status = app.get("status") or {}
    last = status.get("lastSync") or {}
    drift = status.get("drift") or {}
    source = f"<code>{esc(spec.get('repo', ''))}</code>"
    if spec.get("path"):
        source += f" path <code>{esc(spec['path'])}</code>"
    if spec.get("revision"):
        source += f" at <code>{esc(spec['revision'])}</code>"
    summary = ", ".join(f"{int(n)} {esc(action)}" for action, n in (last.get("summary") or {}).items()
                        if isinstance(n, int)) or "-"
    facts = [
        ("Ready", f'{badge(row.ready)} {esc(row.reason)}<p class="message" id="ready-message">{esc(row.message)}</p>'),
        ("Source", source),
        ("Applied revision", f"<code>{esc(status.get('lastAppliedRevision') or '-')}</code>"),
        ("Attempted revision", f"<code>{esc(status.get('lastAttemptedRevision') or '-')}</code>"),
        ("Health", f'{badge(row.health)}<p class="message">{esc(status.get("healthMessage") or "")}</p>'),
        ("Suspended", "yes" if row.suspended else "no"),
        *([("Rolled back", f'{esc(rolled.get("status"))} {esc(rolled.get("reason") or "")}'
                           f'<p class="message" id="hold-message">{esc(rolled.get("message") or "")}</p>')]
          if (rolled := _condition(status, "RolledBack")) else []),
        ("Last sync", f"{esc(last.get('result') or 'never')}"
                      + (f" {esc(age(row.last_sync, now=now))} ago" if row.last_sync else "")
                      + f"; {summary}"
                      + (f'<p class="message error">{esc(last["error"])}</p>' if last.get("error") else "")),
        ("Drift", esc(drift.get("count", "-")) + ("<ul>" + "".join(f"<li><code>{esc(o)}</code></li>"
                                                                    for o in drift.get("objects") or []) + "</ul>"
                                                   if drift.get("objects") else "")),
    ]
    for kind in ("Reconciling", "Stalled"):
        condition = _condition(status, kind)
        if condition:
            facts.append((kind, f"{esc(condition.get('status'))} {esc(condition.get('reason') or '')}"))
    pending = pending_fact(status)
    if pending is not None:
        facts.append(pending)
    parts = [f'<p class="crumbs"><a href="/">Apps</a> / {esc(row.namespace)}</p>',
             f"<h1>{esc(row.name)} <small>{esc(row.namespace)}</small></h1>", _actions(row, actions), facts_list(facts)]
    parts.append('<h2 id="objects">Objects</h2>')
    if objects is None:
        parts.append('<p class="empty">No sync of this App by this daemon got as far as a plan since the daemon '
                     "started; its objects are listed after the next one that does.</p>")
    elif not objects:
        parts.append('<p class="empty">The last sync had no objects.</p>')
    else:
        parts.append(
            '<div class="scroll"><table class="objects"><caption class="sr">Objects of the last sync</caption>'
            '<thead><tr><th scope="col">Kind</th><th scope="col">Namespace</th><th scope="col">Name</th>'
            '<th scope="col">Action</th><th scope="col">Health</th><th scope="col">Message</th></tr></thead><tbody>'
            + "".join(f'<tr><td data-label="Kind">{esc(o.kind)}</td><td data-label="Namespace">{esc(o.namespace or "-")}'
                      f'</td><th scope="row" data-label="Name">{esc(o.name)}</th>'
                      f'<td data-label="Action">{esc(o.action)}{_fields(o)}</td>'
                      f'<td data-label="Health">{badge(o.health)}</td>'
                      f'<td data-label="Message">{esc(o.message)}</td></tr>' for o in objects)
            + "</tbody></table></div>")
    parts.append(history_section(status, app=(row.namespace, row.name), now=now, rollback=_rollback_form(row, actions)))
    parts.append('<h2 id="events">Recent Events</h2>')
    if not events:
        parts.append('<p class="empty">No Events about this App.</p>')
    else:
        parts.append(
            '<div class="scroll"><table class="events"><caption class="sr">Events about the App, newest first</caption>'
            '<thead><tr><th scope="col">Type</th><th scope="col">Reason</th><th scope="col">Age</th>'
            '<th scope="col">Message</th></tr></thead><tbody>'
            + "".join(f'<tr><td data-label="Type"><span class="badge {"bad" if e.type == "Warning" else "ok"}">'
                      f'{esc(e.type)}</span></td><th scope="row" data-label="Reason">{esc(e.reason)}'
                      f'{f" ×{e.count}" if e.count > 1 else ""}</th>'
                      f'<td data-label="Age">{esc(age(e.time, now=now))}</td>'
                      f'<td data-label="Message">{esc(e.message)}</td></tr>' for e in events)
            + "</tbody></table></div>")
    return "".join(parts)


def _fields(row: ObjectRow) -> str:
    if not row.fields:
        return ""
    return ('<ul class="fields">' + "".join(f"<li><code>{esc(path)}</code> <small>{esc(cause)}</small></li>"
                                            for path, cause in row.fields) + "</ul>")


RESULT_BADGES = {"Succeeded": "ok", "Failed": "bad", "Interrupted": "wait"}


def changes_text(entry: HistoryEntry) -> str:
    if entry.result == "Interrupted" and entry.planned is not None:
        return f"{entry.already_applied} of {entry.planned} already applied"
    return ", ".join(f"{n} {action}" for action, n in entry.summary.items()) or "-"


def trigger_html(entry: HistoryEntry) -> str:
    text = esc(entry.trigger.text()) + (f" ×{entry.count}" if entry.count > 1 else "")
    if entry.trigger.objects:
        text += "<ul>" + "".join(f"<li><code>{esc(o)}</code></li>" for o in entry.trigger.objects) + "</ul>"
    return text


def _rollback_form(app: AppRow, actions: Actions) -> Callable[[str], str] | None:
    """With --ui-actions and `patch` on the App: a history row's "Roll back" button (what
    `syncer rollback --to` does)."""
    if not actions.allowed:
        return None
    base = esc(app_path(app.namespace, app.name))

    def form(revision: str) -> str:
        return (f'<form method="post" action="{base}/rollback"><input type="hidden" name="csrf" '
                f'value="{esc(actions.csrf)}"><input type="hidden" name="revision" value="{esc(revision)}">'
                f'<button type="submit" class="rollback" aria-label="Roll back to {esc(revision[:12])}">'
                "Roll back</button></form>")
    return form


def compare_path(namespace: str, name: str, *, before: str, after: str) -> str:
    """The compare page of two history entries (`entry_key`s)."""
    return f"{app_path(namespace, name)}/compare?{urlencode({'from': before, 'to': after})}"


def entry_label(entry: HistoryEntry, *, now: datetime) -> str:
    """An entry as a choice of the compare form: `0123456789ab · Succeeded · webhook · 5m ago`."""
    return f"{entry.revision[:12]} · {entry.result} · {entry.trigger.text()} · {age(entry.started, now=now)} ago"


def compare_form(namespace: str, name: str, entries: Sequence[HistoryEntry], *, now: datetime,
                 selected: tuple[str, str] | None = None) -> str:
    """Two lists of the history's entries and a button: a plain GET form, so it works without
    the script and from the keyboard. By default the newest entry against the one before it."""
    if len(entries) < 2:
        return ""
    keys = [entry_key(e) for e in entries]
    before, after = selected or (keys[1], keys[0])

    def choices(chosen: str) -> str:
        return "".join(f'<option value="{esc(key)}"{" selected" if key == chosen else ""}>'
                       f"{esc(entry_label(entry, now=now))}</option>" for key, entry in zip(keys, entries))
    return (f'<form method="get" action="{esc(app_path(namespace, name))}/compare" class="compare" '
            'aria-label="Compare two history entries">'
            f'<label for="compare-from">From</label><select id="compare-from" name="from">{choices(before)}</select>'
            f'<label for="compare-to">To</label><select id="compare-to" name="to">{choices(after)}</select>'
            '<button type="submit" id="compare-submit">Compare</button></form>')


def history_section(status: dict[str, Any], *, app: tuple[str, str], now: datetime,
                    rollback: Callable[[str], str] | None = None) -> str:
    """The history table of App `app` (namespace, name), newest first (`syncer history
    --app`'s columns), a link from each entry to its comparison with the one before it, and
    the form comparing any two; with `rollback`, a button on each revision it applied other
    than the current one (its newest entry)."""
    entries = history_of({"status": status})
    current, offered = status.get("lastAppliedRevision"), set()
    compare = len(entries) > 1

    def action(entry: HistoryEntry) -> str:
        if rollback is None or entry.result != "Succeeded" or entry.revision in offered or entry.revision == current:
            return ""
        offered.add(entry.revision)
        return rollback(entry.revision)

    def previous(n: int) -> str:
        if n + 1 >= len(entries):
            return ""
        link = compare_path(*app, before=entry_key(entries[n + 1]), after=entry_key(entries[n]))
        return (f'<a href="{esc(link)}" aria-label="Compare {esc(entries[n].revision[:12])} with the entry before '
                'it">vs previous</a>')
    parts = ['<h2 id="history">History</h2>']
    if not entries:
        return parts[0] + '<p class="empty">No sync recorded yet.</p>'
    parts.append(
        '<div class="scroll"><table class="history"><caption class="sr">The App\'s syncs, newest first</caption>'
        '<thead><tr><th scope="col">Started</th><th scope="col">Revision</th><th scope="col">Trigger</th>'
        '<th scope="col">Result</th><th scope="col">Changes</th><th scope="col">Duration</th>'
        '<th scope="col">Plan</th>' + ('<th scope="col">Compare</th>' if compare else "")
        + ('<th scope="col">Roll back</th>' if rollback else "") + '</tr></thead><tbody>'
        + "".join(
            f'<tr><td data-label="Started">{esc(age(e.started, now=now))} ago</td>'
            f'<th scope="row" data-label="Revision"><code>{esc(e.revision[:12])}</code></th>'
            f'<td data-label="Trigger">{trigger_html(e)}</td>'
            f'<td data-label="Result"><span class="badge {RESULT_BADGES.get(e.result, "")}">{esc(e.result)}</span>'
            + (f'<p class="message error">{esc(e.error)}</p>' if e.error else "") + "</td>"
            f'<td data-label="Changes">{esc(changes_text(e))}</td>'
            f'<td data-label="Duration">{e.seconds:.1f}s</td>'
            f'<td data-label="Plan"><code>{esc(e.plan_digest.removeprefix("sha256:")[:12] or "-")}</code></td>'
            + (f'<td data-label="Compare">{previous(n)}</td>' if compare else "")
            + (f'<td data-label="Roll back">{action(e)}</td>' if rollback else "") + "</tr>"
            for n, e in enumerate(entries))
        + "</tbody></table></div>")
    parts.append(compare_form(*app, entries, now=now))
    return "".join(parts)


def pending_fact(status: dict[str, Any]) -> tuple[str, str] | None:
    """The plan waiting for approval (`spec.approval: manual`), as a fact of the app page."""
    pending = status.get("pendingPlan")
    if not isinstance(pending, dict):
        return None
    summary = ", ".join(f"{int(n)} {esc(action)}" for action, n in (pending.get("summary") or {}).items()
                        if isinstance(n, int)) or "no changes"
    blocked = f'<p class="message error">{esc(pending["blocked"])}</p>' if pending.get("blocked") else ""
    return ("Waiting for approval", f"revision <code>{esc(str(pending.get('revision', ''))[:12])}</code>: {summary}"
            f'<p class="message" id="pending-digest">digest <code>{esc(pending.get("digest", ""))}</code></p>'
            + blocked)


def login_main(*, error: str = "", csrf: str) -> str:
    message = f'<p class="message error" role="alert">{esc(error)}</p>' if error else ""
    return (
        "<h1>Sign in</h1>"
        "<p>Paste a Kubernetes bearer token: you see the Apps of the namespaces where it may <code>get</code> Apps. "
        "For yourself: <code>kubectl create token SERVICEACCOUNT</code>, or your kubeconfig's token.</p>"
        f'{message}<form method="post" action="/login" class="login">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<label for="token">Token</label>'
        '<input type="password" id="token" name="token" autocomplete="off" required>'
        '<button type="submit">Sign in</button></form>'
    )


def page(*, title: str, main: str, stream: str | None, user: str, csrf: str, signed_in: bool) -> str:
    """The whole document around a `<main>`; `stream` is the URL of its live updates."""
    who = ""
    if signed_in:
        who = (f'<span class="user">{esc(user)}</span><form method="post" action="/logout">'
               f'<input type="hidden" name="csrf" value="{esc(csrf)}"><button type="submit">Sign out</button></form>')
    live = f' data-stream="{esc(stream)}"' if stream else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · syncer</title>"
        '<link rel="stylesheet" href="/static/dashboard.css"></head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><a class="brand" href="/">syncer</a><span id="live" class="live" aria-live="polite"></span>{who}'
        "</header>"
        f'<main id="main" tabindex="-1"{live}>{main}</main>'
        '<script src="/static/dashboard.js"></script></body></html>'
    )


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
