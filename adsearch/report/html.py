"""The study report as one self-contained HTML page: Plotly plots, a sortable trials table, the spec.

`html_page(view, spec_text)` renders a `adsearch.results.view.ReportView` as text. It opens offline:
plotly.js is inlined once (what Plotly's `include_plotlyjs=True` inlines) and every figure is a
JSON document in a `<script type="application/json" data-plot=ID>` tag, drawn into the element
with that id on load; the figures themselves are `adsearch.report.html_figures`. Rows of the trials
table have the id `trial-<label>` ('trial-baseline', 'trial-0', ...).
"""

from __future__ import annotations

import html
import re

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from adsearch.metrics import count, finite, points, seconds, value, widths
from adsearch.report.html_figures import density_figure, pareto_figure, width_profile_figure
from adsearch.results.arms import ARM_INTRO, budget_text
from adsearch.results.scratch_view import MATCH_TITLES, SCRATCH_INTRO, scratch_cells, scratch_columns, scratch_verdict
from adsearch.results.sharing import sharing_summary
from adsearch.results.texts import accuracy_text
from adsearch.results.view import DROP_P, DROP_P_NOTE, ReportView, drop_p


def html_page(view: ReportView, spec_text: str) -> str:
    """The HTML report of the study in `view`; `spec_text` is shown as the spec it ran with."""
    figures = {f"pareto-{cost}": pareto_figure(view, cost) for cost in view.costs}
    profile = width_profile_figure(view)
    if profile is not None:
        figures["widths"] = profile
    densities = density_figure(view)
    if densities is not None:
        figures["density"] = densities
    state = view.state
    body = [
        f"<h1>Study <code>{_e(view.name)}</code> <span class='state {state}'>{state}</span></h1>",
        f"<p>{_summary(view)}</p>",
        "<h2>Recommended trade-off</h2>",
        f"<p>{_inline(view.recommendation)}</p>",
        "<h2>Accuracy against cost</h2>",
        f"<p>{_plot_caption(view)}</p>",
        *(_plot_div(name) for name in figures if name.startswith("pareto-")),
    ]
    if view.grouped_by_arm:
        body += ["<h2>Arms at equal parameters</h2>", f"<p>{_inline(ARM_INTRO)}</p>", _arm_table(view),
                 "<ul id='arm-verdicts'>" + "".join(f"<li>{_e(v)}</li>" for v in view.arm_verdicts()) + "</ul>"]
    if view.scratch_rows:
        body += ["<h2>Against training from scratch</h2>", f"<p>{_e(SCRATCH_INTRO)}</p>"]
        titled = len(view.scratch_matches) > 1 or view.scratch_matches != ["epochs"]
        for match in view.scratch_matches:
            summary, suffix = view.scratch_summary(match), "" if match == "epochs" else f"-{match}"
            body += [*([f"<h3>{_e(MATCH_TITLES[match])}</h3>"] if titled else []),
                     *([f"<p id='scratch-summary{suffix}'>{_inline(summary)}</p>"] if summary else []),
                     f"<ul id='scratch-verdicts{suffix}'>"
                     + "".join(f"<li>trial {_e(r.label)}: {_e(scratch_verdict(r, match) or 'no accuracy to compare')}"
                               "</li>" for r in view.matched_rows(match)) + "</ul>"]
    if "widths" in figures:
        body += ["<h2>Layer widths of the Pareto trials</h2>",
                 "<p>Channels kept per prunable layer group (log scale), against the baseline's.</p>",
                 _plot_div("widths")]
    if "density" in figures:
        body += ["<h2>Activation density over training</h2>",
                 "<p>Mean activation density of each layer group per epoch; pick a trial in the menu. "
                 "Crosses and dotted lines mark the compression points (hover for the widths).</p>",
                 _plot_div("density")]
    body += ["<h2>All trials</h2>", "<p>Click a column to sort. ★: on the Pareto front."
             + (f" {_e(DROP_P_NOTE)}." if view.paired_with_baseline else "") + "</p>", _trials_table(view)]
    if view.failed:
        body += ["<h2>Failed trials</h2>", _failed_table(view)]
    body += ["<h2>Spec</h2>", f"<pre class='spec'>{_e(spec_text)}</pre>"]
    scripts = "\n".join(f"<script type='application/json' data-plot='plot-{name}'>{_json(fig)}</script>"
                        for name, fig in figures.items())
    return PAGE.format(title=_e(f"adsearch: {view.name} ({state})"), style=STYLE, body="\n".join(body),
                       plotly=get_plotlyjs(), figures=scripts, script=SCRIPT)


