"""The study report: `trials.csv`, `pareto.csv`, `report.md`, `report.html` and the plots in `plots/`.

`write_report(study_dir, spec, rows)` turns the study's trial rows (plain dicts, one per trial,
the baseline with number -1) into files. Every file is written to a temporary file in its own
directory and moved into place (`records.atomic_write`), so a reader never sees half a file.
The Pareto front is taken over `spec.search.objectives` among all completed rows, the baseline
included: a search trial the baseline dominates is not a trade-off worth reporting.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adsearch.pareto import baseline_index, objective_pairs, pareto_front, recommended
from adsearch.records import SPEC_FILE, StudyRecord, atomic_write, read_study
from adsearch.spec import METRICS, StudySpec

STATES = ("done", "running", "interrupted")

FIXED_COLUMNS = ("number", "role", "state", "error")
METRIC_COLUMNS = ("accuracy", "top5", "loss", "params", "macs", "train_macs", "latency_ms", "wall_s",
                  "params_ratio", "macs_ratio", "train_macs_ratio", "accuracy_drop", "epoch", "epochs",
                  "rounds")
"""Metric columns in table order; those in `METRICS` always appear, the others when a row has them."""
WIDTH_COLUMNS = ("widths", "base_widths")

PLOTS = {"params": "parameters", "macs": "inference MACs", "train_macs": "training MACs"}
"""Cost metrics plotted against accuracy, as `plots/pareto_<metric>.png`."""


def write_report(study_dir: Path, spec: StudySpec, rows: list[dict], *, state: str = "done") -> dict[str, Path]:
    """Write the tables, plots and Markdown report of a study into `study_dir`.

    Args:
        study_dir: the study's directory (made if missing).
        spec: the study spec (objectives, search space, report settings).
        rows: one dict per trial (see `adsearch.records.collect_rows`), in any order.
        state: 'done', 'running' or 'interrupted', shown in the report's title.

    Returns:
        The files written, by their path relative to `study_dir` ('trials.csv', 'pareto.csv',
        'report.md', 'plots/pareto_params.png', ...).

    Raises:
        ValueError: for an unknown `state`.
    """
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    study_dir = Path(study_dir)
    rows = sort_rows(rows)
    columns = table_columns(rows, spec)
    front = pareto_front(rows, spec.search.objectives)
    best = recommended(rows, spec.report.max_accuracy_drop)
    files: dict[str, Path] = {}

    def put(name: str, write: Callable[[Path], None]) -> None:
        files[name] = atomic_write(study_dir / name, write)

    put("trials.csv", lambda p: p.write_text(csv_text(rows, columns)))
    put("pareto.csv", lambda p: p.write_text(csv_text([rows[i] for i in front], columns)))
    for metric in PLOTS:
        if metric == "params" or any(_finite(r.get(metric)) for r in rows):
            put(f"plots/pareto_{metric}.png", lambda p, m=metric: plot_front(p, rows, m, spec, best))
    put("report.md", lambda p: p.write_text(markdown(spec, rows, front, best, state, plots=files)))
    put("report.html", lambda p: p.write_text(_html(study_dir, spec, rows, front, best, state), encoding="utf-8"))
    return files


def build_report(study_dir: Path | str) -> tuple[StudyRecord, dict[str, Path]]:
    """(Re)build the report of the study in `study_dir` from what is on disk: any state, running too.

    Returns:
        The study as read, and the files written (see `write_report`).

    Raises:
        AdsearchError: no study there (the message lists the studies next to it).
    """
    record = read_study(study_dir)
    return record, write_report(record.directory, record.spec, record.rows, state=record.state)


def _html(study_dir: Path, spec: StudySpec, rows: list[dict], front: list[int], best: int | None, state: str) -> str:
    from adsearch.report_html import html_page  # plotly is only needed here

    spec_file = study_dir / SPEC_FILE
    spec_text = spec_file.read_text() if spec_file.is_file() else yaml.safe_dump(spec.model_dump(mode="json"),
                                                                                  sort_keys=False)
    return html_page(spec, rows, front, best, state, spec_text)


# --- tables ----------------------------------------------------------------------------------


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


TRACE_KEYS = ("history", "compressions")
"""Per-trial traces (per-epoch records, compression rounds): in the HTML report, not in the CSVs."""


def sort_rows(rows: Sequence[dict]) -> list[dict]:
    """The baseline first, then the search trials by number (rows without a number last)."""
    def key(row):
        number = row.get("number")
        return (row.get("role") != "baseline", not _finite(number), number if _finite(number) else 0)

    return sorted(rows, key=key)


def table_columns(rows: Sequence[dict], spec: StudySpec) -> list[str]:
    """trials.csv's columns: fixed, then `param:` columns, metrics, any other keys, widths."""
    seen = [k for row in rows for k in row]
    params = [f"param:{p}" for p in spec.search.space]
    params += [k for k in dict.fromkeys(seen) if k.startswith("param:") and k not in params]
    metrics = [m for m in METRIC_COLUMNS if m in METRICS or m in seen]
    known = set(FIXED_COLUMNS) | set(params) | set(metrics) | set(WIDTH_COLUMNS) | set(TRACE_KEYS)
    extra = [k for k in dict.fromkeys(seen) if k not in known]
    return [*FIXED_COLUMNS, *params, *metrics, *extra, *WIDTH_COLUMNS]


def csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Rows as CSV: lists and mappings as JSON text, None and non-finite numbers empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


# --- numbers for people ----------------------------------------------------------------------


def count(n) -> str:
    """1150000 -> '1.15M', 9.5e6 -> '9.50M', 4.1e10 -> '41.0G', 512 -> '512'."""
    if not _finite(n):
        return "—"
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return _three_digits(n / size) + unit
    return str(int(n)) if float(n).is_integer() else _three_digits(n)


def _three_digits(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}" if abs(x) < 100 else f"{x:.0f}"


def percent(x) -> str:
    """0.9861 -> '98.6%'."""
    return f"{100 * x:.1f}%" if _finite(x) else "—"


def points(x) -> str:
    """An accuracy difference in percentage points: 0.004 -> '0.4', -0.002 -> '-0.2'."""
    return f"{100 * x:.1f}" if _finite(x) else "—"


def against_baseline(drop, unit: str = "points") -> str:
    """An accuracy drop said the right way round: 0.003 -> '0.3 points below', -0.003 -> '0.3 points above'."""
    if not _finite(drop):
        return "—"
    if round(100 * drop, 1) == 0:
        return "level with"
    return f"{points(abs(drop))} {unit} {'below' if drop > 0 else 'above'}"


def seconds(s) -> str:
    """12.3 -> '12.3 s', 185 -> '3m 05s', 3725 -> '1h 02m'."""
    if not _finite(s):
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(int(round(s)), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def factor(row: dict, metric: str, baseline: dict | None) -> str:
    """How many times fewer than the baseline: 1 / `<metric>_ratio`, e.g. '50.0x fewer'."""
    ratio = row.get(f"{metric}_ratio")
    if not _finite(ratio) and baseline and _finite(row.get(metric)) and _finite(baseline.get(metric)):
        ratio = row[metric] / baseline[metric] if baseline[metric] else None
    if not _finite(ratio) or ratio <= 0:
        return ""
    return f"{1 / ratio:.1f}x fewer" if ratio <= 1 else f"{ratio:.2f}x more"


def _with_factor(row: dict, metric: str, baseline: dict | None) -> str:
    f = factor(row, metric, baseline) if row is not baseline else ""
    return count(row.get(metric)) + (f" ({f})" if f else "")


def value(v) -> str:
    """A searched parameter's value: lists as [5, 10], floats to 3 significant digits."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return str(v)


def widths(ws) -> str:
    """[8, 16, 32] -> '8/16/32'."""
    return "/".join(str(w) for w in ws) if isinstance(ws, (list, tuple)) and ws else "—"


def _drop(row: dict, baseline: dict | None):
    drop = row.get("accuracy_drop")
    if not _finite(drop) and baseline and _finite(row.get("accuracy")):
        drop = baseline["accuracy"] - row["accuracy"]
    return drop


def _trial_name(row: dict) -> str:
    return "baseline" if row.get("role") == "baseline" else str(row.get("number", "?"))


def _md(text) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(_md(c) for c in r) + " |" for r in body]


# --- report.md -------------------------------------------------------------------------------


def markdown(spec: StudySpec, rows: list[dict], front: list[int], best: int | None, state: str,
             plots: dict[str, Path] | None = None) -> str:
    """The Markdown report of a study (rows sorted as in trials.csv)."""
    b = baseline_index(rows)
    baseline = rows[b] if b is not None else None
    search = [r for r in rows if r.get("role") == "search"]
    failed = [r for r in search if r.get("state") == "FAIL"]
    complete = [r for r in search if r.get("state") == "COMPLETE"]
    running = [r for r in search if r.get("state") == "RUNNING"]
    params = list(spec.search.space)
    objectives = ", ".join(f"{m} ({mode})" for m, mode in objective_pairs(spec.search.objectives))

    out = [f"# Study `{spec.name}`: {state}", ""]
    summary = (f"{len(complete) + len(failed)} of {spec.search.trials} search trials done: "
               f"{len(complete)} complete, {len(failed)} failed")
    summary += f", {len(running)} {'running' if state == 'running' else 'unfinished'}." if running else "."
    out += [summary + f" Objectives: {objectives}. Spec digest `{spec.digest()}`.", ""]

    out += ["## Baseline", ""]
    if baseline is None:
        out += ["No baseline (the same recipe without pruning) was run, so there are no ratios and no "
                "recommended trade-off.", ""]
    else:
        out += _table(["accuracy", "params", "MACs", "train MACs", "wall time", "widths"],
                      [[percent(baseline.get("accuracy")), count(baseline.get("params")),
                        count(baseline.get("macs")), count(baseline.get("train_macs")),
                        seconds(baseline.get("wall_s")),
                        widths(baseline.get("widths") or baseline.get("base_widths"))]]) + [""]

    out += ["## Pareto front", ""]
    if front:
        out += [f"{len(front)} non-dominated trials over {objectives}, the baseline included when on the "
                f"front; accuracy drop in percentage points below the baseline.", ""]
        header = ["trial", *params, "accuracy", "drop (pts)", "params", "MACs", "train MACs", "wall time", "widths"]
        out += _table(header, [_front_cells(rows[i], params, baseline, i == best) for i in front]) + [""]
    else:
        out += ["No completed trial yet.", ""]

    out += ["## Recommended trade-off", ""]
    out += [_recommendation(spec, rows, best, baseline, params), ""]

    if failed:
        out += ["## Failed trials", ""]
        out += _table(["trial", *params, "error"],
                      [[_trial_name(r), *(value(r.get(f"param:{p}")) for p in params),
                        r.get("error") or "(no message)"] for r in failed]) + [""]

    out += ["## Plots", ""]
    for metric, label in PLOTS.items():
        name = f"plots/pareto_{metric}.png"
        if plots is None or name in plots:
            out += [f"![accuracy against {label}]({name})", ""]
    out += ["Interactive plots, per-layer widths and density curves: `report.html`. "
            "All trials: `trials.csv`; the front: `pareto.csv`.", ""]
    return "\n".join(out)


def _front_cells(r: dict, params: list[str], baseline: dict | None, is_recommended: bool) -> list[str]:
    return [_trial_name(r) + (" (recommended)" if is_recommended else ""),
            *(value(r.get(f"param:{p}")) for p in params), percent(r.get("accuracy")), points(_drop(r, baseline)),
            _with_factor(r, "params", baseline), _with_factor(r, "macs", baseline),
            _with_factor(r, "train_macs", baseline), seconds(r.get("wall_s")), widths(r.get("widths"))]


def _recommendation(spec: StudySpec, rows: list[dict], best: int | None, baseline: dict | None,
                    params: list[str]) -> str:
    limit = spec.report.max_accuracy_drop
    if baseline is None:
        return "None: there is no baseline to compare against."
    if best is None:
        done = [r for r in rows if r.get("role") == "search" and r.get("state") == "COMPLETE"
                and _finite(r.get("accuracy"))]
        text = (f"**None qualifies**: no completed search trial is within {points(limit)} points of the "
                f"baseline's accuracy ({percent(baseline['accuracy'])}).")
        if done:
            top = max(done, key=lambda r: r["accuracy"])
            text += (f" The most accurate is trial {_trial_name(top)} at {percent(top['accuracy'])} with "
                     f"{_with_factor(top, 'params', baseline)} params.")
        return text
    r = rows[best]
    chosen = ", ".join(f"`{p}` = {value(r.get(f'param:{p}'))}" for p in params)
    return (f"**Trial {_trial_name(r)}**: the fewest parameters with accuracy within {points(limit)} points "
            f"of the baseline. Accuracy {percent(r.get('accuracy'))} ({against_baseline(_drop(r, baseline))} "
            f"the baseline's {percent(baseline['accuracy'])}); params {_with_factor(r, 'params', baseline)}; "
            f"MACs {_with_factor(r, 'macs', baseline)}; training MACs {_with_factor(r, 'train_macs', baseline)}; "
            f"wall time {seconds(r.get('wall_s'))}; widths {widths(r.get('widths'))}"
            + (f". Searched: {chosen}." if chosen else "."))


# --- text for the terminal: `adsearch ls` and `adsearch show` --------------------------------


def text_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """Plain aligned columns (two spaces apart), for a terminal or a log."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in body]
    width = [max(len(r[k]) for r in cells) for k in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in cells]


def study_line(record: StudyRecord) -> list[str]:
    """One `adsearch ls` row: name, state, search trials done/total, baseline accuracy, recommended."""
    rows = sort_rows(record.rows)
    b = baseline_index(rows)
    best = recommended(rows, record.spec.report.max_accuracy_drop)
    if best is not None:
        r = rows[best]
        pick = f"trial {_trial_name(r)}: {percent(r.get('accuracy'))}, {_with_factor(r, 'params', rows[b])} params"
    else:
        pick = "—" if b is None else f"none within {points(record.spec.report.max_accuracy_drop)} pts"
    return [record.name, record.state, f"{record.trials_done}/{record.trials_total}",
            percent(rows[b].get("accuracy")) if b is not None else "—", pick]


STUDY_HEADER = ("study", "state", "trials", "baseline", "recommended")


def study_text(record: StudyRecord) -> str:
    """`adsearch show reports/<name>`: the study at a glance, every trial, the failures."""
    spec = record.spec
    rows = sort_rows(record.rows)
    front = set(pareto_front(rows, spec.search.objectives))
    best = recommended(rows, spec.report.max_accuracy_drop)
    b = baseline_index(rows)
    baseline = rows[b] if b is not None else None
    params = list(spec.search.space)
    objectives = ", ".join(f"{m} ({mode})" for m, mode in objective_pairs(spec.search.objectives))
    search = record.search_rows
    failed = [r for r in rows if r.get("state") == "FAIL"]
    complete = sum(r["state"] == "COMPLETE" for r in search)
    out = [f"study {spec.name}: {record.state} ({record.directory})",
           f"search: {record.trials_done} of {record.trials_total} trials done ({complete} complete, "
           f"{len(failed)} failed); sampler {spec.search.sampler}; objectives {objectives}"]
    if baseline is not None:
        out.append(f"baseline: accuracy {percent(baseline.get('accuracy'))}, params {count(baseline.get('params'))}, "
                   f"MACs {count(baseline.get('macs'))}, train MACs {count(baseline.get('train_macs'))}, "
                   f"widths {widths(baseline.get('widths') or baseline.get('base_widths'))}")
    else:
        out.append("baseline: none yet")
    out.append("recommended: " + _recommendation(spec, rows, best, baseline, params).replace("**", "").replace("`", ""))
    out += ["", f"trials (* on the Pareto front over {objectives}, > recommended):"]
    header = ["", "trial", "state", *(p.rsplit(".", 1)[-1] for p in params), "accuracy", "drop", "params", "MACs",
              "train MACs", "rounds", "widths"]
    body = [["".join(m for m, on in (("*", i in front), (">", i == best)) if on), _trial_name(r), r.get("state", ""),
             *(value(r.get(f"param:{p}")) for p in params), percent(r.get("accuracy")),
             points(_drop(r, baseline)) if r.get("role") == "search" else "", _with_factor(r, "params", baseline),
             count(r.get("macs")), count(r.get("train_macs")), value(r.get("rounds")), widths(r.get("widths"))]
            for i, r in enumerate(rows)]
    out += text_table(header, body)
    if failed:
        out += ["", "failed:"] + [f"  trial {_trial_name(r)}: {r.get('error') or '(no message)'}" for r in failed]
    out += ["", f"one trial: adsearch show {record.directory} --trial N; the report: {record.directory / 'report.html'}"]
    return "\n".join(out)


def trial_text(record: StudyRecord, row: dict) -> str:
    """`adsearch show reports/<name> --trial N`: settings, metrics, widths, rounds, per-epoch history."""
    spec = record.spec
    rows = sort_rows(record.rows)
    b = baseline_index(rows)
    baseline = rows[b] if b is not None else None
    name = _trial_name(row)
    front = [rows[i]["number"] for i in pareto_front(rows, spec.search.objectives)]
    unfinished = row.get("state") == "RUNNING" and record.state != "running"
    out = [f"trial {name} of study {spec.name}: {row.get('state')}"
           + (" (on the Pareto front)" if row.get("number") in front else "")
           + (f" (unfinished: the study is {record.state})" if unfinished else "")]
    params = list(spec.search.space)
    if row.get("role") == "search":
        out.append("settings: " + (", ".join(f"{p} = {value(row.get(f'param:{p}'))}" for p in params) or "none"))
    else:
        out.append("settings: the base spec with pruning off")
    if row.get("state") == "FAIL":
        out.append(f"error: {row.get('error') or '(no message recorded)'}")
    if not _finite(row.get("accuracy")):
        return "\n".join(out + ["no results yet" if row.get("state") != "FAIL" else ""]).rstrip()
    drop = _drop(row, baseline)
    out.append(f"accuracy {percent(row.get('accuracy'))}"
               + (f" ({against_baseline(drop, 'pts')} the baseline)" if row.get("role") == "search" and _finite(drop) else "")
               + f", top-5 {percent(row.get('top5'))}, loss {value(row.get('loss'))}")
    out.append(f"params {_with_factor(row, 'params', baseline)}, MACs {_with_factor(row, 'macs', baseline)}, "
               f"train MACs {_with_factor(row, 'train_macs', baseline)}, latency {value(row.get('latency_ms'))} ms, "
               f"wall time {seconds(row.get('wall_s'))}")
    ws, base = row.get("widths") or [], row.get("base_widths") or []
    history = row.get("history") or []
    groups = _groups_of(history, len(ws))
    out += ["", f"widths ({len(ws)} layer groups):"]
    out += text_table(["group", "width", "baseline", "kept"],
                      [[g, w, bw, f"{w / bw:.1%}" if bw else ""] for g, w, bw in zip(groups, ws, base or ws)])
    compressions = row.get("compressions") or []
    out += ["", f"compression rounds: {len(compressions)}"]
    if compressions:
        out += text_table(["round", "epoch", "widths before", "widths after", "params after", "MACs after"],
                          [[c.get("round"), c.get("epoch"), widths(c.get("widths_before")), widths(c.get("widths_after")),
                            count(c.get("params")), count(c.get("macs"))] for c in compressions])
    if history:
        out += ["", "history (density: mean activation density per layer group):"]
        cut = {c.get("epoch") for c in compressions}
        out += text_table(["epoch", "lr", "train loss", "loss", "accuracy", "params", "MACs", "widths", "density"],
                          [[f"{h.get('epoch')}{'*' if h.get('epoch') in cut else ''}", value(h.get("lr")),
                            value(h.get("train_loss")), value(h.get("loss")), percent(h.get("accuracy")),
                            count(h.get("params")), count(h.get("macs")), widths(h.get("widths")),
                            " ".join(f"{d:.2f}" for d in (h.get("density") or {}).values())] for h in history])
        if cut:
            out.append("* compressed after this epoch")
    return "\n".join(out)


def _groups_of(history: list[dict], n: int) -> list[str]:
    for h in reversed(history):
        names = list((h.get("density") or {}).keys())
        if len(names) == n:
            return names
    return [f"group {k + 1}" for k in range(n)]


# --- plots -----------------------------------------------------------------------------------


def plot_front(path: Path, rows: list[dict], metric: str, spec: StudySpec, best: int | None) -> None:
    """Accuracy against `metric` (log axis): completed trials, their 2D front joined by a line,
    the baseline and the recommended trial marked. Written as PNG to `path`."""
    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    label = PLOTS.get(metric, metric)
    usable = [i for i, r in enumerate(rows) if r.get("state") == "COMPLETE" and _finite(r.get("accuracy"))
              and _finite(r.get(metric)) and r[metric] > 0]
    b = baseline_index(rows)
    if not usable:
        ax.text(0.5, 0.5, "no completed trials yet", ha="center", va="center", transform=ax.transAxes)
    else:
        search = [i for i in usable if rows[i].get("role") != "baseline"]
        ax.scatter([rows[i][metric] for i in search], [100 * rows[i]["accuracy"] for i in search],
                   s=22, color="tab:blue", alpha=0.55, label="trials", zorder=2)
        sub = [rows[i] for i in usable]
        front = sorted((usable[k] for k in pareto_front(sub, [("accuracy", "max"), (metric, "min")])),
                       key=lambda i: rows[i][metric])
        ax.plot([rows[i][metric] for i in front], [100 * rows[i]["accuracy"] for i in front],
                "-o", color="tab:orange", ms=5, lw=1.5, label="Pareto front", zorder=3)
        for i in front:
            ax.annotate(_trial_name(rows[i]), (rows[i][metric], 100 * rows[i]["accuracy"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
        if b is not None and b in usable:
            base = rows[b]
            ax.scatter([base[metric]], [100 * base["accuracy"]], marker="*", s=180, color="tab:red",
                       label="baseline", zorder=4)
            floor = 100 * (base["accuracy"] - spec.report.max_accuracy_drop)
            ax.axhline(floor, color="tab:red", lw=0.8, ls="--", alpha=0.6,
                       label=f"baseline − {points(spec.report.max_accuracy_drop)} pts")
        if best is not None and best in usable:
            r = rows[best]
            ax.scatter([r[metric]], [100 * r["accuracy"]], s=160, facecolors="none", edgecolors="tab:green",
                       linewidths=2, label=f"recommended (trial {_trial_name(r)})", zorder=5)
        ax.set_xscale("log")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel(f"{label} (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{spec.name}: accuracy against {label}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
