"""`plots/pareto_<cost>.png`: accuracy against a cost, drawn with matplotlib from a `ReportView`."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adsearch.metrics import COSTS, finite, points
from adsearch.results.plot_data import pair_front, plottable
from adsearch.results.view import ReportView


def plot_front(path: Path, view: ReportView, cost: str) -> None:
    """`front_figure(view, cost)` written as PNG to `path`."""
    front_figure(view, cost).savefig(path, format="png")


def front_figure(view: ReportView, cost: str) -> Figure:
    """Accuracy against `cost` (log axis): the plottable trials (`ReportView.plottable`), their front
    in this pair joined by a line and labelled, the baseline (star) with the lowest accuracy a
    recommendation may have (dashed), the recommended trial (ring). A study of several arms
    (`ReportView.grouped_by_arm`) colours each arm's trials and rings the front in orange."""
    grouped = view.grouped_by_arm
    fig = Figure(figsize=(9, 4.5) if grouped else (7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    label = COSTS.get(cost, cost)
    rows = view.rows
    usable = plottable(view.rows, cost)

    def xy(indices):
        return [rows[i].metrics[cost] for i in indices], [100 * rows[i].metrics["accuracy"] for i in indices]

    if not usable:
        ax.text(0.5, 0.5, "no completed trials yet", ha="center", va="center", transform=ax.transAxes)
    else:
        front = pair_front(view.rows, cost)
        bars = [i for i in usable if finite(rows[i].accuracy_interval[0])]
        if bars:  # each accuracy's 95% interval (Wilson, from its test samples), under the markers
            x, y = xy(bars)
            low, high = zip(*(rows[i].accuracy_interval for i in bars))
            ax.errorbar(x, y, yerr=[[a - 100 * lo for a, lo in zip(y, low)], [100 * hi - a for a, hi in zip(y, high)]],
                        fmt="none", ecolor="0.55", elinewidth=0.8, capsize=2, alpha=0.7, zorder=1,
                        label="95% interval")
        if grouped:
            for arm in view.arms():
                mine = [i for i in usable if not rows[i].is_baseline and view.arm(rows[i]) == arm]
                if mine:
                    ax.scatter(*xy(mine), s=26, color=view.arm_color(arm), alpha=0.85, label=arm, zorder=2)
            ax.plot(*xy(front), "-o", color="tab:orange", ms=9, mfc="none", mew=1.8, lw=1.5, label="Pareto front",
                    zorder=3)
        else:
            ax.scatter(*xy([i for i in usable if not rows[i].is_baseline]), s=22, color="tab:blue", alpha=0.55,
                       label="trials", zorder=2)
            ax.plot(*xy(front), "-o", color="tab:orange", ms=5, lw=1.5, label="Pareto front", zorder=3)
        for i in front:
            ax.annotate(rows[i].label, (rows[i].metrics[cost], 100 * rows[i].metrics["accuracy"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
        base = next((i for i in usable if rows[i] is view.baseline), None)
        if base is not None:
            ax.scatter(*xy([base]), marker="*", s=180, color="tab:red", label="baseline", zorder=4)
            floor = 100 * (view.baseline.metrics["accuracy"] - view.max_drop)
            ax.axhline(floor, color="tab:red", lw=0.8, ls="--", alpha=0.6,
                       label=f"baseline − {points(view.max_drop)} pts")
        if view.best is not None and view.best in usable:
            ax.scatter(*xy([view.best]), s=160 if not grouped else 260, facecolors="none", edgecolors="tab:green",
                       linewidths=2, label=f"recommended (trial {view.recommended.label})", zorder=5)
        ax.set_xscale("log")
        if grouped:  # the arms' names are long: the legend beside the plot, not over its points
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
        else:
            ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel(f"{label} (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{view.name}: accuracy against {label}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig
