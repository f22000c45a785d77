"""The Plotly figures of the HTML report, each from a `adsearch.results.view.ReportView`.

`pareto_figure` (accuracy against a cost), `width_profile_figure` (channels per layer group) and
`density_figure` (density curves per trial, with a menu). Each trace's `customdata` holds the trial
number of each point, so a figure can be checked against `trials.csv` by reading its JSON.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative

from adsearch.metrics import COSTS, against_baseline, count, finite, percent, points, value, widths
from adsearch.results.rows import TrialRow
from adsearch.results.plot_data import group_names, pair_front, plottable
from adsearch.results.texts import accuracy_text
from adsearch.results.view import ReportView

TEMPLATE = "plotly_white"
COLORS = {"trials": "#7f9cc0", "front": "#e8710a", "baseline": "#c5221f", "recommended": "#188038"}


def pareto_figure(view: ReportView, cost: str) -> go.Figure:
    """Accuracy (%) against `cost` (log axis): the plottable trials, the Pareto set (joined where it
    is also the front of this pair), the baseline and the recommended trial; customdata = trial numbers."""
    label = COSTS.get(cost, cost)
    rows, best = view.rows, view.best
    fig = go.Figure()
    usable = plottable(view.rows, cost)
    on_front = set(view.front)

    def trace(name: str, idx: Sequence[int], *, hover: bool = True, labels: bool = False, bars: bool = True,
              **kw) -> None:
        hovers = dict(hovertext=[_hover(view, rows[i]) for i in idx],
                      hovertemplate="%{hovertext}<extra></extra>") if hover else dict(hoverinfo="skip")
        fig.add_trace(go.Scatter(
            name=name, x=[rows[i].metrics[cost] for i in idx], y=[100 * rows[i].metrics["accuracy"] for i in idx],
            customdata=[[rows[i].number] for i in idx], error_y=_error_bars([rows[i] for i in idx]) if bars else None,
            text=[rows[i].label for i in idx] if labels else None, **hovers, **kw))

    if view.grouped_by_arm:  # every search trial in its arm's colour; the Pareto set ringed in orange on top
        for arm in view.arms():
            trace(arm, [i for i in usable if not rows[i].is_baseline and view.arm(rows[i]) == arm], mode="markers",
                  marker=dict(color=view.arm_color(arm), size=9, opacity=0.85))
        front_marker = dict(symbol="circle-open", size=15, color=COLORS["front"], line=dict(width=2.5))
    else:
        others = [i for i in usable if i not in on_front and not rows[i].is_baseline]
        trace("trials", others, mode="markers", marker=dict(color=COLORS["trials"], size=8, opacity=0.7))
        front_marker = dict(color=COLORS["front"], size=10, line=dict(width=1, color="white"))
    joined = [i for i in pair_front(view.rows, cost) if i in on_front]
    trace("front (this pair)", joined, hover=False, bars=False, mode="lines",
          line=dict(color=COLORS["front"], width=1.5, shape="hv"))
    pareto_set = sorted((i for i in view.front if i in usable), key=lambda i: rows[i].metrics[cost])
    trace("Pareto set", pareto_set, labels=True, mode="markers+text", textposition="top center", marker=front_marker)
    base = next((i for i in usable if rows[i] is view.baseline), None)
    if base is not None:
        trace("baseline", [base], mode="markers", marker=dict(symbol="star", size=16, color=COLORS["baseline"]))
        floor = 100 * (view.baseline.metrics["accuracy"] - view.max_drop)
        fig.add_hline(y=floor, line=dict(color=COLORS["baseline"], dash="dash", width=1),
                      annotation_text=f"baseline − {points(view.max_drop)} pts",
                      annotation_position="bottom left")
    if best is not None and best in usable:
        trace(f"recommended: trial {rows[best].label}", [best], bars=False, mode="markers",
              marker=dict(symbol="circle-open", size=20, color=COLORS["recommended"], line=dict(width=3)))
    if not usable:
        fig.add_annotation(text="no completed trials yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(template=TEMPLATE, height=460, margin=dict(t=50, r=20, b=50, l=60),
                      title=f"accuracy against {label}", hoverlabel=dict(align="left"),
                      xaxis=dict(type="log", title=f"{label} (log scale)"), yaxis=dict(title="accuracy (%)"))
    return fig


def _error_bars(rows: Sequence[TrialRow]) -> dict | None:
    """The rows' 95% accuracy intervals (`TrialRow.accuracy_interval`, in points) as plotly's
    asymmetric error bars; None when no row has one (a study recorded without test samples)."""
    intervals = [r.accuracy_interval for r in rows]
    if not any(finite(low) for low, _ in intervals):
        return None
    acc = [100 * r.metrics["accuracy"] for r in rows]
    return dict(type="data", symmetric=False, thickness=1, width=3,
                array=[100 * high - a if finite(high) else None for a, (_, high) in zip(acc, intervals)],
                arrayminus=[a - 100 * low if finite(low) else None for a, (low, _) in zip(acc, intervals)])


def width_profile_figure(view: ReportView) -> go.Figure | None:
    """Channels per layer group of the Pareto search trials (and the recommended one) and the
    baseline's; None when no trial has widths."""
    rows, best = view.rows, view.best
    base_widths = (view.baseline.widths or view.baseline.base_widths) if view.baseline is not None else None
    chosen = [i for i in view.front if not rows[i].is_baseline and rows[i].widths]
    if best is not None and best not in chosen and rows[best].widths:
        chosen.append(best)
    if not chosen and not base_widths:
        return None
    base_widths = base_widths or next((rows[i].base_widths for i in chosen if rows[i].base_widths), None)
    n = len(base_widths or rows[chosen[0]].widths)
    names = group_names(view.rows, n)
    fig = go.Figure()
    if base_widths:
        fig.add_trace(go.Scatter(name="baseline", x=names, y=base_widths, mode="lines+markers",
                                 customdata=[[-1]] * n, line=dict(color="black", dash="dash", width=2),
                                 hovertemplate="baseline<br>%{x}: %{y} channels<extra></extra>"))
    for i in sorted(chosen, key=lambda i: rows[i].metric("params") or 0):
        r = rows[i]
        ws = r.widths
        share = [f"{w / bw:.1%} of {bw}" if base_widths and bw else "" for w, bw in zip(ws, base_widths or ws)]
        fig.add_trace(go.Scatter(
            name=f"trial {r.label}" + (" (recommended)" if i == best else ""), x=names[:len(ws)], y=ws,
            mode="lines+markers", customdata=[[r.number, s] for s in share],
            line=dict(width=4 if i == best else 1.5, color=COLORS["recommended"] if i == best else None),
            hovertemplate=f"trial {_e(r.label)}<br>%{{x}}: %{{y}} channels (%{{customdata[1]}})<extra></extra>"))
    fig.update_layout(template=TEMPLATE, height=420, margin=dict(t=40, r=20, b=50, l=60),
                      title="channels per layer group", xaxis=dict(title="layer group"),
                      yaxis=dict(type="log", title="channels (log scale)"))
    return fig


