"""The Optuna side of a study: its search space, its sampler, the searcher Ray Tune asks, and
counting its trials in Optuna's storage.

This is the only module of adsearch that reads private attributes of Ray Tune or Optuna. Each is
read through one accessor below (`_optuna_trials` ... `_trial_of`), and `tests/study/test_searcher.py`
checks every one of them on a real `OptunaSearch` and Optuna storage, naming the attribute and
`CHECKED_ON` when one is gone or has changed kind. `pyproject.toml` pins both packages to the
versions that test passed on; take a new version only after it passes again.

The private attributes (checked on ray 2.60.0 and optuna 5.0.0):

- `ray.tune.search.optuna.OptunaSearch._ot_trials`: dict, Ray trial id -> the `optuna.Trial`
  asked for it. `Searcher` reads it, and puts the trials a crash left running back into it.
- `OptunaSearch._ot_study`: the `optuna.Study` it asks and tells.
- `OptunaSearch._completed_trials`: set of the Ray trial ids already told to Optuna.
- `OptunaSearch._space`: the Optuna distributions it asks with (to list a finite space's points).
- `optuna.Study._storage`: the study's `BaseStorage`, to read one trial's state at once.
- `optuna.Trial._trial_id` and `optuna.trial.FrozenTrial._trial_id`: the storage's id of a trial.
- the `optuna.Trial(study, trial_id)` constructor (public, but documented as not for direct use),
  to take over a trial a crash left RUNNING.
"""

from __future__ import annotations

import itertools
import random
from typing import Callable

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from adsearch.results.rows import RECORDED, REPEAT_OF, SEARCH_ENDED, STOPPED_AT, TRACE, plain
from adsearch.spec.space import ValuesDim, encode_choice
from adsearch.spec.study_spec import StudySpec
from adsearch.study.disk import is_write_failure
from adsearch.study.repeats import earlier_trial, exhausted, tell_repeat, untried

CHECKED_ON = {"ray": "2.60.0", "optuna": "5.0.0"}
TRIAL_KEY = "adsearch_trial"
"""Added to each config the searcher hands out: the Optuna trial number, by which the trial keeps
its final checkpoint in the study directory (not a spec path; the trainable takes it out)."""


# --- the private attributes of Ray Tune and Optuna: read here and nowhere else ------------------


def _optuna_trials(searcher: OptunaSearch) -> dict[str, optuna.Trial]:
    """Ray trial id -> the Optuna trial the searcher asked for it (`OptunaSearch._ot_trials`)."""
    return searcher._ot_trials


def _optuna_study(searcher: OptunaSearch) -> optuna.Study:
    """The Optuna study the searcher asks and tells (`OptunaSearch._ot_study`)."""
    return searcher._ot_study


def _completed_ids(searcher: OptunaSearch) -> set[str]:
    """The Ray trial ids already told to Optuna (`OptunaSearch._completed_trials`)."""
    return searcher._completed_trials


def _storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage of `study` (`Study._storage`)."""
    return study._storage


def _internal_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's id of `trial` (`Trial._trial_id`, `FrozenTrial._trial_id`), not its number."""
    return trial._trial_id


