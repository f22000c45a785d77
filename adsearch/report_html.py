"""The study report as one self-contained HTML page: Plotly plots, a sortable trials table, the spec.

`html_page(spec, rows, front, best, state, spec_text)` returns the page as text. It opens offline:
plotly.js is inlined once (what Plotly's `include_plotlyjs=True` inlines) and every figure is a
JSON document in a `<script type="application/json" data-plot=ID>` tag, drawn into the element
with that id on load. Each trace's `customdata` holds the trial number of each point, so a figure
can be checked against `trials.csv` by reading its JSON.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs

from adsearch.pareto import baseline_index, objective_pairs, pareto_front
from adsearch.report import (
    PLOTS, _drop, against_baseline, _finite, _recommendation, _trial_name, _with_factor, count, factor, percent, points, seconds, value, widths,
)
from adsearch.spec import StudySpec

TEMPLATE = "plotly_white"
COLORS = {"trials": "#7f9cc0", "front": "#e8710a", "baseline": "#c5221f", "recommended": "#188038"}


def html_page(spec: StudySpec, rows: list[dict], front: list[int], best: int | None, state: str,
              spec_text: str) -> str:
    """The HTML report of a study (rows sorted as in trials.csv, `front`/`best` indices into them)."""
    figures = {f"pareto-{metric}": pareto_figure(rows, metric, spec, front, best)
               for metric in PLOTS if metric == "params" or any(_finite(r.get(metric)) for r in rows)}
    profile = width_profile_figure(rows, front, best)
    if profile is not None:
        figures["widths"] = profile
    densities = density_figure(rows, best, front)
    if densities is not None:
        figures["density"] = densities
    params = list(spec.search.space)
    b = baseline_index(rows)
    baseline = rows[b] if b is not None else None
    body = [
        f"<h1>Study <code>{_e(spec.name)}</code> <span class='state {state}'>{state}</span></h1>",
        f"<p>{_summary(spec, rows, state)}</p>",
        "<h2>Recommended trade-off</h2>",
        f"<p>{_inline(_recommendation(spec, rows, best, baseline, params))}</p>",
        "<h2>Accuracy against cost</h2>",
        "<p>Hover a point for the trial's settings. Orange: the Pareto set over the study's objectives "
        "(the line joins those not beaten in the plotted pair); star: the baseline; green ring: the "
        "recommended trade-off; dashed: the lowest accuracy it may have.</p>",
        *(_plot_div(name) for name in figures if name.startswith("pareto-")),
    ]
    if "widths" in figures:
        body += ["<h2>Layer widths of the Pareto trials</h2>",
                 "<p>Channels kept per prunable layer group (log scale), against the baseline's.</p>",
                 _plot_div("widths")]
    if "density" in figures:
        body += ["<h2>Activation density over training</h2>",
                 "<p>Mean activation density of each layer group per epoch; pick a trial in the menu. "
                 "Crosses and dotted lines mark the compression points (hover for the widths).</p>",
                 _plot_div("density")]
    body += ["<h2>All trials</h2>", "<p>Click a column to sort. ★: on the Pareto front.</p>",
             _trials_table(rows, params, set(front), best, baseline)]
    failed = [r for r in rows if r.get("state") == "FAIL"]
    if failed:
        body += ["<h2>Failed trials</h2>", _failed_table(failed, params)]
    body += ["<h2>Spec</h2>", f"<pre class='spec'>{_e(spec_text)}</pre>"]
    scripts = "\n".join(f"<script type='application/json' data-plot='plot-{name}'>{_json(fig)}</script>"
                        for name, fig in figures.items())
    return PAGE.format(title=_e(f"adsearch: {spec.name} ({state})"), style=STYLE, body="\n".join(body),
                       plotly=get_plotlyjs(), figures=scripts, script=SCRIPT)


# --- figures ---------------------------------------------------------------------------------


def pareto_figure(rows: list[dict], metric: str, spec: StudySpec, front: list[int], best: int | None) -> go.Figure:
    """Accuracy (%) against `metric` (log axis): the trials, the Pareto set (joined where it is also
    the front of this pair), the baseline and the recommended trial; customdata = trial numbers."""
    label = PLOTS.get(metric, metric)
    fig = go.Figure()
    usable = [i for i, r in enumerate(rows) if r.get("state") == "COMPLETE" and _finite(r.get("accuracy"))
              and _finite(r.get(metric)) and r[metric] > 0]
    b = baseline_index(rows)
    baseline = rows[b] if b is not None else None
    params = _param_names(rows)
    on_front = set(front)

    def trace(name: str, idx: Sequence[int], *, hover: bool = True, labels: bool = False, **kw) -> None:
        hovers = dict(hovertext=[_hover(rows[i], params, baseline) for i in idx],
                      hovertemplate="%{hovertext}<extra></extra>") if hover else dict(hoverinfo="skip")
        fig.add_trace(go.Scatter(
            name=name, x=[rows[i][metric] for i in idx], y=[100 * rows[i]["accuracy"] for i in idx],
            customdata=[[rows[i].get("number")] for i in idx],
            text=[_trial_name(rows[i]) for i in idx] if labels else None, **hovers, **kw))

    others = [i for i in usable if i not in on_front and rows[i].get("role") != "baseline"]
    trace("trials", others, mode="markers", marker=dict(color=COLORS["trials"], size=8, opacity=0.7))
    in_view = [usable[k] for k in pareto_front([rows[i] for i in usable], [("accuracy", "max"), (metric, "min")])]
    joined = sorted((i for i in in_view if i in on_front), key=lambda i: rows[i][metric])
    trace("front (this pair)", joined, hover=False, mode="lines",
          line=dict(color=COLORS["front"], width=1.5, shape="hv"))
    pareto_set = sorted((i for i in front if i in usable), key=lambda i: rows[i][metric])
    trace("Pareto set", pareto_set, labels=True, mode="markers+text", textposition="top center",
          marker=dict(color=COLORS["front"], size=10, line=dict(width=1, color="white")))
    if baseline is not None and b in usable:
        trace("baseline", [b], mode="markers", marker=dict(symbol="star", size=16, color=COLORS["baseline"]))
        floor = 100 * (baseline["accuracy"] - spec.report.max_accuracy_drop)
        fig.add_hline(y=floor, line=dict(color=COLORS["baseline"], dash="dash", width=1),
                      annotation_text=f"baseline − {points(spec.report.max_accuracy_drop)} pts",
                      annotation_position="bottom left")
    if best is not None and best in usable:
        trace(f"recommended: trial {_trial_name(rows[best])}", [best], mode="markers",
              marker=dict(symbol="circle-open", size=20, color=COLORS["recommended"], line=dict(width=3)))
    if not usable:
        fig.add_annotation(text="no completed trials yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(template=TEMPLATE, height=460, margin=dict(t=50, r=20, b=50, l=60),
                      title=f"accuracy against {label}", hoverlabel=dict(align="left"),
                      xaxis=dict(type="log", title=f"{label} (log scale)"), yaxis=dict(title="accuracy (%)"))
    return fig


def width_profile_figure(rows: list[dict], front: list[int], best: int | None) -> go.Figure | None:
    """Channels per layer group of the Pareto search trials (and the recommended one) and the baseline."""
    b = baseline_index(rows)
    base_widths = None
    if b is not None:
        base_widths = rows[b].get("widths") or rows[b].get("base_widths")
    chosen = [i for i in front if rows[i].get("role") == "search" and rows[i].get("widths")]
    if best is not None and best not in chosen and rows[best].get("widths"):
        chosen.append(best)
    if not chosen and not base_widths:
        return None
    base_widths = base_widths or next((rows[i].get("base_widths") for i in chosen if rows[i].get("base_widths")), None)
    n = len(base_widths or rows[chosen[0]]["widths"])
    names = _group_names(rows, n)
    fig = go.Figure()
    if base_widths:
        fig.add_trace(go.Scatter(name="baseline", x=names, y=base_widths, mode="lines+markers",
                                 customdata=[[-1]] * n, line=dict(color="black", dash="dash", width=2),
                                 hovertemplate="baseline<br>%{x}: %{y} channels<extra></extra>"))
    for k, i in enumerate(sorted(chosen, key=lambda i: rows[i].get("params") or 0)):
        r = rows[i]
        ws = r["widths"]
        share = [f"{w / bw:.1%} of {bw}" if base_widths and bw else "" for w, bw in zip(ws, base_widths or ws)]
        fig.add_trace(go.Scatter(
            name=f"trial {_trial_name(r)}" + (" (recommended)" if i == best else ""), x=names[:len(ws)], y=ws,
            mode="lines+markers", customdata=[[r.get("number"), s] for s in share],
            line=dict(width=4 if i == best else 1.5, color=COLORS["recommended"] if i == best else None),
            hovertemplate=f"trial {_e(_trial_name(r))}<br>%{{x}}: %{{y}} channels (%{{customdata[1]}})<extra></extra>"))
    fig.update_layout(template=TEMPLATE, height=420, margin=dict(t=40, r=20, b=50, l=60),
                      title="channels per layer group", xaxis=dict(title="layer group"),
                      yaxis=dict(type="log", title="channels (log scale)"))
    return fig


DENSITY_TRIALS = 60
"""At most this many trials in the density menu: the baseline, the Pareto set and the recommended
trial first, then the others by number (every curve is embedded in the page)."""


def density_figure(rows: list[dict], best: int | None, front: Sequence[int] = ()) -> go.Figure | None:
    """Per-trial density curves (one line per layer group) with a menu to pick the trial; the
    compression points marked by crosses and dotted lines."""
    traced = [i for i, r in enumerate(rows) if r.get("history")]
    if not traced:
        return None
    if len(traced) > DENSITY_TRIALS:
        first = [i for i in traced if rows[i].get("role") == "baseline" or i in front or i == best]
        traced = sorted(first + [i for i in traced if i not in first][: max(0, DENSITY_TRIALS - len(first))])
    shown = best if best in traced else next((i for i in traced if rows[i].get("role") == "search"), traced[0])
    fig = go.Figure()
    owner: list[int] = []  # the row index of every trace
    for i in traced:
        r = rows[i]
        history = [h for h in r["history"] if isinstance(h.get("density"), dict)]
        groups = list(history[-1]["density"]) if history else []
        for g, group in enumerate(groups):
            fig.add_trace(go.Scatter(
                name=group, x=[h["epoch"] for h in history], y=[h["density"].get(group) for h in history],
                mode="lines+markers", visible=i == shown, legendgroup=group, customdata=[[r.get("number")]] * len(history),
                line=dict(color=qualitative.Plotly[g % len(qualitative.Plotly)], width=1.5), marker=dict(size=4),
                hovertemplate=f"trial {_e(_trial_name(r))}, {_e(group)}<br>epoch %{{x}}: density %{{y:.3f}}<extra></extra>"))
            owner.append(i)
        marks = [(c, group) for c in r.get("compressions") or [] for group in groups if group in (c.get("density") or {})]
        if marks:
            fig.add_trace(go.Scatter(
                name="compression", x=[c["epoch"] for c, _ in marks], y=[c["density"][g] for c, g in marks],
                mode="markers", visible=i == shown, marker=dict(symbol="x", size=10, color="black"),
                customdata=[[r.get("number")]] * len(marks),
                text=[_compression_hover(c, groups, g) for c, g in marks], hovertemplate="%{text}<extra></extra>"))
            owner.append(i)
    buttons = [dict(label=_menu_label(rows[i]), method="update",
                    args=[{"visible": [o == i for o in owner]},
                          {"shapes": _compression_lines(rows[i]), "title.text": _density_title(rows[i])}])
               for i in traced]
    fig.update_layout(template=TEMPLATE, height=440, margin=dict(t=90, r=20, b=50, l=60),
                      title=dict(text=_density_title(rows[shown]), x=0.5, xanchor="center"),
                      shapes=_compression_lines(rows[shown]),
                      xaxis=dict(title="epoch", dtick=1 if len(rows[shown]["history"]) <= 30 else None),
                      yaxis=dict(title="activation density", rangemode="tozero"),
                      updatemenus=[dict(buttons=buttons, active=traced.index(shown), x=0, xanchor="left",
                                        y=1.2, yanchor="top", direction="down")])
    return fig


def _compression_lines(row: dict) -> list[dict]:
    return [dict(type="line", xref="x", yref="paper", x0=c["epoch"], x1=c["epoch"], y0=0, y1=1,
                 line=dict(color="grey", dash="dot", width=1)) for c in row.get("compressions") or []]


def _compression_hover(c: dict, groups: list[str], group: str) -> str:
    k = groups.index(group)
    before, after = c.get("widths_before") or [], c.get("widths_after") or []
    change = f"{before[k]} → {after[k]} channels" if k < len(before) and k < len(after) else ""
    return (f"round {c.get('round')} at epoch {c.get('epoch')}<br>{_e(group)}: density "
            f"{c['density'][group]:.3f}, {change}<br>params after: {count(c.get('params'))}")


def _density_title(row: dict) -> str:
    rounds = len(row.get("compressions") or [])
    return f"trial {_trial_name(row)}: {rounds} compression round{'s' if rounds != 1 else ''}"


def _menu_label(row: dict) -> str:
    return f"trial {_trial_name(row)} ({percent(row.get('accuracy'))}, {count(row.get('params'))} params)"


def _group_names(rows: list[dict], n: int) -> list[str]:
    """The layer group names (from a trial's density records) if they match `n` widths."""
    for r in rows:
        for h in reversed(r.get("history") or []):
            names = list((h.get("density") or {}).keys())
            if len(names) == n:
                return names
    return [f"group {k + 1}" for k in range(n)]


def _param_names(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k[len("param:"):] for r in rows for k in r if k.startswith("param:")))