DENSITY_TRIALS = 60
"""At most this many trials in the density menu: the baseline, the Pareto set and the recommended
trial first, then the others by number (every curve is embedded in the page)."""


def density_figure(view: ReportView) -> go.Figure | None:
    """Per-trial density curves (one line per layer group) with a menu to pick the trial; the
    compression points marked by crosses and dotted lines. None when no trial has a history."""
    rows, best, front = view.rows, view.best, view.front
    traced = [i for i, r in enumerate(rows) if r.history]
    if not traced:
        return None
    if len(traced) > DENSITY_TRIALS:
        first = [i for i in traced if rows[i].is_baseline or i in front or i == best]
        traced = sorted(first + [i for i in traced if i not in first][: max(0, DENSITY_TRIALS - len(first))])
    shown = best if best in traced else next((i for i in traced if not rows[i].is_baseline), traced[0])
    fig = go.Figure()
    owner: list[int] = []  # the row index of every trace
    for i in traced:
        r = rows[i]
        history = [h for h in r.history if isinstance(h.get("density"), dict)]
        groups = list(history[-1]["density"]) if history else []
        for g, group in enumerate(groups):
            fig.add_trace(go.Scatter(
                name=group, x=[h["epoch"] for h in history], y=[h["density"].get(group) for h in history],
                mode="lines+markers", visible=i == shown, legendgroup=group, customdata=[[r.number]] * len(history),
                line=dict(color=qualitative.Plotly[g % len(qualitative.Plotly)], width=1.5), marker=dict(size=4),
                hovertemplate=f"trial {_e(r.label)}, {_e(group)}<br>epoch %{{x}}: density %{{y:.3f}}<extra></extra>"))
            owner.append(i)
        marks = [(c, group) for c in r.compressions for group in groups if group in (c.get("density") or {})]
        if marks:
            fig.add_trace(go.Scatter(
                name="compression", x=[c["epoch"] for c, _ in marks], y=[c["density"][g] for c, g in marks],
                mode="markers", visible=i == shown, marker=dict(symbol="x", size=10, color="black"),
                customdata=[[r.number]] * len(marks),
                text=[_compression_hover(c, groups, g) for c, g in marks], hovertemplate="%{text}<extra></extra>"))
            owner.append(i)
    buttons = [dict(label=_menu_label(rows[i]), method="update",
                    args=[{"visible": [o == i for o in owner]},
                          {"shapes": _compression_lines(rows[i]), "title.text": _density_title(rows[i])}])
               for i in traced]
    fig.update_layout(template=TEMPLATE, height=440, margin=dict(t=90, r=20, b=50, l=60),
                      title=dict(text=_density_title(rows[shown]), x=0.5, xanchor="center"),
                      shapes=_compression_lines(rows[shown]),
                      xaxis=dict(title="epoch", dtick=1 if len(rows[shown].history) <= 30 else None),
                      yaxis=dict(title="activation density", rangemode="tozero"),
                      updatemenus=[dict(buttons=buttons, active=traced.index(shown), x=0, xanchor="left",
                                        y=1.2, yanchor="top", direction="down")])
    return fig


