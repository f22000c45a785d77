"""Benchmark: which Optuna sampler gives the best Pareto front at a study's budget?

    python benchmarks/bench_samplers.py [--spec studies/quickstart.yaml] [--trials N] [--seeds 0,1,2]
        [--samplers nsga2,tpe,tpe4,gp,random] [--epochs E] [--set path=value ...] [--cache DIR]

For every (sampler, seed) an in-memory Optuna study (no Ray, no storage) asks N trials (default the
spec's `search.trials`) of the spec's own `search.space` and tells their `search.objectives`, each
trial trained in this process by `adsearch.train.trainer.run_trial`. The spec's `seed` is the benchmark
seed, for training and sampler alike, as in a real study. Each seed's baseline (`without_pruning`)
is trained once and normalises that seed's points: every objective becomes trial / baseline.

Figures, per (sampler, seed), over the N trials:
- hypervolume of the normalised points, reference 0.9 for a max objective (a trial below 90% of
  the baseline's accuracy adds nothing) and 1.0 for a min one (no bigger than the baseline);
- the same with log10 of the min objectives' ratios, reference 0 (a 100x smaller network counts
  twice as far as a 10x smaller one);
- how many distinct parameter sets it trained (N, unless it proposed only repeats `GIVE_UP_AFTER` times in a
  row); a repeated proposal is told its result at once and is not in the budget, as in a study.
Tables: one row per sampler, the figure per seed, its median, and the median over seeds of the
sampler's figure divided by random's for the same seed.

Identical (seed, params) are trained once per run (samplers repeat points in categorical spaces,
and samplers that share a seed share their random start-up trials). `--cache DIR` also shares
training prefixes between trials through `adsearch.train.prefixes.PrefixCache`.

A dry run (a minute or two on 2 CPU cores):

    python benchmarks/bench_samplers.py --trials 3 --seeds 0 --samplers nsga2,random,gp --epochs 2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch

from adsearch.spec.loading import parse_overrides
from adsearch.results.pareto import hypervolume
from adsearch.results.rows import TrialRow
from adsearch.study.searcher import GIVE_UP_AFTER, RANDOM_AFTER, make_sampler, optuna_space
from adsearch.spec.space import decode_choice
from adsearch.spec.loading import apply_params, load_spec
from adsearch.spec.study_spec import StudySpec
from adsearch.train.trainer import TrialDiverged, run_trial

ROOT = Path(__file__).resolve().parents[1]

SamplerFactory = Callable[[StudySpec], optuna.samplers.BaseSampler]
"""Builds a sampler from the spec of one run: `seed` is the benchmark seed, `search.trials` the budget."""


def _startup(spec: StudySpec) -> int:
    """Start-up trials for the tuned TPE and GP: a third of the budget, so they model from early on."""
    return max(2, spec.search.trials // 3)


def _nsga2(spec: StudySpec) -> optuna.samplers.BaseSampler:
    # exactly what a study with `sampler: nsga2` runs, population rule included
    nsga = spec.search.model_copy(update={"sampler": "nsga2"})
    return make_sampler(spec.model_copy(update={"search": nsga}))


SAMPLERS: dict[str, SamplerFactory] = {
    "nsga2": _nsga2,
    "tpe": lambda s: optuna.samplers.TPESampler(seed=s.seed, multivariate=True),
    "tpe4": lambda s: optuna.samplers.TPESampler(seed=s.seed, multivariate=True, n_startup_trials=_startup(s)),
    "gp": lambda s: optuna.samplers.GPSampler(seed=s.seed, n_startup_trials=_startup(s)),
    "random": lambda s: optuna.samplers.RandomSampler(seed=s.seed),
}


def directions(spec: StudySpec) -> list[str]:
    return ["maximize" if o.mode == "max" else "minimize" for o in spec.search.objectives]


def sampler_problem(name: str, spec: StudySpec) -> str | None:
    """Why sampler `name` cannot run this study's space and objectives, or None if it can.

    Asks past its start-up trials on made-up values (no training), so a sampler that cannot model
    several objectives (GPSampler before multi-objective support) fails here, not after minutes.
    """
    space = optuna_space(spec)
    probe = spec.model_copy(update={"search": spec.search.model_copy(update={"trials": 6})})
    try:
        study = optuna.create_study(directions=directions(spec), sampler=SAMPLERS[name](probe))
        for i in range(6):
            trial = study.ask(fixed_distributions=space)
            study.tell(trial, [0.5 + 0.1 * ((i * 7 + k * 3) % 5) for k in range(len(study.directions))])
    except Exception as exc:  # noqa: BLE001 - any refusal is the answer
        return f"{type(exc).__name__}: {exc}"
    return None


def decoded(spec: StudySpec, params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's params as the spec writes them (lists as lists), the memo's key and the printed settings."""
    return {path: decode_choice(spec.search.space[path], v) for path, v in params.items()}


def settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{p.rsplit('.', 1)[-1]}={v:.3g}" if isinstance(v, float) else f"{p.rsplit('.', 1)[-1]}={v}"
                     for p, v in settings.items())


class Trainings:
    """Runs `run_trial` once per (seed, params) and keeps the metrics for the rest of the run."""

    def __init__(self, prefixes: Any | None):
        self.prefixes = prefixes
        self.memo: dict[tuple[int, str], dict | None] = {}  # None: the trial diverged
        self.trained = 0
        self.saved = 0
        self.seconds = 0.0

    def run(self, spec: StudySpec) -> tuple[dict | None, float | None]:
        """Train `spec`; its metrics (None if it diverged) and its wall seconds."""
        t0 = time.perf_counter()
        try:
            # without --cache run_trial is called as it is today (no `prefixes` keyword)
            metrics = run_trial(spec) if self.prefixes is None else run_trial(spec, prefixes=self.prefixes)
        except TrialDiverged as exc:
            print(f"  diverged: {exc}", flush=True)
            metrics = None
        seconds = time.perf_counter() - t0
        self.trained += 1
        self.seconds += seconds
        return metrics, seconds

    def metrics(self, seed_spec: StudySpec, settings: dict[str, Any], params: dict[str, Any]) -> tuple[dict | None, float | None]:
        """The trial's metrics and its training seconds (None when the memo had it)."""
        key = (seed_spec.seed, json.dumps(settings, sort_keys=True))
        if key in self.memo:
            self.saved += 1
            return self.memo[key], None
        metrics, seconds = self.run(apply_params(seed_spec, params))
        self.memo[key] = metrics
        return metrics, seconds


def normalised(spec: StudySpec, metrics: dict, baseline: dict, log: bool) -> dict[str, float]:
    """Each objective as trial / baseline; with `log`, log10 of that for the min objectives."""
    out = {}
    for o in spec.search.objectives:
        ratio = float(metrics[o.metric]) / float(baseline[o.metric])
        if log and o.mode == "min":
            ratio = math.log10(ratio) if ratio > 0 else math.nan  # NaN: left out of the front
        out[o.metric] = ratio
    return out


def front_volume(spec: StudySpec, points: list[dict[str, float]], log: bool) -> float:
    """Hypervolume of the normalised points (see the module docstring for the reference point)."""
    objectives = [(o.metric, o.mode) for o in spec.search.objectives]
    reference = [0.9 if o.mode == "max" else (0.0 if log else 1.0) for o in spec.search.objectives]
    rows = [TrialRow(number=i, metrics=p) for i, p in enumerate(points)]
    return hypervolume(rows, objectives, reference)


def progress_text(spec: StudySpec, metrics: dict | None, baseline: dict) -> str:
    if metrics is None:
        return "diverged"
    parts = []
    for o in spec.search.objectives:
        v, b = metrics[o.metric], baseline[o.metric]
        if o.metric in ("accuracy", "top5"):
            parts.append(f"{o.metric} {v:.1%}")
        elif o.mode == "min":
            parts.append(f"{o.metric} {b / v:.1f}x fewer" if v > 0 else f"{o.metric} {v:g}")
        else:
            parts.append(f"{o.metric} {v / b:.3f}x baseline")
    return ", ".join(parts)


