"""What runs in a Ray worker (adsearch/study/trials.py): the checkpoint a trial resumes from."""

from __future__ import annotations

import pytest
import torch

from adsearch.study.trials import CHECKPOINT_FILE, load_checkpoint


def test_a_torn_last_checkpoint_falls_back_to_the_one_before_with_a_warning(tmp_path):
    good, torn = tmp_path / "checkpoint_000003", tmp_path / "checkpoint_000004"
    for directory in (good, torn):
        directory.mkdir()
    torch.save({"epoch": 3, "weights": torch.arange(4.0)}, good / CHECKPOINT_FILE)
    torch.save({"epoch": 4, "weights": torch.arange(4.0)}, torn / CHECKPOINT_FILE)
    data = (torn / CHECKPOINT_FILE).read_bytes()
    (torn / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])  # a write cut short
    with pytest.warns(UserWarning, match=r"checkpoint_000004/trial.pt is unreadable .*falling back"):
        ckpt = load_checkpoint(torn)
    assert ckpt["epoch"] == 3 and torch.equal(ckpt["weights"], torch.arange(4.0))
    assert (torn / CHECKPOINT_FILE).read_bytes() == data[: len(data) // 2]  # left as it was
    (good / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        assert load_checkpoint(torn) is None  # nothing readable: the trial starts again


def test_a_checkpoint_a_kill_left_deleted_is_put_back_from_the_newest_one_the_driver_logged(tmp_path, ray_session):
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from ray import tune

    from adsearch.study.trials import restore_named_checkpoints

    def trainable(config):
        restored = tune.get_checkpoint()
        state = load_checkpoint(Path(restored.path)) if restored else None  # as the study's trainables do
        start = state["epoch"] if state else 0
        for epoch in range(start + 1, 7):
            with tempfile.TemporaryDirectory() as d:
                torch.save({"epoch": epoch}, Path(d) / CHECKPOINT_FILE)
                tune.report({"epoch": epoch, "resumed_from": start}, checkpoint=tune.Checkpoint.from_directory(d))
            if epoch == 2 and not restored:
                raise RuntimeError("cut short")

    run = tune.RunConfig(name="exp", storage_path=str(tmp_path), verbose=0,
                         checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
    tune.Tuner(trainable, run_config=run).fit()
    experiment = tmp_path / "exp"
    (folder,) = [d for d in experiment.iterdir() if d.is_dir() and d.name.startswith("trainable")]
    assert sorted(d.name for d in folder.glob("checkpoint_*")) == ["checkpoint_000000", "checkpoint_000001"]
    # what a kill between Tune's snapshots leaves: epochs 3 and 4 taken in (logged, the snapshot's
    # named checkpoints 0 and 1 deleted), epoch 5 saved but not taken in, the snapshot still naming 1
    with (folder / "result.json").open("a") as log:
        for index, epoch in ((2, 3), (3, 4), (4, 5)):
            (folder / f"checkpoint_00000{index}").mkdir()
            torch.save({"epoch": epoch}, folder / f"checkpoint_00000{index}" / CHECKPOINT_FILE)
            if epoch < 5:
                log.write(json.dumps({"epoch": epoch}) + "\n")
    for index in (0, 1):
        shutil.rmtree(folder / f"checkpoint_00000{index}")
    lost = shutil.copytree(experiment, tmp_path / "lost")
    unlogged = shutil.copytree(experiment, tmp_path / "unlogged")
    (next(unlogged.glob("trainable*")) / "result.json").write_text("")  # the driver's log lost epochs 3 and 4 too

    # as Ray Tune restores it alone: the trial fails
    grid = tune.Tuner.restore(str(lost), trainable, resume_errored=True).fit()
    assert "does not exist on storage anymore" in str(grid[0].error)

    restore_named_checkpoints(experiment)
    assert torch.load(folder / "checkpoint_000001" / CHECKPOINT_FILE, weights_only=True)["epoch"] == 4
    assert list((folder / "checkpoint_000000").iterdir()) == []  # Tune only deletes it
    assert not list(folder.glob(".*partial"))
    grid = tune.Tuner.restore(str(experiment), trainable, resume_errored=True).fit()
    assert grid[0].error is None
    assert grid[0].metrics["epoch"] == 6 and grid[0].metrics["resumed_from"] == 4  # the newest logged epoch

    restore_named_checkpoints(unlogged)  # no checkpoint of a logged epoch: the trial starts again
    again = next(unlogged.glob("trainable*"))
    assert list((again / "checkpoint_000001").iterdir()) == [] and load_checkpoint(again / "checkpoint_000001") is None
    grid = tune.Tuner.restore(str(unlogged), trainable, resume_errored=True).fit()
    assert grid[0].error is None and grid[0].metrics["epoch"] == 6 and grid[0].metrics["resumed_from"] == 0


def test_a_snapshot_a_full_disk_tore_is_left_to_ray(tmp_path):
    from adsearch.study.trials import restore_named_checkpoints

    (tmp_path / "experiment_state-2026-12-03_09-34-22.json").write_text('{"trial_data": [["{\\"sta')
    (tmp_path / "trial").mkdir()
    restore_named_checkpoints(tmp_path)  # no error: Ray, reading it, starts the experiment again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment_state-2026-12-03_09-34-22.json", "trial"]
