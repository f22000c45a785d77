"""A study as plain text for a terminal or a log: `adsearch ls`, `adsearch show`, the study's
per-trial progress lines.

`study_line`, `study_text` and `trial_text` render a `adsearch.results.view.ReportView` (or a study read
from disk, `reading.StudyRecord`, whose view they take), with the running trials' epochs from their
live entries (`adsearch.results.live`); `progress_line` renders a trial a running search has just finished,
with the view's `best_so_far`. Nothing here decides what is on the front, what is recommended or
how states are counted: that is the view's.
"""

from __future__ import annotations

from collections.abc import Sequence

from adsearch.metrics import against_baseline, count, percent, points, seconds, value, widths
from adsearch.results.rows import TrialRow
from adsearch.results.arms import ARM_INTRO, budget_text
from adsearch.results.live import LiveTrial, live_trials
from adsearch.results.plot_data import group_names
from adsearch.results.scratch_view import (MATCH_TITLES, SCRATCH_INTRO, scratch_cells, scratch_columns, scratch_metric,
                                          scratch_verdict)
from adsearch.results.sharing import compute_saved, sharing_summary, sharing_text
from adsearch.results.texts import accuracy_text, cost_text, fewer, short_settings
from adsearch.results.view import DROP_P, DROP_P_NOTE, ReportView, drop_p, plain, stopped_rows, stopping_text, view_of

STUDY_HEADER = ("study", "state", "trials", "baseline", "recommended", "shared")
"""The columns of `adsearch ls`, one `study_line` per study."""


