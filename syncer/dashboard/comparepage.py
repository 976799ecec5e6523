"""The compare page as HTML: two history entries of an App, and what differs between their
renders (`syncer.dashboard.compare`). Pure, and everything shown is escaped (`esc`): names,
values and errors come from tenants' repositories.

Of a Secret (or a document SOPS encrypted) it names the fields that differ and nothing more:
the `Comparison` holds no value of one to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncer.apply.history import MAX_ENTRIES, HistoryEntry
from syncer.dashboard.compare import Comparison, FieldValues, ObjectChange, entry_key
from syncer.dashboard.views import (
    RESULT_BADGES,
    age,
    app_path,
    changes_text,
    compare_form,
    esc,
    trigger_html,
)
from syncer.model import Object

ACTION_BADGES = {"added": "ok", "removed": "bad", "changed": "wait"}


def _entry_facts(entry: HistoryEntry, *, now: datetime) -> list[str]:
    return [
        f"<code>{esc(entry.revision)}</code>",
        f'{esc(entry.started)} <small>({esc(age(entry.started, now=now))} ago)</small>',
        trigger_html(entry),
        f'<span class="badge {RESULT_BADGES.get(entry.result, "")}">{esc(entry.result)}</span>'
        + (f'<p class="message error">{esc(entry.error)}</p>' if entry.error else ""),
        esc(changes_text(entry)),
        f"{entry.seconds:.1f}s",
        f"<code>{esc(entry.plan_digest or '-')}</code>",
    ]


FACT_NAMES = ("Revision", "Started", "Trigger", "Result", "Changes", "Duration", "Plan digest")


def _entries(comparison: Comparison, *, now: datetime) -> str:
    before = _entry_facts(comparison.before, now=now)
    after = _entry_facts(comparison.after, now=now)
    rows = "".join(f'<tr><th scope="row">{esc(name)}</th><td data-label="From">{old}</td>'
                   f'<td data-label="To">{new}</td></tr>' for name, old, new in zip(FACT_NAMES, before, after))
    return ('<div class="scroll"><table class="entries" id="compare-entries"><caption class="sr">The two history '
            'entries compared</caption><thead><tr><th scope="col"></th><th scope="col">From</th>'
            f'<th scope="col">To</th></tr></thead><tbody>{rows}</tbody></table></div>')


def _value(text: str | None, *, hidden: bool) -> str:
    if hidden:
        return '<em class="hidden">value hidden (Secret)</em>'
    if text is None:
        return '<em class="absent">not set</em>'
    return f'<code class="value">{esc(text)}</code>'


def _fields(fields: Sequence[FieldValues], *, hidden: bool) -> str:
    if not fields:
        return ""
    rows = "".join(f'<tr><th scope="row" data-label="Field"><code>{esc(f.path)}</code></th>'
                   f'<td data-label="From">{_value(f.old, hidden=hidden)}</td>'
                   f'<td data-label="To">{_value(f.new, hidden=hidden)}</td></tr>' for f in fields)
    return ('<table class="values"><caption class="sr">Changed fields, before and after</caption><thead><tr>'
            '<th scope="col">Field</th><th scope="col">From</th><th scope="col">To</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _diff(text: str) -> str:
    if not text:
        return ""
    lines = "".join(f'<span class="{_line_class(line)}">{esc(line)}</span>\n' for line in text.splitlines())
    return f'<details><summary>YAML diff</summary><pre class="diff">{lines}</pre></details>'


def _line_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")


def _change_row(change: ObjectChange) -> str:
    ref = f"{change.kind}/{change.namespace + '/' if change.namespace else ''}{change.name}"
    detail = _fields(change.fields, hidden=change.hidden) + _diff(change.diff)
    if change.hidden:
        detail += '<p class="message">A Secret or an encrypted document: the fields that differ, never their values.</p>'
    return (f'<tr data-object="{esc(ref)}"><td data-label="Change"><span class="badge '
            f'{ACTION_BADGES.get(change.action, "")}">{esc(change.action)}</span></td>'
            f'<td data-label="Kind">{esc(change.kind)}</td><td data-label="Namespace">{esc(change.namespace or "-")}</td>'
            f'<th scope="row" data-label="Name">{esc(change.name)}</th><td data-label="Fields">{detail}</td></tr>')


def _summary(comparison: Comparison) -> str:
    counts = {word: sum(1 for c in comparison.changes if c.action == word) for word in ("changed", "added", "removed")}
    return ", ".join(f"{n} {word}" for word, n in counts.items()) + f", {comparison.unchanged} unchanged"


def compare_main(app: Object, comparison: Comparison, *, history: Sequence[HistoryEntry], now: datetime) -> str:
    """The compare page's `<main>`: the form (to pick two others), the entries' facts, then
    the objects that differ, or why a revision cannot be shown."""
    metadata = app.get("metadata") or {}
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    before, after = comparison.before, comparison.after
    parts = [f'<p class="crumbs"><a href="/">Apps</a> / {esc(namespace)} / '
             f'<a href="{esc(app_path(namespace, name))}">{esc(name)}</a></p>',
             f"<h1>{esc(name)} <small>{esc(before.revision[:12])} → {esc(after.revision[:12])}</small></h1>",
             compare_form(namespace, name, history, now=now, selected=(entry_key(before), entry_key(after))),
             _entries(comparison, now=now), '<h2 id="objects">Objects</h2>']
    if comparison.problems:
        parts.append('<div role="alert" id="compare-problems">' + "".join(
            f'<p class="message error">{esc(problem)}</p>' for problem in comparison.problems) + "</div>")
        return "".join(parts)
    parts.append(f'<p id="compare-summary">{esc(_summary(comparison))}</p>')
    if before.revision == after.revision:
        parts.append('<p class="empty">Both entries are of the same revision: its render is the same.</p>')
    elif not comparison.changes:
        parts.append('<p class="empty">The two revisions render the same objects.</p>')
    else:
        parts.append('<div class="scroll"><table class="changes"><caption class="sr">Objects that differ between '
                     'the two revisions</caption><thead><tr><th scope="col">Change</th><th scope="col">Kind</th>'
                     '<th scope="col">Namespace</th><th scope="col">Name</th><th scope="col">Fields</th></tr>'
                     "</thead><tbody>" + "".join(_change_row(c) for c in comparison.changes) + "</tbody></table></div>")
    return "".join(parts)



def no_entry_main(namespace: str, name: str, *, missing: Sequence[str]) -> str:
    """The answer to a comparison of an entry the history does not hold (any more)."""
    return (f"<h1>No such history entry</h1><p>App/{esc(namespace)}/{esc(name)} has no history entry "
            f"{esc(', '.join(missing))}: the history keeps the last {MAX_ENTRIES} syncs.</p>"
            f'<p><a href="{esc(app_path(namespace, name))}">Back to the App</a></p>')
