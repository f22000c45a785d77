"""`report.md`: a study's report as Markdown, rendered from its `adsearch.results.view.ReportView`."""

from __future__ import annotations

from collections.abc import Container, Sequence

from adsearch.metrics import COSTS, count, points, seconds, value, widths
from adsearch.results.rows import TrialRow
from adsearch.results.arms import ARM_INTRO, budget_text
from adsearch.results.scratch_view import MATCH_TITLES, SCRATCH_INTRO, scratch_cells, scratch_columns, scratch_verdict
from adsearch.results.sharing import sharing_summary
from adsearch.results.texts import accuracy_text
from adsearch.results.view import DROP_P, DROP_P_NOTE, ReportView, drop_p, stopped_rows, stopping_text


def markdown(view: ReportView, plots: Container[str] | None = None) -> str:
    """The Markdown report of the study in `view`.

    Args:
        view: the study (see `adsearch.results.view.report_view`).
        plots: the plot files written, by their path relative to the study
            ('plots/pareto_params.png', ...); None links every cost's plot.
    """
    spec, baseline = view.spec, view.baseline
    out = [f"# Study `{spec.name}`: {view.state}", ""]
    out += [f"{view.summary()}. Objectives: {view.objectives_text}. Spec digest `{spec.digest()}`.", ""]
    if sharing_summary(view.rows):
        out += [sharing_summary(view.rows), ""]

    out += ["## Baseline", ""]
    if baseline is None:
        out += ["No baseline (the same recipe without pruning) was run, so there are no ratios and no "
                "recommended trade-off.", ""]
    else:
        out += _table(["accuracy", "params", "MACs", "train MACs", "wall time", "widths"],
                      [[accuracy_text(baseline), count(baseline.metric("params")),
                        count(baseline.metric("macs")), count(baseline.metric("train_macs")),
                        seconds(baseline.metric("wall_s")), widths(baseline.widths or baseline.base_widths)]]) + [""]

    out += ["## Pareto front", ""]
    if view.front:
        out += [f"{len(view.front)} non-dominated trials over {view.objectives_text}, the baseline included when "
                f"on the front; accuracy drop in percentage points below the baseline"
                + (f"; {DROP_P_NOTE}." if view.paired_with_baseline else "."), ""]
        scratch = [m for m in view.scratch_matches if any(r.control(m) for r in view.front_rows)]
        header = ["trial", *(["arm"] if view.grouped_by_arm else []), *view.paths, "accuracy", "drop (pts)",
                  *([DROP_P] if view.paired_with_baseline else []), "params",
                  "MACs", "train MACs", *scratch_columns(scratch),
                  "wall time", "widths"]
        out += _table(header, [_front_cells(view, r, scratch) for r in view.front_rows]) + [""]
    else:
        out += ["No completed trial yet.", ""]

    out += ["## Recommended trade-off", "", view.recommendation, ""]

    if view.scratch_rows:
        out += ["## Against training from scratch", "", SCRATCH_INTRO, ""]
        titled = len(view.scratch_matches) > 1 or view.scratch_matches != ["epochs"]
        for match in view.scratch_matches:
            if titled:
                out += [f"**{MATCH_TITLES[match]}.**", ""]
            if summary := view.scratch_summary(match):
                out += [summary, ""]
            out += [f"- Trial {r.label}: {scratch_verdict(r, match) or 'no accuracy to compare'}."
                    for r in view.matched_rows(match)]
            out += [""]

    if view.grouped_by_arm:
        out += ["## Arms at equal parameters", "", ARM_INTRO, ""]
        table = view.arm_table()
        out += _table(["arm", *map(budget_text, view.arm_budgets())],
                      [[arm, *(c.text() for c in cells)] for arm, cells in table.items()]) + [""]
        out += [f"- {v}" for v in view.arm_verdicts()] + [""]

    if view.failed:
        out += ["## Failed trials", ""]
        out += _table(["trial", *view.paths, "error"],
                      [[r.label, *(value(r.settings.get(p)) for p in view.paths), r.error or "(no message)"]
                       for r in view.failed]) + [""]

    if stopped := stopped_rows(view):
        out += ["## Trials stopped early", "", stopping_text(view), ""]
        out += _table(["trial", *view.paths, "stopped after epoch", "accuracy there", "params there",
                       "train MACs there"],
                      [[r.label, *(value(r.settings.get(p)) for p in view.paths), str(r.stopped_at), accuracy_text(r),
                        count(r.metric("params")), count(r.metric("train_macs"))] for r in stopped]) + [""]

    out += ["## Plots", ""]
    for cost, label in COSTS.items():
        name = f"plots/pareto_{cost}.png"
        if plots is None or name in plots:
            out += [f"![accuracy against {label}]({name})", ""]
    out += ["Interactive plots, per-layer widths and density curves: `report.html`. "
            "All trials: `trials.csv`; the front: `pareto.csv`.", ""]
    return "\n".join(out)


def _front_cells(view: ReportView, r: TrialRow, scratch: list[str]) -> list[str]:
    return [r.label + (" (recommended)" if view.is_recommended(r) else ""),
            *([view.arm(r) or "—"] if view.grouped_by_arm else []),
            *(value(r.settings.get(p)) for p in view.paths), accuracy_text(r), points(view.drop(r)),
            *([drop_p(view, r)] if view.paired_with_baseline else []),
            view.cost_text(r, "params"), view.cost_text(r, "macs"), view.cost_text(r, "train_macs"),
            *(text for text, _ in scratch_cells(r, scratch)),
            seconds(r.metric("wall_s")), widths(r.widths)]


def _cell_text(text) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(_cell_text(c) for c in r) + " |" for r in body]
