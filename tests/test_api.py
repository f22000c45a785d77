"""The public Python API (adsearch/__init__.py): every name resolves, `import adsearch` stays cheap,
and a real study read back with `load_study` agrees with its trials.csv, pareto.csv, recorded
history and exported network."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

import adsearch


def test_every_public_name_resolves_to_a_callable():
    assert set(adsearch.__all__) >= {"load_spec", "run_study", "resume_study", "run_trial", "register_dataset",
                                     "register_model", "load_model", "load_study"}
    assert all(callable(getattr(adsearch, name)) for name in adsearch.__all__)
    assert set(adsearch.__all__) <= set(dir(adsearch))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        adsearch.nope  # noqa: B018


def test_import_adsearch_loads_neither_torch_nor_ray_nor_pandas():
    code = "import sys, adsearch; print(sorted(m for m in ('torch', 'ray', 'pandas', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_spec_takes_set_style_overrides_or_a_mapping(tmp_path):
    from helpers import tiny_spec

    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec("tiny"))
    listed = adsearch.load_spec(path, overrides=["train.epochs=5", "search.space={pruning.weights: {values: [reinit]}}"])
    mapped = adsearch.load_spec(path, overrides={"train.epochs": 5, "search.space": {"pruning.weights": {"values": ["reinit"]}}})
    assert listed == mapped and listed.train.epochs == 5 and list(listed.search.space) == ["pruning.weights"]
    assert adsearch.load_spec(path).train.epochs == 3
    with pytest.raises(adsearch.SpecError, match="expected dotted.path=value"):
        adsearch.load_spec(path, overrides=["train.epochs"])


def test_load_study_reads_the_tables_the_report_wrote(tiny_study):
    study = adsearch.load_study(tiny_study)
    assert study.name == "tiny" and study.state == "done" and study.spec.search.trials == 2
    csv = pd.read_csv(tiny_study / "trials.csv").set_index("number")
    trials = study.trials
    assert list(trials.index) == list(csv.index) == [-1, 0, 1]
    assert set(csv.columns) <= set(trials.columns)
    for column in ("accuracy", "params", "train_macs", "params_ratio", "accuracy_drop"):
        assert trials[column].tolist() == pytest.approx(csv[column].tolist(), nan_ok=True)
    assert sorted(trials["param:pruning.target_density"].tolist()[1:]) == [0.3, 0.95]
    assert isinstance(trials.loc[1, "widths"], list) and trials.loc[1, "state"] == "COMPLETE"
    assert study.baseline["role"] == "baseline" and study.baseline["params_ratio"] == 1.0
    front = sorted(pd.read_csv(tiny_study / "pareto.csv")["number"])
    assert sorted(study.front.index) == front and study.front["on_front"].all()
    assert trials["recommended"].sum() <= 1
    if study.recommended is not None:
        assert bool(trials.loc[study.recommended.name, "recommended"])


def test_history_is_one_row_per_epoch_as_recorded(tiny_study):
    study = adsearch.load_study(tiny_study)
    history = study.history(1)
    assert list(history.index) == [1, 2, 3]
    assert history["params"].iloc[-1] == study.trials.loc[1, "params"]
    assert history["accuracy"].iloc[-1] == pytest.approx(study.trials.loc[1, "accuracy"])
    with pytest.raises(adsearch.AdsearchError, match="has no trial 7; its trials: baseline"):
        study.history(7)


def test_model_is_the_network_the_trial_ended_with(tiny_study):
    study = adsearch.load_study(tiny_study)
    net = study.model(1)
    assert sum(p.numel() for p in net.parameters()) == study.trials.loc[1, "params"]
    assert not net.training
    x = torch.randn(3, 1, 8, 8)
    exported = adsearch.export_trial(tiny_study, number=1, out_dir=tiny_study / "models" / "api-test")
    with torch.no_grad():
        assert torch.equal(net(x), adsearch.load_model(exported.path)(x))


def test_a_failed_trial_has_no_model(tiny_study_copy):
    import optuna

    storage = f"sqlite:///{tiny_study_copy / 'study.db'}"
    failed = optuna.load_study(study_name="tiny", storage=storage)
    failed.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                               params={}, distributions={}, user_attrs={"error": "diverged"}))
    study = adsearch.load_study(tiny_study_copy)
    assert study.state == "done" and study.trials.loc[2, "state"] == "FAIL"
    with pytest.raises(adsearch.AdsearchError, match="trial 2 of study 'tiny' failed.*diverged"):
        study.model(2)
