"""Early stopping in a study: the rung scheduler on a real Optuna storage, then a real study on Ray."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import optuna
import pandas as pd
from helpers import adsearch, load_study, tiny_spec

from adsearch.results.reading import read_study
from adsearch.results.rows import STOPPED_AT
from adsearch.spec.sections import EarlyStop, Objective
from adsearch.study.early_stop import RUNGS_KEY, RungScheduler
from adsearch.study.halving import RungEntry, replay
from adsearch.study.searcher import TRIAL_KEY

OBJECTIVES = [Objective(metric="accuracy"), Objective(metric="params")]


def report(epoch, accuracy, params, rounds=1):
    return {"epoch": epoch, "accuracy": accuracy, "params": params, "train_macs": 1e9, "rounds": rounds}


def test_decisions_are_recorded_in_the_storage_and_a_restored_scheduler_keeps_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize"])
    trials = [study.ask() for _ in range(4)]
    rule = EarlyStop(rungs=[2, 4], keep=0.5, min_peers=2, peers="all")
    scheduler = RungScheduler(rule, OBJECTIVES, url, "s")
    decide = lambda n, result: scheduler.on_trial_result(None, SimpleNamespace(config={TRIAL_KEY: n}), result)  # noqa: E731

    assert decide(0, report(1, 0.5, 100)) == "CONTINUE"  # not a rung: nothing recorded
    assert decide(0, report(2, 0.9, 100)) == "CONTINUE"
    assert decide(1, report(2, 0.5, 100)) == "STOP"  # dominated by trial 0, 1 of 2 better
    stored = {t.number: t.user_attrs for t in load_study(tmp_path, "s").trials}
    assert stored[1][STOPPED_AT] == 2 and STOPPED_AT not in stored[0]
    assert stored[1][RUNGS_KEY]["2"]["go_on"] is False and stored[0][RUNGS_KEY]["2"]["order"] == 0

    # Ray restores a scheduler as it was pickled; it reads the arrivals back from the storage
    restored = pickle.loads(pickle.dumps(scheduler))
    again = lambda n, result: restored.on_trial_result(None, SimpleNamespace(config={TRIAL_KEY: n}), result)  # noqa: E731
    assert again(1, report(2, 0.99, 10)) == "STOP"  # trained again after a kill: the decision it got
    assert again(1, report(3, 0.99, 10)) == "STOP"  # a kill before Ray stopped it: it goes no further
    assert again(2, report(2, 0.4, 100)) == "STOP"  # 0 better; 1 (recorded, stopped) too: 2 of 3
    assert again(3, report(2, 0.95, 100)) == "CONTINUE"
    recorded = [RungEntry.of(e) for t in load_study(tmp_path, "s").trials for e in t.user_attrs[RUNGS_KEY].values()]
    assert [e.order for e in sorted(recorded, key=lambda e: e.number)] == [0, 1, 2, 3]
    # the recorded decisions are those their order of arrival gives
    assert sorted(replay(recorded, objectives=OBJECTIVES, keep=0.5, min_peers=2, peers="all"),
                  key=lambda e: e.number) == sorted(recorded, key=lambda e: e.number)
    del trials


def test_a_study_stops_a_trial_that_ranks_out_records_it_and_counts_it_in_the_budget(tmp_path, ray_session):
    """Four learning rates, the same pruning (so the same parameters): the rung at epoch 2 ranks on
    accuracy alone, one trial at a time in the grid's order; with keep 0.5 from 2 peers a trial less
    accurate than half of those before it stops."""
    text = tiny_spec("early", epochs=4, trials=4, concurrent=1,
                     space="train.optimizer.lr: {values: [0.1, 0.03, 0.001, 0.0001]}")
    text = text.replace("  sampler: grid", "  sampler: grid\n  early_stop: {rungs: [2], keep: 0.5, min_peers: 2}")
    (tmp_path / "early.yaml").write_text(text)
    res = adsearch("run", "early.yaml", "--reports", tmp_path / "reports", "--address",
                   ray_session.get_runtime_context().gcs_address, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    directory = tmp_path / "reports" / "early"
    trials = load_study(directory, "early").trials
    assert sum(t.state.is_finished() for t in trials) == 4
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert stopped, [(t.number, t.user_attrs.get(RUNGS_KEY)) for t in trials]
    for t in stopped:  # PRUNED, with what it had at its rung
        assert t.user_attrs[STOPPED_AT] == 2 and t.user_attrs["epoch"] == 2 and t.user_attrs["accuracy"] > 0
        assert t.values is None
    entries = [RungEntry.of(t.user_attrs[RUNGS_KEY]["2"]) for t in trials]
    assert replay(entries, objectives=OBJECTIVES, keep=0.5, min_peers=2) == sorted(entries, key=lambda e: e.order)
    for t in trials:  # stopped iff ranked out
        assert (t.state == optuna.trial.TrialState.PRUNED) == (not t.user_attrs[RUNGS_KEY]["2"]["go_on"])

    record = read_study(directory)
    front = set(pd.read_csv(directory / "pareto.csv")["number"])
    assert not front & {t.number for t in stopped}
    table = pd.read_csv(directory / "trials.csv").set_index("number")
    assert (table.loc[[t.number for t in stopped], "stopped_at"] == 2).all()
    assert record.trials_done == 4
    n = len(stopped)
    assert "stopped early after epoch 2 (search.early_stop)" in res.stdout
    assert "## Trials stopped early" in (directory / "report.md").read_text()
    show = adsearch("show", directory, cwd=tmp_path).stdout
    assert f"{4 - n} complete, {n} stopped early, 0 failed" in show and "stopped@2" in show
    one = adsearch("show", directory, "--trial", str(stopped[0].number), cwd=tmp_path).stdout
    assert "stopped early after epoch 2 of 4 by search.early_stop" in one
    assert "4/4" in adsearch("ls", tmp_path / "reports", cwd=tmp_path).stdout
    export = adsearch("export", directory, "--trial", str(stopped[0].number), cwd=tmp_path)
    assert export.returncode == 1 and "was stopped early after epoch 2 (search.early_stop)" in export.stderr
