"""`adsearch` command line: a thin layer over the library.

User errors (`AdsearchError`, an invalid spec) are printed as plain lines without a traceback;
an invalid spec, missing data (`DataError`), resources the machine cannot give (`ResourceError`),
an unusable study folder (`StudyDirError`) or several of these (`PreflightError`) exits 2, files a
study could not write (`DiskError`: no space left) 74, a study stopped early (`StudyInterrupted`)
130, or 143 when SIGTERM stopped it (`adsearch.study.stopping`), other user errors 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from adsearch.errors import (AdsearchError, DataError, DiskError, PreflightError, ResourceError, StudyDirError,
                             StudyInterrupted)
from adsearch.metrics import METRICS, count, percent, seconds, widths
from adsearch.spec.loading import SpecError, load_spec, spec_warnings
from adsearch.spec.study_spec import json_schema
from adsearch.study import stopping

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Search activation-density pruning schedules; read the Pareto report.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SpecArg = typer.Argument(..., help="study spec (YAML)", show_default=False)
LogOpt = typer.Option("error", "--log-level", help="show Ray's own log lines at this level and up: "
                      "error, warning, info or debug")
EveryOpt = typer.Option(30.0, "--progress-every", min=0.1, help="when the output is not a terminal (a log, CI): "
                        "print the running trials' epochs at most every this many seconds")
SetOpt = typer.Option([], "--set", help="override a spec field: --set train.epochs=1 (value read as YAML)")


def read_spec(path: Path, sets: list[str]):
    """The spec at `path` with the `--set` overrides, its warnings printed to stderr."""
    s = load_spec(path, sets)
    for warning in spec_warnings(s):
        err.print(f"warning: {warning}")
    return s


@app.command()
def validate(spec: Path = SpecArg, set_: list[str] = SetOpt) -> None:
    """Check a spec: print OK or every error (exit 2)."""
    s = read_spec(spec, set_)
    out.print(f"OK: {spec} (study {s.name!r}, {s.search.trials} trials over "
              f"{len(s.search.space)} dimension(s))")


@app.command()
def schema() -> None:
    """Print the JSON schema of a study spec."""
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def run(
    spec: Path = SpecArg,
    set_: list[str] = SetOpt,
    reports: Path = typer.Option(Path("reports"), help="where study directories are made"),
    address: Optional[str] = typer.Option(None, help="Ray cluster: auto, host:port or ray://host:10001"),
    fresh: bool = typer.Option(False, help="delete an existing study of this name and start again (only a folder "
                                           "adsearch made, holding only what it wrote)"),
    log_level: str = LogOpt,
    every: float = EveryOpt,
) -> None:
    """Run a study: the baseline, then the search; write reports/<name>/."""
    from adsearch.study.callbacks import Live
    from adsearch.study.runner import run_study

    s = read_spec(spec, set_)
    result = run_study(s, reports_dir=reports, address=address, fresh=fresh, say=out.print, warn=_warn,
                       log_level=_log_level(log_level), live=Live(out, every))
    out.print(f"report: {result.files['report.md']}")


@app.command()
def resume(
    study: Path = typer.Argument(..., help="the study directory, e.g. reports/quickstart", show_default=False),
    address: Optional[str] = typer.Option(None, help="Ray cluster: auto, host:port or ray://host:10001"),
    log_level: str = LogOpt,
    every: float = EveryOpt,
) -> None:
    """Continue an interrupted study: finished trials kept, unfinished ones from their checkpoint."""
    from adsearch.study.callbacks import Live
    from adsearch.study.runner import resume_study

    result = resume_study(study, address=address, say=out.print, warn=_warn, log_level=_log_level(log_level),
                          live=Live(out, every))
    out.print(f"report: {result.files['report.md']}")


@app.command()
def scratch(
    study: Path = typer.Argument(..., help="a finished study directory, e.g. reports/quickstart", show_default=False),
    trials: Optional[str] = typer.Option(None, help="trials to control, e.g. 3,5 (default: the pruned trials on "
                                                    "the Pareto front)", show_default=False),
    match: Optional[str] = typer.Option(None, help="what a control matches its trial on: epochs (as many epochs), "
                                                   "compute (as many training MACs: more epochs of the small "
                                                   "network) or both (default: the study's "
                                                   "search.scratch_controls, else epochs)", show_default=False),
    address: Optional[str] = typer.Option(None, help="Ray cluster: auto, host:port or ray://host:10001"),
    log_level: str = LogOpt,
    every: float = EveryOpt,
) -> None:
    """Train the final widths of the study's pruned front trials from scratch (same recipe, no
    pruning; as many epochs or as much training compute as the trial), record them beside each
    trial and rewrite the report."""
    numbers = _trial_numbers(trials) if trials is not None else None
    from adsearch.study.callbacks import Live
    from adsearch.study.finished import scratch_study

    result = scratch_study(study, trials=numbers, match=match, address=address, say=out.print, warn=_warn,
                           log_level=_log_level(log_level), live=Live(out, every))
    out.print(f"report: {result.files['report.md']}")


def _warn(message: str) -> None:
    err.print(f"warning: {message}", markup=False)


def _log_level(text: str) -> str:
    from adsearch.study.cluster import LOG_LEVELS

    if text.lower() not in LOG_LEVELS:
        raise AdsearchError(f"--log-level must be one of {', '.join(LOG_LEVELS)}; got {text!r}")
    return text.lower()


@app.command()
def replicate(
    study: Path = typer.Argument(..., help="a finished study directory, e.g. reports/quickstart", show_default=False),
    seeds: int = typer.Option(..., help="seeds in all, the study's own counted: 3 trains each trial twice more "
                                        "(seed+1, seed+2)", show_default=False),
    trials: Optional[str] = typer.Option(None, help="trials to replicate, e.g. baseline,3,5 (default: the baseline "
                                                    "and the trials on the Pareto front)", show_default=False),
    address: Optional[str] = typer.Option(None, help="Ray cluster: auto, host:port or ray://host:10001"),
    log_level: str = LogOpt,
    every: float = EveryOpt,
) -> None:
    """Train the baseline and the front trials again with other seeds, record them beside each trial
    and rewrite the report with their means and standard deviations."""
    numbers = _trial_numbers(trials) if trials is not None else None
    from adsearch.study.callbacks import Live
    from adsearch.study.finished import replicate_study

    result = replicate_study(study, seeds=seeds, trials=numbers, address=address, say=out.print, warn=_warn,
                             log_level=_log_level(log_level), live=Live(out, every))
    out.print(f"report: {result.files['report.md']}")


def _trial_numbers(text: str) -> list[int]:
    """'3,5' -> [3, 5]; 'baseline' is -1."""
    try:
        numbers = [-1 if part.strip() == "baseline" else int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        numbers = []
    if not numbers:
        raise AdsearchError(f"--trials must be trial numbers separated by commas, e.g. --trials 3,5; got {text!r}")
    return numbers


@app.command()
def train(spec: Path = SpecArg, set_: list[str] = SetOpt) -> None:
    """Train one trial of the spec's base recipe (no search), showing each epoch."""
    from adsearch.train.trainer import run_trial

    s = read_spec(spec, set_)
    result = run_trial(s, report=lambda metrics, _: out.print(_epoch_line(metrics)))
    compiles = [h["compile_s"] for h in result["history"] if "compile_s" in h]
    compiled = f" ({len(compiles)} compile(s): {seconds(sum(compiles))})" if compiles else ""
    shown = ", ".join(f"{METRICS[k].label} {METRICS[k].text(result[k])}" for k in DONE_METRICS)
    out.print(f"done: {shown}{compiled}, widths {widths(result['widths'])}")


