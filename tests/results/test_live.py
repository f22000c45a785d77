"""The running trials' live entries (adsearch.results.live): what an entry keeps, the trial it reads
back as (its label, its time left, whether it is quiet), and the entries in a study's `live/`."""

from __future__ import annotations

import time

import pytest
from helpers import LIVE_SETTINGS as SETTINGS
from helpers import entry

from adsearch.results.live import (
    LiveTrial, clear_live, end_live, live_entry, live_trials, read_live, save_live,
)
from adsearch.results.rows import BASELINE
from adsearch.results.study_dir import StudyDir

# --- the entry a trial writes ------------------------------------------------------------------


def test_an_entry_keeps_only_what_the_display_needs():
    e = entry(density={"conv1": 0.5}, history=[{"epoch": 1}], widths=(8, 16), top5=0.99, macs=2e6)
    assert e == {"kind": "search", "number": 3, "settings": SETTINGS, "epochs": 20, "epoch": 5, "first_epoch": 0,
                 "started": 1000.0, "updated": 1100.0, "accuracy": 0.912, "loss": 0.3123, "train_loss": None,
                 "params": 115_000, "macs": 2e6, "rounds": 1, "widths": [8, 16]}
    assert entry(epoch=0)["epoch"] == 0 and entry(epoch=0)["accuracy"] is None  # written when the trial starts
    with pytest.raises(ValueError, match="kind must be one of 'baseline', 'search', 'control', 'compute control', 'replicate', got 'trial'"):
        live_entry(kind="trial", number=3, settings={}, epochs=20, metrics=None, started=0.0)


def test_time_left_counts_only_the_epochs_trained_in_this_process():
    trial = LiveTrial.from_entry(entry(), now=1100.0)  # 5 epochs in 100 s: 20 s each, 15 to go
    assert (trial.elapsed_s, trial.epoch_s, trial.left_s) == (100.0, 20.0, 300.0)
    later = LiveTrial.from_entry(entry(), now=1110.0)  # 10 s into epoch 6
    assert (later.elapsed_s, later.left_s) == (110.0, 290.0)
    resumed = LiveTrial.from_entry(entry(first_epoch=4, started=1080.0), now=1100.0)  # epoch 5 alone in 20 s
    assert (resumed.epoch_s, resumed.left_s) == (20.0, 300.0)
    shared = LiveTrial.from_entry(entry(epoch=12, shared_epochs=10, started=1060.0), now=1100.0)  # 10 from the cache
    assert (shared.first_epoch, shared.epoch_s, shared.left_s) == (10, 20.0, 160.0)
    starting = LiveTrial.from_entry(entry(epoch=0), now=1100.0)
    assert starting.left_s is None and starting.text().endswith(": starting, 20 epochs; 1m 40s so far")


def test_labels_and_a_quiet_entry():
    assert [t.label for t in live_trials([entry(4, kind="control"), entry(7), entry(BASELINE, kind="baseline"),
                                          entry(3), {"kind": "search"}, {"not": "an entry"}])] == \
        ["baseline", "trial 3", "trial 7", "control of trial 4"]  # what is not an entry is skipped
    assert not LiveTrial.from_entry(entry(), now=1100.0 + 600).quiet
    assert LiveTrial.from_entry(entry(), now=1100.0 + 601).quiet  # ten minutes without an epoch
    slow = entry(started=0.0)  # 220 s an epoch: quiet after three of them
    assert not LiveTrial.from_entry(slow, now=1100.0 + 650).quiet and LiveTrial.from_entry(slow, now=1100.0 + 661).quiet


# --- live/: an entry per running trial ------------------------------------------------------------


def live(kind: str, number: int, epoch: int = 1) -> dict:
    return live_entry(kind=kind, number=number, settings={}, epochs=3, metrics={"epoch": epoch, "accuracy": 0.5},
                      started=time.time() - 10)


def test_live_entries_are_saved_by_trial_read_back_ended_and_cleared(tmp_path):
    study = StudyDir(tmp_path / "s")
    assert read_live(study) == []  # no live/ yet
    for kind, number in (("baseline", -1), ("search", 3), ("control", 3)):
        save_live(study, live(kind, number))
    assert sorted(p.name for p in study.live_dir.iterdir()) == ["baseline.json", "control-3.json", "trial-3.json"]
    save_live(study, live("search", 3, epoch=2))  # the trial's next epoch replaces its entry
    assert [(e["kind"], e["number"], e["epoch"]) for e in read_live(study)] == [
        ("baseline", -1, 1), ("control", 3, 1), ("search", 3, 2)]
    (study.live_dir / "trial-9.json").write_text('{"kind": "search", "num')  # torn
    (study.live_dir / "trial-8.json").write_text("[1, 2]")  # not an entry
    assert len(read_live(study)) == 3
    end_live(study, "search", 3)
    end_live(study, "search", 3)  # already gone: fine
    assert [e["kind"] for e in read_live(study)] == ["baseline", "control"]
    clear_live(study)
    assert read_live(study) == [] and list(study.live_dir.iterdir()) == []
    with pytest.raises(ValueError, match="kind must be one of 'baseline', 'search', 'control', 'compute control', 'replicate', got 'trial'"):
        save_live(study, {**live("search", 3), "kind": "trial"})
