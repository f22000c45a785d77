"""A study's Ray Tune experiments (adsearch/study/experiment.py): Ray's snapshot files that a full
disk tore are set aside before a restore, with the rest of their run's."""

from __future__ import annotations

import json

import ray.cloudpickle as cloudpickle

from adsearch.study.experiment import set_aside_torn_state

EARLIER, LATER = "2026-12-03_09-34-22", "2026-12-03_09-40-01"


def _write_run(folder, run: str, *, torn: str | None = None) -> None:
    files = {f"experiment_state-{run}.json": json.dumps({"trial_data": [], "runner_data": {}}).encode(),
             f"search_gen_state-{run}.json": cloudpickle.dumps({"counter": 3}),
             f"searcher-state-{run}.pkl": cloudpickle.dumps({"trials": [1, 2]})}
    for name, data in files.items():
        (folder / name).write_bytes(data[: len(data) // 2] if name == torn else data)


def test_a_torn_search_state_sets_its_run_aside_and_the_run_before_is_restored(tmp_path):
    _write_run(tmp_path, EARLIER)
    _write_run(tmp_path, LATER, torn=f"searcher-state-{LATER}.pkl")
    moved = set_aside_torn_state(tmp_path)
    assert sorted(p.name for p in moved) == sorted([f"experiment_state-{LATER}.json", f"search_gen_state-{LATER}.json",
                                                    f"searcher-state-{LATER}.pkl"])
    assert sorted(p.name for p in tmp_path.glob("*.torn")) == sorted(p.name + ".torn" for p in moved)
    assert set_aside_torn_state(tmp_path) == []  # the earlier run's files read back: left as they are
    assert sorted(p.name for p in tmp_path.glob(f"*{EARLIER}*")) == [f"experiment_state-{EARLIER}.json",
                                                                  f"search_gen_state-{EARLIER}.json",
                                                                  f"searcher-state-{EARLIER}.pkl"]


def test_a_torn_only_snapshot_is_set_aside_so_the_experiment_starts_again(tmp_path):
    _write_run(tmp_path, LATER, torn=f"experiment_state-{LATER}.json")
    assert len(set_aside_torn_state(tmp_path)) == 3 and not list(tmp_path.glob("experiment_state-*.json"))
    _write_run(tmp_path, EARLIER)
    assert set_aside_torn_state(tmp_path) == []  # whole files are not touched