def _space_of(searcher: OptunaSearch) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions the searcher asks with (`OptunaSearch._space`)."""
    return searcher._space


def _trial_of(study: optuna.Study, internal_id: int) -> optuna.Trial:
    """A live `optuna.Trial` for the stored trial `internal_id`, to tell it later."""
    return optuna.Trial(study, internal_id)


# --- the search space and the sampler --------------------------------------------------------


def optuna_space(spec: StudySpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """`search.space` as Optuna distributions: a list of values is categorical (each value encoded
    by `space.encode_choice`), the rest int or float ranges (log for `log_uniform`)."""
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
    """The sampler named in the spec, always set explicitly and seeded by the study's seed.

    `tpe` (the default) is multivariate TPE with Optuna's 10 random start-up trials; `gp` is
    Optuna's Gaussian-process sampler (multi-objective since Optuna 4.2) with a third of the budget,
    at least 10, as start-up trials. benchmarks/RESULTS.md compares them with NSGA-II and random.
    """
    s, seed = spec.search, spec.seed
    if s.sampler == "nsga2":
        # a population of a third of the budget lets small studies evolve at least twice
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, s.trials // 3)), seed=seed)
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if s.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(10, s.trials // 3))
    if s.sampler == "grid":
        grid = {p: [encode_choice(v) for v in d.values] for p, d in s.space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


# --- the searcher that Ray Tune asks ------------------------------------------------------------


RANDOM_AFTER = 5
"""Repeats in a row after which the next proposal is drawn at random (an untried point of a finite
space): a model-based sampler can insist on one point (GP on a bound, NSGA-II's small populations)."""
GIVE_UP_AFTER = 50
"""Repeats in a row after which the search ends (only a nearly exhausted huge space gets here)."""


class Searcher(OptunaSearch):
    """OptunaSearch that keeps each trial's metrics as user attributes, fails errored trials, and
    never runs a parameter set twice.

    Ray passes an errored trial's last intermediate result; told as is, Optuna would record the
    trial COMPLETE with half-trained metrics, so an error always goes to Optuna as FAIL.

    A proposal equal to an earlier trial's parameters is a *repeat*: told to Optuna at once with
    the earlier trial's result (user attribute `repeat_of`; PRUNED while the earlier one still
    runs), without a Ray trial, and the searcher asks again, so repeats do not use up the budget.
    A trial early stopping stopped (`adsearch.study.early_stop`) is told PRUNED, its metrics there
    kept as user attributes. A finite space (`space_size`) whose every point was tried ends the
    search (the study's user attribute `search_ended` says why), as does a sampler that only repeats
    itself. What was tried and how a repeat is told is `adsearch.study.repeats`.
    """

    _orphans: list | None = None  # Optuna trials a crash left RUNNING, not yet handed out; None: not looked for
    _error_texts: dict[str, str]  # Ray trial id -> the error its last result reported (made by `_errors`)
    space_size: int | None = None
    """How many parameter sets `search.space` holds (None: unbounded); set by the study."""
    say: Callable[[str], None] | None = None
    """Where a repeat and the end of the search are said (not kept in Ray's checkpoint of the searcher)."""

    def suggest(self, trial_id: str) -> dict | None:
        ot_trials = _optuna_trials(self)
        orphan = self._next_orphan()
        if orphan is not None:  # a trial Optuna handed out just before a crash, unknown to Ray
            ot_trials[trial_id] = orphan
            orphan.set_user_attr("ray_trial_id", trial_id)
            return {**orphan.params, TRIAL_KEY: orphan.number}
        for repeats in itertools.count():
            if exhausted(_optuna_study(self), self.space_size):
                return self._end(f"all {self.space_size} parameter sets of search.space have been tried")
            if repeats >= GIVE_UP_AFTER:
                return self._end(f"the sampler proposed only parameter sets already tried, {repeats} times in a row")
            config = self._ask(trial_id, at_random=repeats >= RANDOM_AFTER)
            ot_trial = ot_trials.get(trial_id)
            if ot_trial is None or not isinstance(config, dict):
                return config
            earlier = earlier_trial(_optuna_study(self), ot_trial)
            if earlier is None:
                ot_trial.set_user_attr("ray_trial_id", trial_id)
                return {**config, TRIAL_KEY: ot_trial.number}
            self._tell_repeat(ot_trial, earlier)
            del ot_trials[trial_id]
        return None  # not reached

    def _ask(self, trial_id: str, *, at_random: bool) -> dict | None:
        """`OptunaSearch.suggest`, once with a random draw instead of the study's sampler."""
        if not at_random:
            return super().suggest(trial_id)
        study = _optuna_study(self)
        points = untried(study, _space_of(self), self.space_size)
        if points is not None:  # a finite space: one of the points not tried yet
            study.enqueue_trial(random.Random(len(study.trials)).choice(points))
            return super().suggest(trial_id)
        sampler, study.sampler = study.sampler, optuna.samplers.RandomSampler(seed=len(study.trials))
        try:
            return super().suggest(trial_id)
        finally:
            study.sampler = sampler

    def _tell_repeat(self, ot_trial: optuna.Trial, earlier) -> None:
        what = tell_repeat(_optuna_study(self), ot_trial, earlier)
        if self.say is not None:
            settings = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in ot_trial.params.items())
            self.say(f"  trial {ot_trial.number}: {settings} repeats trial {earlier.number}: {what}, nothing trained")

    def _end(self, reason: str) -> str:
        """End the search: Ray starts no more trials; the study records why."""
        study = _optuna_study(self)
        if study.user_attrs.get(SEARCH_ENDED) != reason:
            study.set_user_attr(SEARCH_ENDED, reason)
            if self.say is not None:
                self.say(f"search: {reason}; no more trials")
        return Searcher.FINISHED

    def _next_orphan(self):
        """After a restore: Optuna trials still RUNNING whose Ray trial the restored Ray lost."""
        if self._orphans is None:
            ot_trials, study = _optuna_trials(self), _optuna_study(self)
            known = set(ot_trials)
            known_numbers = {t.number for t in ot_trials.values()}
            self._orphans = [
                _trial_of(study, _internal_id(t))
                for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING])
                if t.user_attrs.get("ray_trial_id") not in known and t.number not in known_numbers
            ]
        return self._orphans.pop(0) if self._orphans else None

    def on_trial_result(self, trial_id: str, result: dict):
        if "error" in result:
            self._errors[trial_id] = result["error"]
        super().on_trial_result(trial_id, result)

    @property
    def _errors(self) -> dict:
        if "_error_texts" not in self.__dict__:
            self._error_texts = {}
        return self._error_texts

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ot_trial = _optuna_trials(self).get(trial_id)
        if ot_trial is None or self._finished(ot_trial):
            # told before a crash, then re-run from its last checkpoint by the restored Ray
            _completed_ids(self).add(trial_id)
            return
        if error:
            reason = self._errors.pop(trial_id, "the trial's process failed; see its error.txt under ray/search/")
            if is_write_failure(reason):  # the machine's failure, not the trial's: it goes on when the study resumes
                ot_trial.set_user_attr(WRITE_FAILURE, reason)
                return
            ot_trial.set_user_attr("error", reason)
        if result and not error:
            for key in RECORDED + TRACE:
                if key in result:
                    ot_trial.set_user_attr(key, plain(result[key]))
        # early stopping (`early_stop.RungScheduler`) recorded its stop before Ray stopped the trial
        stopped = not error and STOPPED_AT in self._stored(ot_trial).user_attrs
        super().on_trial_complete(trial_id, None if error or stopped else result, error)

    def _stored(self, ot_trial) -> optuna.trial.FrozenTrial:
        return _storage_of(_optuna_study(self)).get_trial(_internal_id(ot_trial))

    def _finished(self, ot_trial) -> bool:
        return self._stored(ot_trial).state.is_finished()

    def __getstate__(self):  # Ray pickles the searcher with the experiment; a console holds locks
        return {k: v for k, v in self.__dict__.items() if k != "say"}

    def save(self, checkpoint_path: str):
        orphans, self._orphans = self._orphans, None  # recomputed against the storage on restore
        say = self.__dict__.pop("say", None)  # as in __getstate__
        try:
            super().save(checkpoint_path)
        finally:
            self._orphans = orphans
            if say is not None:
                self.say = say