def run_one(name: str, seed_spec: StudySpec, baseline: dict, trainings: Trainings) -> tuple[list[dict | None], list[str]]:
    """One ask/tell study of `name` over the budget, as a study runs it: a proposal repeating an
    earlier trial's parameters is told that trial's result at once and is not in the budget, and
    after `RANDOM_AFTER` repeats in a row the next proposal is drawn at random (adsearch.study.searcher).
    Returns each budget trial's metrics (None: it diverged) and its memo key, in the order asked."""
    n = seed_spec.search.trials
    space = optuna_space(seed_spec)
    sampler = SAMPLERS[name](seed_spec)
    study = optuna.create_study(directions=directions(seed_spec), sampler=sampler)
    results, keys, told = [], [], {}
    repeats = 0
    while len(keys) < n and repeats < GIVE_UP_AFTER:
        study.sampler = optuna.samplers.RandomSampler(seed=len(study.trials)) if repeats >= RANDOM_AFTER else sampler
        trial = study.ask(fixed_distributions=space)
        study.sampler = sampler
        settings = decoded(seed_spec, trial.params)
        key = json.dumps(settings, sort_keys=True)
        if key in told:  # a repeat: its result at once, outside the budget
            study.tell(trial, told[key]) if told[key] is not None else study.tell(
                trial, state=optuna.trial.TrialState.FAIL)
            repeats += 1
            continue
        repeats = 0
        keys.append(key)
        metrics, seconds = trainings.metrics(seed_spec, settings, trial.params)
        results.append(metrics)
        if metrics is None:
            told[key] = None
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            told[key] = [float(metrics[o.metric]) for o in seed_spec.search.objectives]
            study.tell(trial, told[key])
        how = "memo" if seconds is None else f"{seconds:.1f} s"
        print(f"[{name} seed {seed_spec.seed} {len(keys)}/{n}] {settings_text(settings)}: "
              f"{progress_text(seed_spec, metrics, baseline)} ({how})", flush=True)
    print(f"[{name} seed {seed_spec.seed}] {len(study.trials) - len(keys)} repeated proposals told at once", flush=True)
    return results, keys


def median_ratio(values: dict[int, float], random: dict[int, float] | None) -> float | None:
    """Median over seeds of value / random's value for the same seed (seeds where random has 0 left out)."""
    if random is None:
        return None
    ratios = [values[s] / random[s] for s in values if random.get(s)]
    return statistics.median(ratios) if ratios else None