DISK_EXIT_CODE = 74
"""A study could not write its files (sysexits' EX_IOERR): the spec is fine, the machine is not."""
DONE_METRICS = ("accuracy", "params", "macs", "train_macs", "wall_s")
"""What `adsearch train` says of the trained network, written as the metrics table writes them."""


def _epoch_line(m: dict) -> str:
    dens = " ".join(f"{v:.2f}" for v in m["density"].values())
    return (f"epoch {m['epoch']:>3}  loss {m['train_loss']:.4f}  acc {percent(m['accuracy'])}  "
            f"params {count(m['params'])}  MACs {count(m['macs'])}  widths {widths(m['widths'])}  density [{dens}]")


# --- reading studies: report, ls, show, export ----------------------------------------------

StudyArg = typer.Argument(..., help="a study directory, e.g. reports/quickstart", show_default=False)
TrialOpt = typer.Option(None, "--trial", help="trial number, or 'baseline' (also -1)", show_default=False)


def _trial_number(text: str) -> int:
    if text.strip().lower() == "baseline":
        return -1
    try:
        return int(text)
    except ValueError:
        raise AdsearchError(f"--trial must be a trial number or 'baseline', got {text!r}") from None


@app.command("report")
def report_cmd(study: Path = StudyArg) -> None:
    """(Re)build a study's report from what is on disk: also while it runs or after it stopped."""
    from adsearch.report.writer import build_report

    record, files = build_report(study)
    out.print(f"study {record.name}: {record.state}, {record.trials_done}/{record.trials_total} search trials done")
    out.print(f"report: {files['report.html']} (interactive), {files['report.md']}, "
              f"{files['trials.csv']}, {files['pareto.csv']}")