# --- the study in Optuna's storage -----------------------------------------------------------


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage at `url` (made if missing); raises what SQLAlchemy or Optuna raise."""
    return optuna.storages.RDBStorage(url)


def failed_count(storage: str | optuna.storages.BaseStorage, study_name: str) -> int:
    """How many trials of the study have failed (repeats of a failed trial not counted again).
    Raises KeyError if it has no Optuna study yet."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    return sum(REPEAT_OF not in t.user_attrs
               for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.FAIL]))


def finished_count(storage: str | optuna.storages.BaseStorage, study_name: str) -> int:
    """How many trials of the study's budget have finished (complete or failed; repeats are not
    in the budget)."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    return sum(t.state.is_finished() and REPEAT_OF not in t.user_attrs for t in study.get_trials(deepcopy=False))


def stopped_epoch(storage: str | optuna.storages.BaseStorage, study_name: str, number: int) -> int | None:
    """The epoch after which early stopping stopped trial `number` of the study, or None."""
    storage = open_storage(storage) if isinstance(storage, str) else storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)
    return storage.get_trial(trial_id).user_attrs.get(STOPPED_AT)


def set_metric_names(storage: optuna.storages.BaseStorage, study_name: str, names: list[str]) -> None:
    """Name the study's objectives in its storage, as its readers (and optuna-dashboard) show them."""
    optuna.load_study(study_name=study_name, storage=storage).set_metric_names(names)


WRITE_FAILURE = "write_failure"
"""The user attribute of a trial a full disk stopped: left RUNNING in Optuna, its Ray trial goes on
from its last checkpoint when the study resumes (`stopped_by_disk`)."""


def stopped_by_disk(storage: str | optuna.storages.BaseStorage, study_name: str) -> bool:
    """Whether a trial of the study stopped because it could not write its files, and has not
    ended since (False before the study's search has begun)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return False
    return any(WRITE_FAILURE in t.user_attrs
               for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]))


class FailureLimit(tune.Stopper, tune.Callback):
    """Stops the whole search once `limit` trials have failed, as Optuna's storage counts them.

    Counting in the storage (not in memory) keeps failures from before a resume in the count. The
    storage is read at the first check and again after each trial error (Ray tells the searcher,
    which records the FAIL, before it tells callbacks), so the stop follows the failure that
    reaches the limit at once, whatever the timing.
    """

    def __init__(self, limit: int | None, url: str, study_name: str):
        self.limit, self.url, self.study_name = limit, url, study_name
        self._stale, self._reached = True, False

    def __call__(self, trial_id, result) -> bool:
        return False

    def on_trial_error(self, iteration, trials, trial, **info):
        self._stale = True

    def stop_all(self) -> bool:
        if self.limit is not None and self._stale and not self._reached:
            self._stale = False
            self._reached = failed_count(self.url, self.study_name) >= self.limit
        return self._reached