def print_table(title: str, volumes: dict[str, dict[int, float]], seeds: list[int]) -> None:
    print(f"\n{title}")
    head = f"{'sampler':<8}" + "".join(f"{'seed ' + str(s):>10}" for s in seeds) + f"{'median':>10}{'vs random':>11}"
    print(head)
    print("-" * len(head))
    for name, by_seed in volumes.items():
        ratio = median_ratio(by_seed, volumes.get("random"))
        print(f"{name:<8}" + "".join(f"{by_seed[s]:>10.4f}" for s in seeds)
              + f"{statistics.median(by_seed.values()):>10.4f}" + (f"{ratio:>10.2f}x" if ratio is not None else f"{'-':>11}"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "studies" / "quickstart.yaml"))
    ap.add_argument("--set", dest="sets", action="append", default=[], help="path=value, as `adsearch run --set`")
    ap.add_argument("--trials", type=int, help="trials per (sampler, seed) (default: the spec's search.trials)")
    ap.add_argument("--seeds", default="0,1,2", help="comma list")
    ap.add_argument("--samplers", default=",".join(SAMPLERS), help=f"comma list of {', '.join(SAMPLERS)}")
    ap.add_argument("--epochs", type=int, help="override train.epochs (a quick dry run)")
    ap.add_argument("--cache", help="share training prefixes between trials in this folder (adsearch.train.prefixes)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--at", help="comma list of budgets (at most --trials) to give the tables for, from the same "
                    "runs: the hypervolume after the first n trials (default: the budget only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # the machine is shared; one thread keeps timings comparable
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per told trial would drown the progress

    overrides = parse_overrides(args.sets)
    if args.trials is not None:
        overrides["search.trials"] = args.trials
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    spec = load_spec(args.spec, overrides)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = [s.strip() for s in args.samplers.split(",") if s.strip()]
    unknown = [n for n in names if n not in SAMPLERS]
    if unknown:
        ap.error(f"unknown sampler(s) {', '.join(unknown)}; known: {', '.join(SAMPLERS)}")

    prefixes = None
    if args.cache:
        from adsearch.train.prefixes import PrefixCache, branch_epochs  # only with --cache: it is optional

        prefixes = PrefixCache(args.cache, branch_epochs(spec))

    n = spec.search.trials
    objectives = ", ".join(f"{o.metric} ({o.mode})" for o in spec.search.objectives)
    print(f"spec {args.spec}: {n} trials x {spec.train.epochs} epochs, seeds {seeds}, objectives {objectives}")
    print(f"space: {', '.join(spec.search.space)}")
    print(f"optuna {optuna.__version__}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
          + (f", prefix cache {args.cache}" if args.cache else ""))
    if "gp" in names:
        problem = sampler_problem("gp", spec)
        if problem:
            print(f"gp: GPSampler cannot run {len(spec.search.objectives)} objectives on optuna "
                  f"{optuna.__version__}, left out: {problem}")
            names.remove("gp")
        else:
            print(f"gp: GPSampler runs {len(spec.search.objectives)} objectives on optuna {optuna.__version__}")

    started = time.perf_counter()
    trainings = Trainings(prefixes)
    budgets = sorted({int(b) for b in args.at.split(",")} | {n}) if args.at else [n]
    if budgets[0] < 1 or budgets[-1] > n:
        ap.error(f"--at: budgets must be between 1 and --trials ({n}), got {args.at}")
    linear: dict[int, dict[str, dict[int, float]]] = {b: {name: {} for name in names} for b in budgets}
    logged: dict[int, dict[str, dict[int, float]]] = {b: {name: {} for name in names} for b in budgets}
    distinct: dict[str, dict[int, int]] = {name: {} for name in names}
    for seed in seeds:
        seed_spec = spec.model_copy(update={"seed": seed})
        baseline, seconds = trainings.run(seed_spec.without_pruning())
        if baseline is None:
            print(f"seed {seed}: the baseline diverged; no normalisation possible", file=sys.stderr)
            return 1
        print(f"[baseline seed {seed}] accuracy {baseline['accuracy']:.1%}, params {baseline['params']:,}, "
              f"train MACs {baseline['train_macs']:.3g} ({seconds:.1f} s)", flush=True)
        for name in names:
            results, keys = run_one(name, seed_spec, baseline, trainings)
            for b in budgets:
                done = [m for m in results[:b] if m is not None]
                linear[b][name][seed] = front_volume(spec, [normalised(spec, m, baseline, log=False) for m in done],
                                                     log=False)
                logged[b][name][seed] = front_volume(spec, [normalised(spec, m, baseline, log=True) for m in done],
                                                     log=True)
            distinct[name][seed] = len(set(keys))

    costs = [o.metric for o in spec.search.objectives if o.mode == "min"]
    for b in budgets:
        print_table(f"after {b} trials: hypervolume, objectives / baseline (reference 0.9 for max, 1.0 for min "
                    "objectives):", linear[b], seeds)
        print_table(f"after {b} trials: hypervolume, log10 of {', '.join(costs)} / baseline (reference 0.9 for max, "
                    "0 for min):", logged[b], seeds)
    # every volume as one line of JSON, to put runs of other seeds (other processes) in one table
    print("volumes: " + json.dumps({"linear": linear, "log": logged}))
    print(f"\ndistinct parameter sets proposed (of {n}):")
    print(f"{'sampler':<8}" + "".join(f"{'seed ' + str(s):>10}" for s in seeds))
    for name in names:
        print(f"{name:<8}" + "".join(f"{distinct[name][s]:>10}" for s in seeds))
    print(f"\ntrainings: {trainings.trained} run ({trainings.seconds:.0f} s, baselines included), "
          f"{trainings.saved} saved by the memo; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