@app.command("ls")
def ls_cmd(reports: Path = typer.Argument(Path("reports"), help="where the study directories are")) -> None:
    """List the studies: state, search trials done, baseline accuracy, recommended trade-off."""
    from adsearch.results.reading import read_study
    from adsearch.results.study_dir import find_studies
    from adsearch.report.text import STUDY_HEADER, study_line, text_table

    if not reports.is_dir():
        raise AdsearchError(f"no directory {reports}; studies are made there by `adsearch run SPEC --reports {reports}`")
    lines = []
    for directory in find_studies(reports):
        try:
            lines.append(study_line(read_study(directory)))
        except AdsearchError as exc:  # one unreadable study should not hide the others
            lines.append([directory.name, "unreadable", "", "", str(exc).splitlines()[0], ""])
    if not lines:
        out.print(f"no studies in {reports}; start one with `adsearch run SPEC`")
        return
    out.print("\n".join(text_table(STUDY_HEADER, lines)), markup=False)


@app.command("cache")
def cache_cmd(
    clear: bool = typer.Option(False, "--clear", help="delete the states (all, or --recipe's)"),
    recipe: Optional[str] = typer.Option(None, help="only this recipe's states: its key from the list, or the key's start"),
    directory: Optional[Path] = typer.Option(None, "--dir", help="the cache's folder (default: $ADSEARCH_PREFIX_CACHE, else "
                                             "$ADSEARCH_CACHE/prefixes, else ~/.cache/adsearch/prefixes)"),
) -> None:
    """The prefix cache that studies share: its states by recipe, their size and last use; --clear deletes them."""
    import time

    from adsearch.report.text import text_table
    from adsearch.train.prefixes import cache_size, clear as clear_cache, default_cache_dir, recipes

    directory = (directory or default_cache_dir()).expanduser()
    groups = [g for g in recipes(directory) if recipe is None or g.recipe.startswith(recipe)]
    if recipe is not None and not groups:
        raise AdsearchError(f"no states of a recipe starting {recipe!r} in {directory}; `adsearch cache` lists the "
                            "recipes there")
    if clear:
        gone, freed = clear_cache(directory, recipe)
        out.print(f"deleted {gone} states ({freed / 1e6:,.1f} MB) from {directory}", markup=False)
        return
    if not groups:
        out.print(f"the prefix cache in {directory} is empty", markup=False)
        return
    rows = [[g.recipe[:12], g.about.get("study", "?"), g.about.get("model", "?"), g.about.get("dataset", "?"),
             g.about.get("seed", "?"), g.about.get("epochs", "?"), g.entries, f"{g.bytes / 1e6:,.1f} MB",
             time.strftime("%Y-%m-%d %H:%M", time.localtime(g.last_used))] for g in groups]
    out.print("\n".join(text_table(["recipe", "first study", "model", "dataset", "seed", "epochs", "states", "size",
                                     "last used"], rows)), markup=False)
    entries, size = cache_size(directory)
    out.print(f"{entries} states, {size / 1e6:,.1f} MB in {directory} (bounded by each study's "
              "search.prefix_cache_gb; --clear deletes them, --recipe KEY only one recipe's)", markup=False)