# --- tables ----------------------------------------------------------------------------------


def _trials_table(view: ReportView) -> str:
    grouped, scratch = view.grouped_by_arm, view.scratch_matches
    paired = view.paired_with_baseline
    header = ["trial", "state", *(["arm"] if grouped else []), *view.paths, "accuracy", "drop (pts)",
              *([DROP_P] if paired else []), "params",
              "fewer params", "MACs", "train MACs", "fewer train MACs",
              *scratch_columns(scratch), "wall time", "rounds", "widths",
              "front", "error"]
    out = ["<div class='scroll'><table class='sortable' id='trials'><thead><tr>"
           + "".join(f"<th title='sort'>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for r in view.rows:
        drop, search, on_front = view.drop(r), not r.is_baseline, view.on_front(r)
        cells = [
            (r.label, r.number),
            (r.state_text, None),
            *([(view.arm(r) or "", None)] if grouped else []),
            *((value(r.settings.get(p)), r.settings.get(p)) for p in view.paths),
            (accuracy_text(r), r.metric("accuracy")),
            (points(drop) if search else "", drop),
            *([(drop_p(view, r), t.p_value if (t := view.baseline_test(r)) else None)] if paired else []),
            (count(r.metric("params")), r.metric("params")),
            (view.fewer(r, "params"), view.inverse_ratio(r, "params")),
            (count(r.metric("macs")), r.metric("macs")),
            (count(r.metric("train_macs")), r.metric("train_macs")),
            (view.fewer(r, "train_macs"), view.inverse_ratio(r, "train_macs")),
            *scratch_cells(r, scratch),
            (seconds(r.metric("wall_s")), r.metric("wall_s")),
            (value(r.metric("rounds")), r.metric("rounds")),
            (widths(r.widths), None),
            ("★" if on_front else "", 1 if on_front else 0),
            (r.error, None),
        ]
        classes = " ".join(c for c, on in (("front", on_front), ("best", view.is_recommended(r)),
                                           ("failed", r.state == "FAIL")) if on)
        out.append(f"<tr id='trial-{_e(r.label)}' class='{classes}'>"
                   + "".join(_td(text, key) for text, key in cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _arm_table(view: ReportView) -> str:
    """Per arm, the best accuracy at or under each parameter budget (`ReportView.arm_table`)."""
    out = ["<table id='arms'><thead><tr><th>arm</th>"
           + "".join(f"<th>{_e(budget_text(b))}</th>" for b in view.arm_budgets()) + "</tr></thead><tbody>"]
    for arm, cells in view.arm_table().items():
        out.append(f"<tr><td><span class='swatch' style='background:{view.arm_color(arm)}'></span>{_e(arm)}</td>"
                   + "".join(f"<td>{_e(c.text())}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _failed_table(view: ReportView) -> str:
    out = ["<table id='failed'><thead><tr><th>trial</th>" + "".join(f"<th>{_e(p)}</th>" for p in view.paths)
           + "<th>error</th></tr></thead><tbody>"]
    for r in view.failed:
        out.append(f"<tr><td>{_e(r.label)}</td>"
                   + "".join(f"<td>{_e(value(r.settings.get(p)))}</td>" for p in view.paths)
                   + f"<td class='error'>{_e(r.error or '(no message)')}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _td(text, key) -> str:
    """A table cell; `key`, when a finite number, is what the column sorts by (`data-v`)."""
    attr = f" data-v='{key!r}'" if finite(key) else ""
    return f"<td{attr}>{_e(text)}</td>"


# --- text ------------------------------------------------------------------------------------


def _plot_caption(view: ReportView) -> str:
    if view.grouped_by_arm:
        return ("Hover a point for the trial's settings. Colours: the arms (criterion / width rule, see the legend); "
                "orange rings: the Pareto set over the study's objectives (the orange line joins those not beaten in "
                "the plotted pair); star: the baseline; green ring: the recommended trade-off; dashed: the lowest "
                "accuracy it may have.")
    return ("Hover a point for the trial's settings. Orange: the Pareto set over the study's objectives "
            "(the line joins those not beaten in the plotted pair); star: the baseline; green ring: the "
            "recommended trade-off; dashed: the lowest accuracy it may have.")


def _summary(view: ReportView) -> str:
    spec = view.spec
    text = (f"{view.summary()}. Objectives: {view.objectives_text}. Sampler: {spec.search.sampler}. "
            f"Spec digest <code>{spec.digest()}</code>.")
    if sharing_summary(view.rows):
        text += " " + html.escape(sharing_summary(view.rows))
    if view.state == "running":
        text += " <b>The study is still running</b>: this report shows the trials finished so far."
    elif view.state == "interrupted":
        text += (" <b>The study was interrupted</b> before all its trials finished; "
                 "<code>adsearch resume</code> goes on with it.")
    return text


def _inline(markdown_text: str) -> str:
    """The little Markdown the recommendation uses (**bold**, `code`) as HTML, everything else escaped."""
    text = _e(markdown_text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _json(fig: go.Figure) -> str:
    # `<` only occurs inside JSON strings, where \u003c means the same: no `</script>` can end the tag
    return fig.to_json().replace("<", "\\u003c")


def _plot_div(name: str) -> str:
    return f"<div class='plot' id='plot-{name}'></div>"


# --- the page --------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
<script>{plotly}</script>
</head>
<body>
{body}
{figures}
<script>{script}</script>
</body>
</html>
"""

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #202124; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
pre.spec { background: #f6f8fa; padding: 10px; overflow-x: auto; }
.state { font-size: 13px; padding: 2px 8px; border-radius: 10px; vertical-align: middle; color: white; }
.state.done { background: #188038; } .state.running { background: #1a73e8; } .state.interrupted { background: #e8710a; }
.plot { width: 100%; min-height: 420px; }
table { border-collapse: collapse; font-size: 12.5px; }
.scroll { overflow-x: auto; max-height: 80vh; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 3px 8px; text-align: right; white-space: nowrap; }
td:first-child, th:first-child { text-align: left; }
td.error { white-space: normal; text-align: left; color: #a50e0e; }
table.sortable th { cursor: pointer; user-select: none; background: #f1f3f4; position: sticky; top: 0; }
th[data-dir="asc"]::after { content: " ▲"; } th[data-dir="desc"]::after { content: " ▼"; }
tr.front td { background: #fef3e8; } tr.best td { background: #e6f4ea; font-weight: 600; }
tr.failed td { color: #a50e0e; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 6px; }
"""

SCRIPT = """
document.querySelectorAll('script[data-plot]').forEach(function (tag) {
  var fig = JSON.parse(tag.textContent);
  Plotly.newPlot(tag.dataset.plot, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.dataset.dir !== 'asc';
      table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? 'asc' : 'desc';
      var key = function (row) {
        var cell = row.cells[col];
        if (cell.dataset.v !== undefined) return [0, Number(cell.dataset.v)];
        return cell.textContent.trim() === '' || cell.textContent === '—' ? [2, ''] : [1, cell.textContent];
      };
      var body = table.tBodies[0];
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x[0] !== y[0]) return x[0] - y[0];  // numbers, then text, then empty cells: always last
        var c = x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
        return asc ? c : -c;
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
