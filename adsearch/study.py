"""A study: Ray Tune runs the trials, Optuna samples them; the only module that imports either.

`run_study(spec)` makes `reports/<name>/`, runs the baseline (the same recipe, pruning off),
then the search: Ray Tune's `OptunaSearch` over `search.space`, multi-objective over
`search.objectives`, with Optuna's storage in `study.db`. Every trial's metrics, ratios against
the baseline, widths and failure reason are kept as Optuna user attributes, so `study.db` plus
`baseline.json` are the whole record; `trials.csv`, `pareto.csv` and the report are made from them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import ray
import yaml
import torch
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from adsearch import pareto, report
from adsearch.errors import AdsearchError
from adsearch.spec import StudySpec, ValuesDim, apply_params, decode_choice, encode_choice
from adsearch.trainer import build_model, run_trial

# Keeping one checkpoint per trial forces an experiment snapshot at each epoch; that is the
# point (a crash costs at most an epoch), so Ray's warning about it is only noise here.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPEC_FILE = "spec.yaml"
BASELINE_FILE = "baseline.json"
DB_FILE = "study.db"
CHECKPOINT_FILE = "trial.pt"

RECORDED = ("accuracy", "top5", "loss", "params", "macs", "train_macs", "latency_ms", "wall_s",
            "params_ratio", "macs_ratio", "train_macs_ratio", "accuracy_drop", "epoch", "rounds",
            "widths", "base_widths")
"""The result keys kept per trial (Optuna user attributes, then trials.csv)."""
TRACE = ("history", "compressions")
"""Kept per trial too (user attributes, not table columns): per-epoch records and compression rounds."""


@dataclass
class StudyResult:
    directory: Path
    rows: list[dict]
    files: dict[str, Path]


# --- metrics against the baseline ---------------------------------------------------------------


def with_ratios(metrics: dict, baseline: dict | None) -> dict:
    """`metrics` plus params/macs/train_macs ratios (trial / baseline) and the accuracy drop."""
    out = dict(metrics)
    if baseline:
        for key in ("params", "macs", "train_macs"):
            out[f"{key}_ratio"] = metrics[key] / baseline[key] if baseline.get(key) else math.nan
        out["accuracy_drop"] = baseline["accuracy"] - metrics["accuracy"]
    else:
        out.update(params_ratio=1.0, macs_ratio=1.0, train_macs_ratio=1.0, accuracy_drop=0.0)
    return out


# --- the trainable that Ray runs -----------------------------------------------------------------


def _trainable(config: dict, *, base: dict, baseline: dict | None, threads: int, base_widths: list[int]):
    """One Ray Tune trial: the base spec with `config` put in, trained by `run_trial`."""
    torch.set_num_threads(threads)
    spec = apply_params(StudySpec.model_validate(base), config)
    checkpoint = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            checkpoint = torch.load(Path(d) / CHECKPOINT_FILE, weights_only=True)

    def report_epoch(metrics: dict, state: dict) -> None:
        flat = with_ratios(metrics, baseline)
        flat["base_widths"] = base_widths
        if metrics["epoch"] == spec.train.epochs:  # the last report carries the whole trace
            flat.update({key: state[key] for key in TRACE})
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / CHECKPOINT_FILE)
            tune.report(flat, checkpoint=tune.Checkpoint.from_directory(d))

    run_trial(spec, report=report_epoch, checkpoint=checkpoint)


# --- Optuna ----------------------------------------------------------------------------------


def optuna_space(spec: StudySpec) -> dict[str, optuna.distributions.BaseDistribution]:
    space = {}
    for path, dim in spec.search.space.items():
        if isinstance(dim, ValuesDim):
            space[path] = optuna.distributions.CategoricalDistribution([encode_choice(v) for v in dim.values])
        elif dim.distribution == "int_uniform":
            space[path] = optuna.distributions.IntDistribution(int(dim.low), int(dim.high), step=int(dim.step or 1))
        else:
            space[path] = optuna.distributions.FloatDistribution(
                dim.low, dim.high, log=dim.distribution == "log_uniform", step=dim.step)
    return space


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    """The sampler named in the spec, always set explicitly and seeded by the study's seed."""
    s, seed = spec.search, spec.seed
    if s.sampler == "nsga2":
        # a population of a third of the budget lets small studies evolve at least twice
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, s.trials // 3)), seed=seed)
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if s.sampler == "grid":
        grid = {p: [encode_choice(v) for v in d.values] for p, d in s.space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def storage_url(directory: Path) -> str:
    return f"sqlite:///{(directory / DB_FILE).resolve()}"


class _Searcher(OptunaSearch):
    """OptunaSearch that keeps each trial's metrics as user attributes and fails errored trials.

    Ray passes an errored trial's last intermediate result; told as is, Optuna would record the
    trial COMPLETE with half-trained metrics, so an error always goes to Optuna as FAIL.
    """

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None:
            ot_trial.set_user_attr("ray_trial_id", trial_id)
            if result and not error:
                for key in RECORDED + TRACE:
                    if key in result:
                        ot_trial.set_user_attr(key, _plain(result[key]))
        super().on_trial_complete(trial_id, None if error else result, error)


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- progress ----------------------------------------------------------------------------------


class _Progress(tune.Callback):
    """Prints a line per finished trial: done/total and the current recommended trade-off."""

    def __init__(self, total: int, baseline: dict | None, max_drop: float, say: Callable[[str], None]):
        self.total, self.baseline, self.max_drop, self.say = total, baseline, max_drop, say
        self.rows: list[dict] = []

    def __getstate__(self):  # Ray pickles callbacks with the experiment; a console holds locks
        return {k: v for k, v in self.__dict__.items() if k != "say"}

    def __setstate__(self, state):
        self.__dict__.update(state, say=print)

    def _line(self, trial, state: str, error: str = "") -> None:
        r = trial.last_result or {}
        row = {"number": len(self.rows), "role": "search", "state": state,
               **{k: r.get(k) for k in ("accuracy", "params", "params_ratio", "train_macs_ratio")}}
        self.rows.append(row)
        done = len(self.rows)
        if state == "COMPLETE":
            what = (f"accuracy {r['accuracy']:.2%}, params {_count(r['params'])} "
                    f"({1 / r['params_ratio']:.1f}x fewer), train MACs {1 / r['train_macs_ratio']:.1f}x fewer")
        else:
            what = f"failed: {error}"
        best = self._best()
        settings = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in (trial.config or {}).items())
        self.say(f"[{done}/{self.total}] {settings}: {what}" + (f" | best so far: {best}" if best else ""))

    def _best(self) -> str:
        if not self.baseline:
            return ""
        rows = [{"role": "baseline", "state": "COMPLETE", "accuracy": self.baseline["accuracy"],
                 "params": self.baseline["params"]}] + self.rows
        i = pareto.recommended(rows, self.max_drop)
        if i is None:
            return f"none within {self.max_drop:.1%} of the baseline yet"
        r = rows[i]
        return f"{r['accuracy']:.2%} at {1 / r['params_ratio']:.1f}x fewer params"

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, "COMPLETE")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAIL", _trial_error(trial))


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _trial_error(trial) -> str:
    """The exception a Ray trial ended with, as one line."""
    try:
        error = trial.get_pickled_error() or trial.get_error()
    except Exception:  # noqa: BLE001 - best effort: the error file may be unreadable
        error = None
    return _error_text(error) if error else "unknown error"


