"""`plots/pareto_<cost>.png`: accuracy against a cost, drawn with matplotlib from a `ReportView`."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adsearch.metrics import COSTS, points
from adsearch.view import ReportView


def plot_front(path: Path, view: ReportView, cost: str) -> None:
    """Accuracy against `cost` (log axis), written as PNG to `path`: the plottable trials
    (`ReportView.plottable`), their front in this pair joined by a line and labelled, the baseline
    (star) with the lowest accuracy a recommendation may have (dashed), the recommended trial (ring)."""
    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    label = COSTS.get(cost, cost)
    rows = view.rows
    usable = view.plottable(cost)

    def xy(indices):
        return [rows[i].metrics[cost] for i in indices], [100 * rows[i].metrics["accuracy"] for i in indices]

    if not usable:
        ax.text(0.5, 0.5, "no completed trials yet", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.scatter(*xy([i for i in usable if not rows[i].is_baseline]), s=22, color="tab:blue", alpha=0.55,
                   label="trials", zorder=2)
        front = view.pair_front(cost)
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
            ax.scatter(*xy([view.best]), s=160, facecolors="none", edgecolors="tab:green", linewidths=2,
                       label=f"recommended (trial {view.recommended.label})", zorder=5)
        ax.set_xscale("log")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel(f"{label} (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{view.name}: accuracy against {label}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