def text_table(header: Sequence[str], body: Sequence[Sequence]) -> list[str]:
    """Plain aligned columns (two spaces apart), for a terminal or a log."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in body]
    width = [max(len(r[k]) for r in cells) for k in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in cells]


def _view(study) -> ReportView:
    return study if isinstance(study, ReportView) else view_of(study)


# --- adsearch ls -----------------------------------------------------------------------------


def study_line(study) -> list[str]:
    """One `adsearch ls` row (`STUDY_HEADER`) of a view or a `StudyRecord`: name, state (with the
    running trials' progress: `live_state`), search trials done/total, the baseline's accuracy, the
    recommended trade-off."""
    view = _view(study)
    best, baseline = view.recommended, view.baseline
    if best is not None:
        pick = f"trial {best.label}: {percent(best.metric('accuracy'))}, {view.cost_text(best, 'params')} params"
    else:
        pick = "—" if baseline is None else f"none within {points(view.max_drop)} pts"
    return [view.name, live_state(view), f"{view.counts.done}/{view.spec.search.trials}",
            percent(baseline.metric("accuracy")) if baseline is not None else "—", pick,
            compute_saved(view.rows) or "—"]


def live_state(view: ReportView) -> str:
    """The study's state with its running trials' progress: 'running: trial 5 epoch 7/20',
    'running: 3 trials, trial 5 epoch 7/20' (the one furthest on), and for a study that no longer
    runs but whose run left trials unfinished, 'interrupted: trial 5 stopped at epoch 7/20'."""
    trials = live_trials(view.live)
    if not trials:
        return view.state
    ahead = max(trials, key=lambda t: (t.epoch / max(t.epochs, 1), -t.number))
    if view.state == "running":
        return f"running: {f'{len(trials)} trials, ' if len(trials) > 1 else ''}{ahead.progress}"
    where = f"at epoch {ahead.epoch}/{ahead.epochs}"
    return f"{view.state}: " + (f"{len(trials)} trials stopped, {ahead.label} {where}" if len(trials) > 1
                                else f"{ahead.label} stopped {where}")


# --- adsearch show ---------------------------------------------------------------------------


def study_text(study) -> str:
    """`adsearch show reports/<name>`: the study at a glance, every trial, the failures."""
    view = _view(study)
    spec, baseline, directory = view.spec, view.baseline, view.directory
    out = [f"study {spec.name}: {view.state} ({directory})",
           f"search: {view.counts.done} of {spec.search.trials} trials done ({view.counts_text()}); "
           f"sampler {spec.search.sampler}; objectives {view.objectives_text}"]
    if baseline is not None:
        out.append(f"baseline: accuracy {percent(baseline.metric('accuracy'))}, params {count(baseline.metric('params'))}, "
                   f"MACs {count(baseline.metric('macs'))}, train MACs {count(baseline.metric('train_macs'))}, "
                   f"widths {widths(baseline.widths or baseline.base_widths)}")
    else:
        out.append("baseline: none yet")
    out.append("recommended: " + plain(view.recommendation))
    if sharing_summary(view.rows):
        out.append(sharing_summary(view.rows))
    out += _live_text(view)
    out += ["", f"trials (* on the Pareto front over {view.objectives_text}, > recommended):"]
    grouped, scratch = view.grouped_by_arm, view.scratch_matches
    paired = view.paired_with_baseline
    header = ["", "trial", "state", *(["arm"] if grouped else []), *_short_names(view.paths), "accuracy", "drop",
              *([DROP_P] if paired else []), "params", "MACs", "train MACs", *scratch_columns(scratch), "rounds",
              "widths", "shared"]
    body = [["".join(m for m, on in (("*", view.on_front(r)), (">", view.is_recommended(r))) if on), r.label, r.state_text,
             *([view.arm(r) or ""] if grouped else []),
             *(value(r.settings.get(p)) for p in view.paths), accuracy_text(r),
             "" if r.is_baseline else points(view.drop(r)), *([drop_p(view, r)] if paired else []),
             view.cost_text(r, "params"),
             count(r.metric("macs")), count(r.metric("train_macs")),
             *(text for text, _ in scratch_cells(r, scratch)), value(r.metric("rounds")), widths(r.widths), sharing_text(r)]
            for r in view.rows]
    out += text_table(header, body)
    if paired:
        out.append(DROP_P_NOTE)
    if scratch:
        out += ["", "against training from scratch: " + plain(SCRATCH_INTRO)]
        for match in scratch:
            if scratch != ["epochs"]:
                out.append(f"{MATCH_TITLES[match].lower()}:")
            if summary := view.scratch_summary(match):
                out += [plain(summary)]
            out += [f"  trial {r.label}: {scratch_verdict(r, match) or 'no accuracy to compare'}"
                    for r in view.matched_rows(match)]
    if grouped:
        out += ["", "arms at equal parameters: " + plain(ARM_INTRO)]
        out += text_table(["arm", *map(budget_text, view.arm_budgets())],
                          [[arm, *(c.text() for c in cells)] for arm, cells in view.arm_table().items()])
        out += [f"  {v}" for v in view.arm_verdicts()]
    if view.failed:
        out += ["", "failed:"] + [f"  trial {r.label}: {r.error or '(no message)'}" for r in view.failed]
    if stopped_rows(view):
        out += ["", plain(stopping_text(view))]
    out += ["", f"one trial: adsearch show {directory} --trial N; the report: {directory / 'report.html'}"
            if directory is not None else ""]
    return "\n".join(out).rstrip()


def _live_text(view: ReportView) -> list[str]:
    """`show`'s part on the running trials, from their live entries: a line each while the study
    runs (the words a run prints), or where its last run left each unfinished trial."""
    trials = live_trials(view.live)
    if not trials:
        return []
    if view.state == "running":
        return ["", "running:"] + [f"  {_running_text(t)}" for t in trials]
    return ["", f"left unfinished by the last run (the study is {view.state}):"] + [f"  {t.stopped_text()}"
                                                                                   for t in trials]


def _live_trial(view: ReportView, row: TrialRow) -> LiveTrial | None:
    """The live entry of search trial `row` while it is unfinished, if it has one."""
    if row.finished or row.is_baseline:
        return None
    return next((t for t in live_trials(view.live) if t.kind == "search" and t.number == row.number), None)


def _running_text(trial: LiveTrial) -> str:
    """A running trial's line, said to be quiet when its entry has not changed for long."""
    return trial.text() + (f" (no update for {seconds(trial.quiet_s)})" if trial.quiet else "")


def _short_names(paths: Sequence[str]) -> list[str]:
    """Column names for searched paths: the last part ('target_density'), the whole path where the last
    part is taken ('pruning.widths' beside the trials' own widths column)."""
    taken = {"trial", "state", "arm", "accuracy", "drop", "params", "MACs", "train MACs", "rounds", "widths", "shared"}
    lasts = [p.rsplit(".", 1)[-1] for p in paths]
    return [p if last in taken or lasts.count(last) > 1 else last for p, last in zip(paths, lasts)]


def trial_text(study, row: TrialRow) -> str:
    """`adsearch show reports/<name> --trial N`: settings, metrics, widths, rounds, per-epoch history
    of `row`, a trial of the study (a view or a `StudyRecord`)."""
    view = _view(study)
    row = next((r for r in view.rows if r.number == row.number), row)  # a replicated trial: its means
    unfinished = not row.finished and view.state != "running"
    out = [f"trial {row.label} of study {view.name}: {row.state}"
           + (" (on the Pareto front)" if view.on_front(row) else "")
           + (f" (unfinished: the study is {view.state})" if unfinished else "")]
    if row.is_baseline:
        out.append("settings: the base spec with pruning off")
    else:
        out.append("settings: " + (view.settings_text(row) or "none"))
    if row.state == "FAIL":
        out.append(f"error: {row.error or '(no message recorded)'}")
    if row.stopped:
        out.append(f"stopped early after epoch {row.stopped_at} of {view.spec.train.epochs} by search.early_stop "
                   "(it ranked in the worse part of the trials at that epoch); the metrics below are that "
                   "epoch's, and it is not a point of the front")
    if (live := _live_trial(view, row)) is not None:
        out.append(f"running: {_running_text(live)}" if view.state == "running"
                   else f"last run: {live.stopped_text()}")
    if not row.has("accuracy"):
        return "\n".join(out + ["no results yet" if row.state != "FAIL" else ""]).rstrip()
    drop, test = view.drop(row), view.baseline_test(row)
    out.append(f"accuracy {accuracy_text(row)}"
               + (f" ({against_baseline(drop, 'pts')} the baseline" + (f"; {test.text()}" if test else "") + ")"
                  if not row.is_baseline and drop is not None else "")
               + f", top-5 {percent(row.metric('top5'))}, loss {value(row.metric('loss'))}")
    if row.seeds:
        out.append("accuracy by seed: " + ", ".join(f"seed {s} {percent(a)}" for s, a in row.seeds.items())
                   + " (metrics above: means over them)")
    out.append(f"params {view.cost_text(row, 'params')}, MACs {view.cost_text(row, 'macs')}, "
               f"train MACs {view.cost_text(row, 'train_macs')}, latency {value(row.metric('latency_ms'))} ms, "
               f"wall time {seconds(row.metric('wall_s'))}")
    if not row.is_baseline and view.grouped_by_arm:
        out.append(f"arm: {view.arm(row)}")
    if row.scratch:
        out.append(f"scratch control (these widths trained from scratch, same recipe and epochs): accuracy "
                   f"{percent(scratch_metric(row, 'accuracy'))} (this trial {percent(row.metric('accuracy'))}), "
                   f"train MACs {count(scratch_metric(row, 'train_macs'))} "
                   f"(this trial {count(row.metric('train_macs'))})")
        out.append(f"against scratch: {scratch_verdict(row) or 'no accuracy to compare'}")
    if row.scratch_compute:
        out.append(f"equal-compute scratch control (these widths trained from scratch for "
                   f"{value(scratch_metric(row, 'epoch', 'compute'))} epochs): accuracy "
                   f"{percent(scratch_metric(row, 'accuracy', 'compute'))}, train MACs "
                   f"{count(scratch_metric(row, 'train_macs', 'compute'))}")
        out.append(f"against scratch at equal compute: {scratch_verdict(row, 'compute') or 'no accuracy to compare'}")
    if sharing_text(row):
        out.append(f"shared: {sharing_text(row)}; the study ran {count(row.metric('spent_train_macs'))} training MACs "
                   f"in {seconds(row.metric('spent_s'))} for it")
    ws, base = row.widths or [], row.base_widths or []
    groups = group_names(view.rows, len(ws), row)
    out += ["", f"widths ({len(ws)} layer groups):"]
    out += text_table(["group", "width", "baseline", "kept"],
                      [[g, w, bw, f"{w / bw:.1%}" if bw else ""] for g, w, bw in zip(groups, ws, base or ws)])
    compressions = row.compressions
    out += ["", f"compression rounds: {len(compressions)}"]
    if compressions:
        out += text_table(["round", "epoch", "widths before", "widths after", "params after", "MACs after"],
                          [[c.get("round"), c.get("epoch"), widths(c.get("widths_before")), widths(c.get("widths_after")),
                            count(c.get("params")), count(c.get("macs"))] for c in compressions])
    if row.history:
        out += ["", "history (density: mean activation density per layer group):"]
        cut = {c.get("epoch") for c in compressions}
        out += text_table(["epoch", "lr", "train loss", "loss", "accuracy", "params", "MACs", "widths", "density"],
                          [[f"{h.get('epoch')}{'*' if h.get('epoch') in cut else ''}", value(h.get("lr")),
                            value(h.get("train_loss")), value(h.get("loss")), percent(h.get("accuracy")),
                            count(h.get("params")), count(h.get("macs")), widths(h.get("widths")),
                            " ".join(f"{d:.2f}" for d in (h.get("density") or {}).values())] for h in row.history])
        if cut:
            out.append("* compressed after this epoch")
    return "\n".join(out)


# --- the study's progress, one line per finished trial ------------------------------------------


def progress_line(row: TrialRow, *, done: int, total: int, best: str = "") -> str:
    """The line a running search prints when trial `row` finishes, e.g.
    '[3/8] trial 2: compress_at=[5, 10], target_density=0.5: accuracy 97.5%, params 115k (10.0x fewer),
    train MACs 1.80x fewer | best so far: 97.5% at 10.0x fewer params'.

    Args:
        row: the trial (its `settings` as sampled, its metrics with the recorded ratios; a failed
            one with its `error`).
        done: search trials finished so far (this one included); total: the budget.
        best: `best_so_far(...)`; '' leaves the part out.
    """
    settings = short_settings(row.settings)
    if row.complete:
        train = fewer(row, "train_macs", None) or count(row.metric("train_macs"))
        what = (f"accuracy {percent(row.metric('accuracy'))}, params {cost_text(row, 'params', None)}, "
                f"train MACs {train}")
        shared = sharing_text(row)
        what += f" ({shared})" if shared else ""
    elif row.stopped:
        what = (f"stopped early after epoch {row.stopped_at} (search.early_stop): accuracy "
                f"{percent(row.metric('accuracy'))}, params {cost_text(row, 'params', None)} there")
    else:
        what = f"failed: {row.error or 'unknown error'}"
    return f"[{done}/{total}] trial {row.label}: {settings}: {what}" + (f" | best so far: {best}" if best else "")