def _hover(row: dict, params: list[str], baseline: dict | None) -> str:
    lines = [f"<b>trial {_e(_trial_name(row))}</b>"]
    if row.get("role") == "search":
        lines += [f"{_e(p)} = {_e(value(row.get(f'param:{p}')))}" for p in params]
    drop = _drop(row, baseline)
    lines.append(f"accuracy {percent(row.get('accuracy'))}"
                 + (f" ({against_baseline(drop, 'pts')} the baseline)" if row.get("role") == "search" and _finite(drop) else ""))
    for metric, label in (("params", "params"), ("macs", "MACs"), ("train_macs", "train MACs")):
        lines.append(f"{label} {_e(_with_factor(row, metric, baseline))}")
    lines.append(f"widths {_e(widths(row.get('widths')))}")
    return "<br>".join(lines)


# --- tables ----------------------------------------------------------------------------------


def _trials_table(rows: list[dict], params: list[str], front: set[int], best: int | None,
                  baseline: dict | None) -> str:
    header = ["trial", "state", *params, "accuracy", "drop (pts)", "params", "fewer params", "MACs", "train MACs",
              "fewer train MACs", "wall time", "rounds", "widths", "front", "error"]
    out = ["<div class='scroll'><table class='sortable' id='trials'><thead><tr>"
           + "".join(f"<th title='sort'>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        drop = _drop(r, baseline)
        cells = [
            (_trial_name(r), r.get("number")),
            (r.get("state", ""), None),
            *((value(r.get(f"param:{p}")), _sort_value(r.get(f"param:{p}"))) for p in params),
            (percent(r.get("accuracy")), r.get("accuracy")),
            (points(drop) if r.get("role") == "search" else "", drop),
            (count(r.get("params")), r.get("params")),
            (factor(r, "params", baseline) if r.get("role") == "search" else "", _inverse(r.get("params_ratio"))),
            (count(r.get("macs")), r.get("macs")),
            (count(r.get("train_macs")), r.get("train_macs")),
            (factor(r, "train_macs", baseline) if r.get("role") == "search" else "", _inverse(r.get("train_macs_ratio"))),
            (seconds(r.get("wall_s")), r.get("wall_s")),
            (value(r.get("rounds")), r.get("rounds")),
            (widths(r.get("widths")), None),
            ("★" if i in front else "", 1 if i in front else 0),
            (r.get("error") or "", None),
        ]
        classes = " ".join(c for c, on in (("front", i in front), ("best", i == best),
                                           ("failed", r.get("state") == "FAIL")) if on)
        out.append(f"<tr id='trial-{_e(_trial_name(r))}' class='{classes}'>"
                   + "".join(_td(text, key) for text, key in cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _failed_table(failed: list[dict], params: list[str]) -> str:
    out = ["<table id='failed'><thead><tr><th>trial</th>" + "".join(f"<th>{_e(p)}</th>" for p in params)
           + "<th>error</th></tr></thead><tbody>"]
    for r in failed:
        out.append(f"<tr><td>{_e(_trial_name(r))}</td>"
                   + "".join(f"<td>{_e(value(r.get(f'param:{p}')))}</td>" for p in params)
                   + f"<td class='error'>{_e(r.get('error') or '(no message)')}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _td(text, key) -> str:
    attr = f" data-v='{key!r}'" if _finite(key) else ""
    return f"<td{attr}>{_e(text)}</td>"


def _sort_value(v):
    return v if _finite(v) else None


def _inverse(ratio):
    return 1 / ratio if _finite(ratio) and ratio > 0 else None


# --- text ------------------------------------------------------------------------------------


def _summary(spec: StudySpec, rows: list[dict], state: str) -> str:
    search = [r for r in rows if r.get("role") == "search"]
    complete = sum(r.get("state") == "COMPLETE" for r in search)
    failed = sum(r.get("state") == "FAIL" for r in search)
    other = len(search) - complete - failed
    objectives = ", ".join(f"{m} ({mode})" for m, mode in objective_pairs(spec.search.objectives))
    text = (f"{complete + failed} of {spec.search.trials} search trials done: {complete} complete, {failed} failed"
            + (f", {other} {'running' if state == 'running' else 'unfinished'}" if other else "")
            + f". Objectives: {objectives}. Sampler: {spec.search.sampler}. Spec digest <code>{spec.digest()}</code>.")
    if state == "running":
        text += " <b>The study is still running</b>: this report shows the trials finished so far."
    elif state == "interrupted":
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
