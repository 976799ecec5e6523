"""The dashboard's stylesheet and script, served by the daemon itself: no external assets, so
the dashboard works air-gapped and its Content-Security-Policy allows only its own origin.

The script is the only JavaScript: it follows the page's event stream (`data-stream` on
`<main>`) and swaps in the `<main>` each event carries, keeping the focus where it was and
what the lists of a form had chosen (the history's compare form).
Without it the pages are complete; they just do not update by themselves.
"""

from __future__ import annotations

CSS = """
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #fff; --muted: #59636e; --line: #d1d9e0;
  --ok: #1a7f37; --bad: #cf222e; --wait: #9a6700; --link: #0550ae; --focus: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1;
  --line: #3d444d; --ok: #3fb950; --bad: #f85149; --wait: #d29922; --link: #4493f8; --focus: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; padding: .5rem 1rem;
  border-bottom: 1px solid var(--line); }
header form { display: inline; }
.brand { font-weight: 700; text-decoration: none; color: var(--fg); margin-right: auto; }
.user { color: var(--muted); overflow-wrap: anywhere; }
.live { color: var(--muted); font-size: .85rem; }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
h1 small, td small, th small { color: var(--muted); font-weight: 400; }
a { color: var(--link); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, main:focus-visible,
summary:focus-visible {
  outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: .5rem; background: var(--bg); padding: .25rem .5rem; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { color: var(--muted); font-weight: 600; font-size: .9rem; }
tbody th { font-weight: 600; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em;
  overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; border: 1px solid currentColor;
  font-size: .85rem; font-weight: 600; }
.badge.ok { color: var(--ok); } .badge.bad { color: var(--bad); } .badge.wait { color: var(--wait); }
.badge.none { color: var(--muted); }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(18rem, 1fr)); gap: .5rem 1.5rem; }
.facts dt { color: var(--muted); font-size: .9rem; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.message { margin: .25rem 0 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.error { color: var(--bad); }
.empty { color: var(--muted); }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0 1rem; }
button { font: inherit; padding: .4rem .9rem; border: 1px solid var(--line); border-radius: .4rem;
  background: var(--bg); color: var(--fg); cursor: pointer; min-height: 2.5rem; }
button:hover { border-color: var(--focus); }
.login { display: grid; gap: .5rem; max-width: 30rem; }
.login input { font: inherit; padding: .4rem; min-height: 2.5rem; }
.crumbs { margin: 0; color: var(--muted); }
form.compare { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: 1rem 0; }
select { font: inherit; padding: .3rem; min-height: 2.5rem; max-width: 100%; background: var(--bg);
  color: var(--fg); border: 1px solid var(--line); border-radius: .4rem; }
table.values th, table.values td { padding: .2rem .4rem; }
code.value { white-space: pre-wrap; }
em.hidden, em.absent { color: var(--muted); }
pre.diff { overflow-x: auto; padding: .5rem; border: 1px solid var(--line); border-radius: .4rem; }
pre.diff .add { color: var(--ok); } pre.diff .del { color: var(--bad); } pre.diff .hunk { color: var(--muted); }
@media (max-width: 40rem) {
  main { padding: .75rem; }
  table, thead, tbody, tr, th, td { display: block; width: 100%; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  tbody tr { border: 1px solid var(--line); border-radius: .5rem; margin-bottom: .75rem; padding: .25rem 0; }
  tbody th, tbody td { border: 0; padding: .2rem .75rem; }
  tbody td[data-label]::before, tbody th[data-label]::before { content: attr(data-label) ": "; color: var(--muted); font-weight: 400; }
}
"""

JS = """
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  if (!main || !main.dataset.stream || !window.EventSource) { return; }
  var source = new EventSource(main.dataset.stream);
  function chosen() {
    var values = {};
    Array.prototype.forEach.call(main.querySelectorAll("select[id]"), function (list) {
      values[list.id] = list.value;
    });
    return values;
  }
  function choose(values) {
    Object.keys(values).forEach(function (id) {
      var list = document.getElementById(id);
      if (!list) { return; }
      Array.prototype.forEach.call(list.options, function (option) {
        if (option.value === values[id]) { list.value = values[id]; }
      });
    });
  }
  source.addEventListener("main", function (event) {
    var focused = document.activeElement && document.activeElement.id;
    var values = chosen();
    main.innerHTML = event.data;
    choose(values);
    if (focused) {
      var again = document.getElementById(focused);
      if (again) { again.focus(); }
    }
    live.textContent = "updated " + new Date().toLocaleTimeString();
  });
  source.addEventListener("gone", function () {
    source.close();
    live.textContent = "this App is gone";
  });
  source.onerror = function () { live.textContent = "reconnecting…"; };
  source.onopen = function () { live.textContent = "live"; };
})();
"""
