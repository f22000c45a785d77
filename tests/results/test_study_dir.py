"""The study directory (adsearch.results.study_dir): what counts as a study, what --fresh may delete, the
trial checkpoints kept by number, the running trials' live entries, and a study whose files cannot
be read, through the library and the command line as a user meets it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time

import pytest
from helpers import adsearch, tiny_spec

from adsearch.errors import AdsearchError, StudyDirError
from adsearch.results.checkpoints import checkpoint_path, load_checkpoint
from adsearch.results.live import live_entry, save_live
from adsearch.results.ownership import check_can_run, check_removable, foreign_entries, is_study, remove, start
from adsearch.results.reading import optuna_trials, read_study
from adsearch.results.study_dir import MARKER_FILE, StudyDir
from adsearch.spec.loading import parse_spec


def snapshot(folder) -> dict:
    """Every file under `folder` with its bytes: to assert that nothing was written or lost."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- --fresh deletes only what adsearch wrote ------------------------------------------------------


def test_fresh_refuses_a_folder_that_is_not_a_study_and_touches_nothing(tmp_path):
    notes = tmp_path / "myreports" / "notes"
    notes.mkdir(parents=True)
    (notes / "thesis.txt").write_text("three years of work")
    spec = tmp_path / "s.yaml"
    spec.write_text(tiny_spec("notes"))
    proc = adsearch("run", spec, "--reports", tmp_path / "myreports", "--fresh", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{notes} is not an adsearch study" in proc.stderr and "it holds thesis.txt" in proc.stderr
    assert "--fresh will not delete it" in proc.stderr and "another name or --reports folder" in proc.stderr
    assert snapshot(tmp_path / "myreports") == {notes.relative_to(tmp_path / "myreports") / "thesis.txt":
                                                b"three years of work"}


def test_fresh_refuses_a_study_that_holds_a_users_file(tiny_study_copy, tmp_path):
    (tiny_study_copy / "my-notes.md").write_text("trial 1 looks good")
    before = snapshot(tiny_study_copy)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(tiny_spec("tiny", concurrent=1))
    proc = adsearch("run", spec, "--reports", tiny_study_copy.parent, "--fresh", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "also holds files adsearch did not write (my-notes.md)" in proc.stderr
    assert "move them out of the folder" in proc.stderr
    assert snapshot(tiny_study_copy) == before


def test_remove_study_deletes_a_study_adsearch_made_and_nothing_else(tiny_study_copy, tmp_path):
    study = StudyDir(tiny_study_copy)
    assert is_study(study) and (tiny_study_copy / MARKER_FILE).is_file()
    assert foreign_entries(study) == []
    (tiny_study_copy / ".report.md.x1y2.tmp").write_text("")  # an atomic write cut short is ours too
    neighbour = tiny_study_copy.parent / "other.txt"
    neighbour.write_text("kept")
    remove(study)
    assert not tiny_study_copy.exists() and neighbour.read_text() == "kept"


def test_a_study_from_before_the_marker_is_still_a_study_but_a_hand_made_spec_yaml_is_not(tiny_study_copy):
    (tiny_study_copy / MARKER_FILE).unlink()
    assert is_study(StudyDir(tiny_study_copy))  # its spec.yaml starts with the header adsearch writes
    spec = tiny_study_copy / "spec.yaml"
    spec.write_text(spec.read_text().split("\n", 1)[1])  # as if a user wrote it
    assert not is_study(StudyDir(tiny_study_copy))
    before = snapshot(tiny_study_copy)
    with pytest.raises(StudyDirError, match="is not an adsearch study"):
        remove(StudyDir(tiny_study_copy))
    assert snapshot(tiny_study_copy) == before


def test_a_spec_yaml_adsearch_did_not_write_is_not_resumed(tmp_path):
    from adsearch.spec.loading import parse_spec

    text = tiny_spec("mine")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "spec.yaml").write_text(text)  # a user's own file of that name
    with pytest.raises(StudyDirError, match="holds a spec.yaml that adsearch did not write"):
        check_can_run(StudyDir(tmp_path / "mine"), parse_spec(text))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["spec.yaml"]


def test_fresh_refuses_a_study_that_a_live_process_runs(tiny_study_copy):
    import os

    (tiny_study_copy / ".lock").write_text(f"{os.getppid()}\n")  # pytest's parent: alive, not us
    with pytest.raises(StudyDirError, match=rf"is running \(pid {os.getppid()}\); stop it before --fresh"):
        remove(StudyDir(tiny_study_copy))
    assert (tiny_study_copy / "study.db").is_file()


# --- a study that cannot be read ---------------------------------------------------------------


def test_a_storage_still_being_made_reads_as_no_trials_and_is_not_written_to(tmp_path):
    db = tmp_path / "study.db"
    with sqlite3.connect(db) as con:  # what a study starting up has made so far: some of Optuna's tables
        con.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name VARCHAR(512))")
    before = db.read_bytes()
    assert optuna_trials(tmp_path, "s") == []  # opening it with Optuna would create the missing tables
    assert db.read_bytes() == before
    db.write_bytes(b"")  # created, nothing in it yet
    assert optuna_trials(tmp_path, "s") == [] and db.read_bytes() == b""