def _error_text(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    last = text[-1] if text else ""
    return f"{type(cause).__name__}: {last}"[:300]


# --- Ray -------------------------------------------------------------------------------------


def _start_ray(spec: StudySpec, address: str | None) -> bool:
    """Connect to `address` or start a local Ray sized to `resources`; True if we started it."""
    if ray.is_initialized():
        return False
    address = address or spec.resources.address
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                                  configure_logging=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=spec.resources.num_cpus or os.cpu_count(), **kwargs)
    return True


def _tuner(trainable, spec: StudySpec, directory: Path, name: str, *, search_alg=None, samples: int,
           callbacks=()) -> tune.Tuner:
    per = spec.resources.per_trial
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": per.cpu, "gpu": per.gpu}),
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=samples, reuse_actors=True,
                                    max_concurrent_trials=spec.resources.max_concurrent),
        run_config=tune.RunConfig(
            name=name, storage_path=str((directory / "ray").resolve()), verbose=0,
            callbacks=list(callbacks),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


# --- the study -------------------------------------------------------------------------------


def check_runnable(spec: StudySpec) -> list[int]:
    """Build the data and the network once, before anything is written; return the base widths."""
    from adsearch.data import load_data

    data = load_data(spec.data, spec.seed)
    model = build_model(spec, data)
    return [int(dict(model.named_modules())[g.producers[0]].weight.shape[0]) for g in model.channel_groups()]


def prepare_directory(spec: StudySpec, reports_dir: Path, *, fresh: bool) -> Path:
    directory = Path(reports_dir) / spec.name
    if directory.exists() and any(directory.iterdir()):
        if not fresh:
            raise AdsearchError(
                f"study directory {directory} already exists; pass --fresh to start it again "
                f"(deletes it) or give the study a new name")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    header = f"# adsearch study spec, digest {spec.digest()}\n"
    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    (directory / SPEC_FILE).write_text(header + text)
    return directory


def run_study(
    spec: StudySpec,
    *,
    reports_dir: Path | str = "reports",
    address: str | None = None,
    fresh: bool = False,
    say: Callable[[str], None] = print,
) -> StudyResult:
    """Run the baseline and the search of `spec`; write `reports/<name>/` and its report."""
    base_widths = check_runnable(spec)
    directory = prepare_directory(spec, Path(reports_dir), fresh=fresh)
    started_ray = _start_ray(spec, address)
    threads = spec.train.threads or max(1, int(spec.resources.per_trial.cpu))
    try:
        baseline = None
        if spec.search.baseline:
            say(f"baseline: {spec.train.epochs} epochs without pruning")
            baseline = _run_baseline(spec, directory, threads, base_widths)
            say(f"baseline: accuracy {baseline['accuracy']:.2%}, params {_count(baseline['params'])}, "
                f"MACs {_count(baseline['macs'])}, {baseline['wall_s']:.1f} s")
        say(f"search: {spec.search.trials} trials, sampler {spec.search.sampler}, objectives "
            + ", ".join(f"{o.metric} ({o.mode})" for o in spec.search.objectives))
        _run_search(spec, directory, baseline, threads, base_widths, say)
    finally:
        if started_ray:
            ray.shutdown()
    rows = collect_rows(directory, spec)
    files = report.write_report(directory, spec, rows, state="done")
    return StudyResult(directory=directory, rows=rows, files=files)


def _run_baseline(spec: StudySpec, directory: Path, threads: int, base_widths: list[int]) -> dict:
    base = spec.without_pruning().model_dump(mode="json")
    trainable = tune.with_parameters(_trainable, base=base, baseline=None, threads=threads,
                                     base_widths=base_widths)
    grid = _tuner(trainable, spec, directory, "baseline", samples=1).fit()
    result = grid[0]
    if result.error:
        raise AdsearchError(f"the baseline trial failed: {_error_text(result.error)}")
    metrics = {k: _plain(result.metrics[k]) for k in RECORDED + TRACE if k in result.metrics}
    _write_json(directory / BASELINE_FILE, metrics)
    return metrics


def _run_search(spec, directory, baseline, threads, base_widths, say) -> None:
    objectives = spec.search.objectives
    storage = optuna.storages.RDBStorage(storage_url(directory))
    searcher = _Searcher(
        space=optuna_space(spec),
        metric=[o.metric for o in objectives],
        mode=[o.mode for o in objectives],
        sampler=make_sampler(spec),
        storage=storage,
        study_name=spec.name,
        seed=spec.seed,
    )
    trainable = tune.with_parameters(_trainable, base=spec.model_dump(mode="json"), baseline=baseline,
                                     threads=threads, base_widths=base_widths)
    progress = _Progress(spec.search.trials, baseline, spec.report.max_accuracy_drop, say)
    grid = _tuner(trainable, spec, directory, "search", search_alg=searcher, samples=spec.search.trials,
                  callbacks=[progress]).fit()
    study = optuna.load_study(study_name=spec.name, storage=storage)
    study.set_metric_names([o.metric for o in objectives])
    errors = {r.path.rsplit("/", 1)[-1]: _error_text(r.error) for r in grid if r.error}
    for trial in study.get_trials(deepcopy=False):
        ray_id = trial.user_attrs.get("ray_trial_id")
        for dirname, text in errors.items():
            if ray_id and ray_id in dirname:
                storage.set_trial_user_attr(trial._trial_id, "error", text)


def collect_rows(directory: Path, spec: StudySpec) -> list[dict]:
    """The study's trials as table rows: the baseline (number -1) and every Optuna trial."""
    rows: list[dict] = []
    params_cols = [f"param:{p}" for p in spec.search.space]
    baseline_path = directory / BASELINE_FILE
    if baseline_path.exists():
        b = json.loads(baseline_path.read_text())
        rows.append({"number": -1, "role": "baseline", "state": "COMPLETE", "error": "",
                     **{c: None for c in params_cols}, **b})
    if (directory / DB_FILE).exists():
        study = optuna.load_study(study_name=spec.name, storage=storage_url(directory))
        for t in study.get_trials(deepcopy=False):
            row = {"number": t.number, "role": "search", "state": t.state.name,
                   "error": t.user_attrs.get("error", "")}
            for path in spec.search.space:
                value = t.params.get(path)
                row[f"param:{path}"] = decode_choice(spec.search.space[path], value) if value is not None else None
            for key in RECORDED + TRACE:
                row[key] = t.user_attrs.get(key)
            rows.append(row)
    return rows


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
