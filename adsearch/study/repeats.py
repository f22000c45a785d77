"""Repeats: a proposal equal to an earlier trial's parameters, told the earlier trial's result
instead of training again; and the parameter sets of a finite space that no trial has run.

Functions over an `optuna.Study` through Optuna's public API; `searcher.Searcher` calls them.
"""

from __future__ import annotations

import itertools
import json

import optuna

from adsearch.results.rows import RECORDED, REPEAT_OF, STOPPED_AT, TRACE


def tried(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials that ran (or run) their own parameters: every trial but the repeats."""
    return [t for t in study.get_trials(deepcopy=False) if REPEAT_OF not in t.user_attrs]


def exhausted(study: optuna.Study, space_size: int | None) -> bool:
    """Whether every one of the `space_size` parameter sets (None: unbounded) has been tried."""
    return space_size is not None and len({_key(t.params) for t in tried(study)}) >= space_size


def untried(study: optuna.Study, space: dict[str, optuna.distributions.BaseDistribution],
            space_size: int | None) -> list[dict] | None:
    """The points of the finite `space` (of at most 100,000) no trial has run; None otherwise."""
    if space_size is None or space_size > 100_000:
        return None
    grids = {}
    for name, dist in space.items():
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            grids[name] = list(dist.choices)
        elif isinstance(dist, optuna.distributions.IntDistribution):
            grids[name] = list(range(dist.low, dist.high + 1, dist.step))
        elif dist.step is not None:
            n = int(round((dist.high - dist.low) / dist.step))
            grids[name] = [dist.low + k * dist.step for k in range(n + 1)]
        else:
            return None
    done = {_key(t.params) for t in tried(study)}
    points = (dict(zip(grids, values)) for values in itertools.product(*grids.values()))
    return [p for p in points if _key(p) not in done]


def earlier_trial(study: optuna.Study, ot_trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
    """The earlier trial with the same parameters as `ot_trial` (a finished one first, one early
    stopping stopped included), or None."""
    key, number = _key(ot_trial.params), ot_trial.number
    same = [t for t in tried(study) if t.number != number and _key(t.params) == key
            and (t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                             optuna.trial.TrialState.RUNNING) or _stopped(t))]
    return min(same, key=lambda t: (not t.state.is_finished(), t.number), default=None)


def tell_repeat(study: optuna.Study, ot_trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> str:
    """Tell `ot_trial`, a repeat of `earlier` (user attribute `repeat_of`), what `earlier` ended
    with: its result, its failure, that early stopping stopped it (PRUNED, with its metrics there), or
    PRUNED while it still runs. Returns what it was told, as text."""
    state = earlier.state
    ot_trial.set_user_attr(REPEAT_OF, earlier.number)
    if state == optuna.trial.TrialState.COMPLETE:
        for key in RECORDED + TRACE:
            if key in earlier.user_attrs:
                ot_trial.set_user_attr(key, earlier.user_attrs[key])
        ot_trial.set_user_attr("spent_train_macs", 0)
        ot_trial.set_user_attr("spent_s", 0.0)
        study.tell(ot_trial, earlier.values)
        return "told its result"
    if state == optuna.trial.TrialState.FAIL:
        ot_trial.set_user_attr("error", f"repeat of trial {earlier.number}, which failed: "
                                        f"{earlier.user_attrs.get('error', 'no reason recorded')}")
        study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
        return "told that it failed"
    if _stopped(earlier):
        for key in (*RECORDED, *TRACE, STOPPED_AT):
            if key in earlier.user_attrs:
                ot_trial.set_user_attr(key, earlier.user_attrs[key])
        ot_trial.set_user_attr("spent_train_macs", 0)
        ot_trial.set_user_attr("spent_s", 0.0)
        study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
        return f"told that early stopping stopped it after epoch {earlier.user_attrs[STOPPED_AT]}"
    study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
    return "it is still running, so this one is dropped"


def _stopped(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether early stopping stopped `trial` (PRUNED, with the epoch it stopped at)."""
    return trial.state == optuna.trial.TrialState.PRUNED and STOPPED_AT in trial.user_attrs


def _key(params: dict) -> str:
    """Parameters as one comparable text."""
    return json.dumps(params, sort_keys=True, default=str)