def break_study_db(study):
    (study / "study.db").write_bytes(b"this is not sqlite" * 100)
    return f"cannot read {study / 'study.db'} as an Optuna storage (DatabaseError"


def break_spec(study):
    (study / "spec.yaml").write_text((study / "spec.yaml").read_text().replace("lr: 0.05", "lr: -1"))
    return f"{study / 'spec.yaml'} no longer validates"


def break_baseline(study):
    (study / "baseline.json").write_text('{"accuracy": 0.9')  # cut short
    return f"cannot read {study / 'baseline.json'}: JSONDecodeError"


def break_scratch(study):
    (study / "scratch.json").write_text('["not", "by trial"]')
    return f"cannot read {study / 'scratch.json'}: ValueError"


@pytest.mark.parametrize("damage", [break_study_db, break_spec, break_baseline, break_scratch])
def test_an_unreadable_study_is_named_by_the_library(tiny_study_copy, damage):
    expected = damage(tiny_study_copy)
    with pytest.raises(StudyDirError) as raised:
        read_study(tiny_study_copy)
    assert expected in str(raised.value)


def test_every_command_on_an_unreadable_study_exits_2_naming_the_file_and_ls_shows_the_rest(tiny_study_copy,
                                                                                          tiny_study, tmp_path):
    reports = tiny_study_copy.parent
    shutil.copytree(tiny_study, reports / "good", ignore=shutil.ignore_patterns("models", ".lock"))
    (reports / "good" / "spec.yaml").write_text((reports / "good" / "spec.yaml").read_text()
                                                .replace("name: tiny", "name: good"))
    with sqlite3.connect(reports / "good" / "study.db") as db:  # the Optuna study is named after the study
        db.execute("UPDATE studies SET study_name = 'good'")
    expected = break_study_db(tiny_study_copy)
    before = snapshot(reports)
    for command in (["show"], ["report"], ["export", "--trial", "0"], ["resume"]):
        proc = adsearch(*command[:1], tiny_study_copy, *command[1:], cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (command, proc.stderr[-2000:])
        assert expected in proc.stderr, (command, proc.stderr)
    assert snapshot(reports) == before

    listing = adsearch("ls", reports, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert set(lines) == {"good", "tiny"}
    assert lines["good"].split()[1:3] == ["done", "2/2"]
    assert lines["tiny"].split()[1] == "unreadable" and "study.db" in lines["tiny"]
    assert snapshot(reports) == before


def test_resume_of_a_folder_not_named_after_its_study_says_how_to_fix_it(tiny_study_copy, tmp_path):
    renamed = tiny_study_copy.with_name("tiny-copy")
    tiny_study_copy.rename(renamed)
    before = snapshot(renamed)
    proc = adsearch("resume", renamed, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{renamed} holds study 'tiny'" in proc.stderr and f"rename the folder to {tiny_study_copy}" in proc.stderr
    assert snapshot(renamed) == before


def test_resume_of_a_study_whose_spec_no_longer_validates_names_the_field(tiny_study_copy):
    from adsearch.study.runner import resume_study

    expected = break_spec(tiny_study_copy)
    before = snapshot(tiny_study_copy)
    with pytest.raises(StudyDirError) as raised:  # the CLI's exit 2 for this error: the test above
        resume_study(tiny_study_copy)
    message = str(raised.value)
    assert expected in message and "train.optimizer.lr (line" in message and "--fresh" in message
    assert snapshot(tiny_study_copy) == before


# --- trial checkpoints, by trial number ----------------------------------------------------------


def test_every_finished_trial_keeps_its_final_checkpoint_by_number(tiny_study):
    record = read_study(tiny_study)
    kept = sorted(p.name for p in (tiny_study / "trials").iterdir())
    assert kept == sorted(["baseline.pt"] + [f"{r.number}.pt" for r in record.search_rows])
    for row in record.rows:
        checkpoint = load_checkpoint(record.study_dir, row)  # checks epoch and widths against the row
        assert checkpoint["epoch"] == row.metrics["epoch"] == record.spec.train.epochs
        assert list(checkpoint["widths"]) == row.widths


def test_a_checkpoint_that_disagrees_with_its_trial_is_refused(tiny_study_copy):
    import torch

    record = read_study(tiny_study_copy)
    row = record.search_rows[0]
    path = checkpoint_path(record.study_dir, row.number)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "epoch": 1}, path)
    with pytest.raises(AdsearchError, match="is from epoch 1, but its reported metrics are from epoch"):
        load_checkpoint(record.study_dir, row)
    path.unlink()
    with pytest.raises(AdsearchError, match=rf"trial {row.number} has no final checkpoint \({path} is missing\)"):
        load_checkpoint(record.study_dir, row)


# --- scratch controls, by trial number ----------------------------------------------------------


def test_scratch_controls_are_merged_by_trial_and_read_back_beside_their_trial(tiny_study_copy):
    study = StudyDir(tiny_study_copy)
    assert study.read_scratch() == {} and all(r.scratch is None for r in read_study(study).rows)
    study.save_scratch({1: {"state": "FAIL", "error": "RuntimeError: out of memory"}})
    study.save_scratch({0: {"state": "COMPLETE", "accuracy": 0.9, "params": 1690}})
    study.save_scratch({1: {"state": "COMPLETE", "accuracy": 0.8, "params": 5180}})  # a retry replaces it
    assert study.read_scratch() == {0: {"epochs": {"state": "COMPLETE", "accuracy": 0.9, "params": 1690}},
                                    1: {"epochs": {"state": "COMPLETE", "accuracy": 0.8, "params": 5180}}}
    study.save_scratch({1: {"state": "COMPLETE", "accuracy": 0.85, "epoch": 7}}, "compute")  # beside the other
    rows = {r.number: r for r in read_study(study).rows}
    assert rows[0].scratch["accuracy"] == 0.9 and rows[1].scratch["params"] == 5180 and rows[-1].scratch is None
    assert rows[1].scratch_compute == {"state": "COMPLETE", "accuracy": 0.85, "epoch": 7} == rows[1].control("compute")
    assert rows[0].scratch_compute is None and rows[1].control("epochs") is rows[1].scratch
    # a scratch.json written before controls at equal compute (trial -> control) reads as equal-epoch controls
    (tiny_study_copy / "scratch.json").write_text(json.dumps({"0": {"state": "COMPLETE", "accuracy": 0.9}}))
    assert study.read_scratch() == {0: {"epochs": {"state": "COMPLETE", "accuracy": 0.9}}}
    assert read_study(study).row(0).scratch == {"state": "COMPLETE", "accuracy": 0.9}
    assert foreign_entries(study) == []  # scratch.json is adsearch's: --fresh deletes it with the study


def test_turning_scratch_controls_on_is_no_changed_spec_but_any_other_change_is(tiny_study_copy):
    from adsearch.spec.loading import parse_spec

    study = StudyDir(tiny_study_copy)
    assert check_can_run(study, parse_spec(tiny_spec("tiny"), overrides={"search.scratch_controls": True}))
    with pytest.raises(AdsearchError, match="the spec changed since study 'tiny' began"):
        check_can_run(study, parse_spec(tiny_spec("tiny"), overrides={"search.scratch_controls": True,
                                                                      "train.epochs": 4}))


# --- live/ in a study read back and deleted ----------------------------------------------------


def test_a_running_studys_record_has_its_live_entries_and_fresh_may_delete_them(tmp_path):
    study = StudyDir(tmp_path / "tiny")
    start(study, parse_spec(tiny_spec("tiny")))
    save_live(study, live_entry(kind="baseline", number=-1, settings={}, epochs=3,
                                metrics={"epoch": 1, "accuracy": 0.5}, started=time.time() - 10))
    study.lock_file.write_text(f"{os.getpid()}\n")  # this process runs it
    record = read_study(study)
    assert record.state == "running" and [e["kind"] for e in record.live] == ["baseline"]
    study.lock_file.unlink()
    check_removable(study)  # live/ is adsearch's own
    remove(study)
    assert not study.path.exists()
