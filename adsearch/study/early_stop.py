"""`search.early_stop` in a running study: the Ray Tune scheduler that stops trials at rungs.

`RungScheduler` sees every epoch's report of the search trials; at a rung it asks
`adsearch.study.halving.decide` whether the trial goes on, records the arrival and the decision on the
trial in Optuna's storage (user attribute `RUNGS_KEY`; a stopped trial also `STOPPED_AT`, its epoch)
before Ray acts on it, and tells Ray to stop the trial or let it go on. The searcher then tells
Optuna the stopped trial as PRUNED with its metrics at that epoch (`Searcher.on_trial_complete`), so
it counts in the budget, stays off the front, and a repeat of its parameters is told the same.

Every decision is read back from the storage: a resumed study (Ray restores this scheduler as it was
made, with no memory of the run before) ranks against the same arrivals, and a trial that reports a
rung again (trained again after a kill) gets the decision it got the first time.
"""

from __future__ import annotations

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from adsearch.results.rows import STOPPED_AT
from adsearch.spec.sections import EarlyStop
from adsearch.study.halving import RungEntry, decide, rung_objectives
from adsearch.study.searcher import TRIAL_KEY, open_storage

RUNGS_KEY = "rungs"
"""The Optuna user attribute of a trial's arrivals at rungs: rung epoch (as text) -> `RungEntry.plain()`."""


class RungScheduler(FIFOScheduler):
    """Stops the search trials that `search.early_stop` ranks out at a rung (see the module doc)."""

    def __init__(self, rule: EarlyStop, objectives, url: str, study_name: str):
        super().__init__()
        self.rule, self.url, self.study_name = rule, url, study_name
        self.objectives = [(o.metric, o.mode) for o in objectives]
        self._storage = self._study_id = self._arrived = None

    def __getstate__(self):  # Ray pickles the scheduler with the experiment: no connection, no stale table
        return {**self.__dict__, "_storage": None, "_study_id": None, "_arrived": None}

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        epoch, number = result.get("epoch"), (trial.config or {}).get(TRIAL_KEY)
        if number is None or "error" in result:
            return TrialScheduler.CONTINUE
        if any(number in arrived and not arrived[number].go_on for arrived in self._table().values()):
            return TrialScheduler.STOP  # stopped before a kill that left it running: stopped it stays
        if epoch not in self.rule.rungs:
            return TrialScheduler.CONTINUE
        entry = self.arrive(number, epoch, result)
        return TrialScheduler.CONTINUE if entry.go_on else TrialScheduler.STOP

    def arrive(self, number: int, epoch: int, result: dict) -> RungEntry:
        """Trial `number` reached rung `epoch` with `result` (its report there): the decision, recorded."""
        arrived = self._table().setdefault(epoch, {})
        if number in arrived:  # reported again (trained again after a kill): the decision it got
            return arrived[number]
        values = {m: result[m] for m, _ in rung_objectives(self.objectives) if m in result}
        entry = decide(sorted(arrived.values(), key=lambda e: e.order), number, epoch, values,
                       int(result.get("rounds", 0)), objectives=self.objectives, keep=self.rule.keep,
                       min_peers=self.rule.min_peers, peers=self.rule.peers)
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(self._study_id, number)
        rungs = dict(self._storage.get_trial(trial_id).user_attrs.get(RUNGS_KEY) or {})
        rungs[str(epoch)] = entry.plain()
        self._storage.set_trial_user_attr(trial_id, RUNGS_KEY, rungs)
        if not entry.go_on:
            self._storage.set_trial_user_attr(trial_id, STOPPED_AT, epoch)
        arrived[number] = entry
        return entry

    def _table(self) -> dict[int, dict[int, RungEntry]]:
        """Rung epoch -> trial number -> its arrival, as the storage records them (read once)."""
        if self._arrived is None:
            self._storage = open_storage(self.url)
            self._study_id = self._storage.get_study_id_from_name(self.study_name)
            self._arrived = recorded_arrivals(self._storage.get_all_trials(self._study_id, deepcopy=False))
        return self._arrived


def recorded_arrivals(trials) -> dict[int, dict[int, RungEntry]]:
    """Rung epoch -> trial number -> its recorded arrival, from Optuna trials' user attributes."""
    table: dict[int, dict[int, RungEntry]] = {}
    for t in trials:
        for data in (t.user_attrs.get(RUNGS_KEY) or {}).values():
            entry = RungEntry.of(data)
            table.setdefault(entry.rung, {})[entry.number] = entry
    return table