@app.command()
def show(study: Path = StudyArg, trial: Optional[str] = TrialOpt) -> None:
    """A study's summary, or with --trial N one trial: settings, metrics, widths, rounds, history."""
    from adsearch.results.reading import read_study
    from adsearch.report.text import study_text, trial_text
    from adsearch.results.view import view_of

    record = read_study(study)
    view = view_of(record)
    if trial is None:
        out.print(study_text(view), markup=False)
    else:
        out.print(trial_text(view, record.row(_trial_number(trial))), markup=False)


@app.command()
def export(
    study: Path = StudyArg,
    trial: Optional[str] = TrialOpt,
    pick: Optional[str] = typer.Option(None, help="'recommended': the study's recommended trade-off",
                                       show_default=False),
    format_: str = typer.Option("state_dict", "--format", help="state_dict | torchscript | onnx"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="where to write (default: <study>/models/)",
                                           show_default=False),
    verify: bool = typer.Option(False, help="load the written file and measure its held-out accuracy"),
    control: Optional[str] = typer.Option(None, help="epochs | compute: the network of the trial's scratch control "
                                                     "(its widths trained from scratch) instead", show_default=False),
) -> None:
    """Write a trial's compressed network (state dict + widths, TorchScript or ONNX)."""
    from adsearch.export import export_trial, verify_export

    number = _trial_number(trial) if trial is not None else None
    result = export_trial(study, number=number, pick=pick, fmt=format_, out_dir=out_dir, control=control)
    info = result.info
    name = ("baseline" if info["trial"] == -1 else f"trial {info['trial']}") + (
        f"'s scratch control at equal {info['control']}" if info.get("control") else "")
    metrics = info["metrics"]
    out.print(f"exported {name} of {info['study']} ({info['format']}): {result.path}", markup=False)
    out.print(f"widths {'/'.join(map(str, info['widths']))}, params {metrics.get('params'):,}, "
              f"reported accuracy {metrics.get('accuracy', float('nan')):.2%}", markup=False)
    out.print(f"described in {result.info_path}; load with adsearch.load_model({str(result.path)!r})", markup=False)
    if verify:
        out.print(verify_export(result, study), markup=False)


def main() -> None:
    try:
        with stopping.graceful_sigterm():  # from the first step: every thread and process it starts has SIGTERM blocked
            app()
    except SpecError as exc:
        err.print(str(exc), markup=False)
        raise SystemExit(2) from None
    except (DataError, ResourceError, StudyDirError, PreflightError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise SystemExit(2) from None
    except DiskError as exc:
        err.print(f"error: {exc}", markup=False)
        raise SystemExit(DISK_EXIT_CODE) from None
    except StudyInterrupted as exc:
        err.print(f"{'stopped by SIGTERM' if stopping.terminated() else 'stopped'}: {exc}", markup=False)
        raise SystemExit(_stopped_code()) from None
    except AdsearchError as exc:
        err.print(f"error: {exc}", markup=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        err.print("stopped by SIGTERM" if stopping.terminated() else "interrupted", markup=False)
        raise SystemExit(_stopped_code()) from None
    except SystemExit as exc:  # Typer's own exit for a KeyboardInterrupt a command let through
        if exc.code == 130 and stopping.terminated():
            err.print("stopped by SIGTERM", markup=False)
            raise SystemExit(stopping.EXIT_CODE) from None
        raise


def _stopped_code() -> int:
    """130 for a study stopped by Ctrl-C (or its failure limit), 143 for one stopped by SIGTERM."""
    return stopping.EXIT_CODE if stopping.terminated() else 130


if __name__ == "__main__":
    main()