def _compression_lines(row: TrialRow) -> list[dict]:
    return [dict(type="line", xref="x", yref="paper", x0=c["epoch"], x1=c["epoch"], y0=0, y1=1,
                 line=dict(color="grey", dash="dot", width=1)) for c in row.compressions]


def _compression_hover(c: dict, groups: list[str], group: str) -> str:
    k = groups.index(group)
    before, after = c.get("widths_before") or [], c.get("widths_after") or []
    change = f"{before[k]} → {after[k]} channels" if k < len(before) and k < len(after) else ""
    return (f"round {c.get('round')} at epoch {c.get('epoch')}<br>{_e(group)}: density "
            f"{c['density'][group]:.3f}, {change}<br>params after: {count(c.get('params'))}")


def _density_title(row: TrialRow) -> str:
    rounds = len(row.compressions)
    return f"trial {row.label}: {rounds} compression round{'s' if rounds != 1 else ''}"


def _menu_label(row: TrialRow) -> str:
    return f"trial {row.label} ({percent(row.metric('accuracy'))}, {count(row.metric('params'))} params)"


def _hover(view: ReportView, row: TrialRow) -> str:
    lines = [f"<b>trial {_e(row.label)}</b>"]
    if not row.is_baseline and view.grouped_by_arm:
        lines.append(f"arm: {_e(view.arm(row))}")
    if not row.is_baseline:
        lines += [f"{_e(p)} = {_e(value(row.settings.get(p)))}" for p in view.paths]
    drop = view.drop(row)
    lines.append(f"accuracy {accuracy_text(row)}"
                 + (f" ({against_baseline(drop, 'pts')} the baseline)" if not row.is_baseline and drop is not None
                    else ""))
    for cost, label in (("params", "params"), ("macs", "MACs"), ("train_macs", "train MACs")):
        lines.append(f"{label} {_e(view.cost_text(row, cost))}")
    lines.append(f"widths {_e(widths(row.widths))}")
    return "<br>".join(lines)


def _e(text) -> str:
    """Hover and legend text is HTML to Plotly: escaped as the page's text is."""
    return html.escape(str(text), quote=True)
