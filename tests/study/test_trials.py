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
