"""The Optuna side of a study (adsearch/searcher.py), on a real OptunaSearch and a real Optuna
storage, without Ray running.

The contract tests come first: each private attribute of Ray Tune or Optuna that searcher.py reads
is checked through the accessor searcher.py reads it with, and a missing or changed one fails
naming the attribute, the versions it was checked on and the versions installed.
"""

from __future__ import annotations

import ast
import inspect

import optuna
import pytest
import ray
from helpers import tiny_spec
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from adsearch import searcher
from adsearch.searcher import CHECKED_ON, Searcher, make_sampler, optuna_space
from adsearch.spec import parse_spec

OBJECTIVES = dict(metric=["accuracy", "params"], mode=["max", "min"])


def spec_with(*dims: str, sampler: str = "random", trials: int = 12):
    return parse_spec(tiny_spec("s", sampler=sampler, trials=trials, space="\n    ".join(dims)))


SPACE = ("pruning.target_density: {values: [0.3, 0.95]}",)


def new_searcher(tmp_path, spec=None, name: str = "s") -> Searcher:
    """A `Searcher` as `study._run_search` makes it, on a SQLite storage in `tmp_path`."""
    spec = spec or spec_with(*SPACE)
    return Searcher(space=optuna_space(spec), sampler=make_sampler(spec), seed=spec.seed, study_name=name,
                    storage=searcher.open_storage(f"sqlite:///{tmp_path / 'study.db'}"), **OBJECTIVES)


# --- the contract: Ray's and Optuna's private attributes that searcher.py reads ------------------


def broken(attribute: str, what: str) -> None:
    pytest.fail(
        f"adsearch/searcher.py reads {attribute}, checked on ray {CHECKED_ON['ray']} and optuna "
        f"{CHECKED_ON['optuna']}; with ray {ray.__version__} and optuna {optuna.__version__} installed {what}. "
        f"Adapt its accessor in adsearch/searcher.py (and the pins in pyproject.toml) before taking this version.",
        pytrace=False)


def read(attribute: str, accessor, *args, kind: type):
    """`accessor(*args)`, failing loudly if the attribute is gone or no longer a `kind`."""
    try:
        value, gone = accessor(*args), None
    except AttributeError as exc:
        value, gone = None, exc
    if gone is not None:
        broken(attribute, f"it is gone ({gone})")
    if not isinstance(value, kind):
        broken(attribute, f"it is a {type(value).__module__}.{type(value).__qualname__}, not a {kind.__qualname__}")
    return value


@pytest.fixture
def asked(tmp_path):
    """A searcher that has suggested one trial, Ray id 'ray-0', and the sampled values it gave
    (the config without the trial number it carries)."""
    s = new_searcher(tmp_path)
    config = s.suggest("ray-0")
    assert config[searcher.TRIAL_KEY] == 0  # the Optuna trial number travels with the trial
    return s, {k: v for k, v in config.items() if k != searcher.TRIAL_KEY}


def test_ot_trials_maps_the_ray_trial_id_to_the_optuna_trial_it_was_given(asked):
    s, config = asked
    trials = read("OptunaSearch._ot_trials", searcher._optuna_trials, s, kind=dict)
    if list(trials) != ["ray-0"]:
        broken("OptunaSearch._ot_trials", f"its keys after one suggest('ray-0') are {list(trials)}, not the Ray ids")
    if not isinstance(trials["ray-0"], optuna.Trial) or trials["ray-0"].params != config:
        broken("OptunaSearch._ot_trials", f"its value is {trials['ray-0']!r}, not the optuna.Trial of the config")


def test_ot_study_is_the_optuna_study_in_the_given_storage(asked):
    s, _ = asked
    study = read("OptunaSearch._ot_study", searcher._optuna_study, s, kind=optuna.Study)
    if study.study_name != "s" or len(study.get_trials()) != 1:
        broken("OptunaSearch._ot_study", f"it is study {study.study_name!r} with {len(study.get_trials())} trials, "
                                         "not the named study holding the one asked trial")


def test_completed_trials_holds_the_ray_ids_told_to_optuna(asked):
    s, _ = asked
    done = read("OptunaSearch._completed_trials", searcher._completed_ids, s, kind=set)
    if done:
        broken("OptunaSearch._completed_trials", f"it holds {done} before any trial completed")
    s.on_trial_complete("ray-0", {"accuracy": 0.9, "params": 100})
    if searcher._completed_ids(s) != {"ray-0"}:
        broken("OptunaSearch._completed_trials", f"it holds {searcher._completed_ids(s)} after 'ray-0' completed")


def test_study_storage_and_trial_ids_find_a_trial_in_the_storage(asked):
    s, _ = asked
    study = searcher._optuna_study(s)
    storage = read("optuna.Study._storage", searcher._storage_of, study, kind=optuna.storages.BaseStorage)
    trial = searcher._optuna_trials(s)["ray-0"]
    internal = read("optuna.Trial._trial_id", searcher._internal_id, trial, kind=int)
    frozen = study.get_trials(deepcopy=False)[0]
    if read("optuna.trial.FrozenTrial._trial_id", searcher._internal_id, frozen, kind=int) != internal:
        broken("optuna.trial.FrozenTrial._trial_id", "it differs from the live trial's _trial_id")
    stored = storage.get_trial(internal)
    if stored.number != trial.number or stored.state != optuna.trial.TrialState.RUNNING:
        broken("optuna.Study._storage", f"get_trial(_trial_id) gave trial {stored.number} ({stored.state.name}), "
                                        f"not the running trial {trial.number}")


def test_a_trial_is_rebuilt_from_its_study_and_id(asked):
    s, config = asked
    study = searcher._optuna_study(s)
    internal = searcher._internal_id(searcher._optuna_trials(s)["ray-0"])
    try:
        again = searcher._trial_of(study, internal)
    except TypeError as exc:
        broken("optuna.Trial(study, trial_id)", f"the constructor takes other arguments ({exc})")
    if not isinstance(again, optuna.Trial) or again.params != config or again.number != 0:
        broken("optuna.Trial(study, trial_id)", f"it gave {again!r}, not the stored trial 0 with {config}")


def _classes() -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.parse(inspect.getsource(searcher)).body if isinstance(n, ast.ClassDef)}


def _own_attributes(cls: ast.ClassDef) -> set[str]:
    """What a class of searcher.py defines itself: its methods, its declared attributes, and the
    attributes its `__init__` sets on `self`."""
    own = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    own |= {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}
    for init in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"):
        own |= {t.attr for t in ast.walk(init) if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store)}
    return own


def test_the_searcher_modules_own_attributes_are_not_ray_s():
    """Searcher and FailureLimit keep private attributes on the Ray classes they extend: Ray must not
    use those names itself."""
    optuna_search = OptunaSearch(space=optuna_space(spec_with(*SPACE)), **OBJECTIVES)
    optuna_search.suggest("ray-0")
    bases = {"Searcher": [optuna_search], "FailureLimit": [tune.Stopper, tune.Callback]}
    classes = _classes()
    assert set(classes) == set(bases), "a new class in searcher.py: say here which Ray classes it extends"
    for name, cls in classes.items():
        for own in sorted(a for a in _own_attributes(cls) if a.startswith("_") and not a.startswith("__")):
            for base in bases[name]:
                if hasattr(base, own):
                    broken(f"{type(base).__name__ if not isinstance(base, type) else base.__name__}.{own}",
                           f"Ray now has an attribute of that name, which {name} uses for its own")


def _private_reads_outside_accessors() -> list[str]:
    """`x._name` in searcher.py outside its accessors, but for a class's own attributes on `self`."""
    accessors = {"_optuna_trials", "_optuna_study", "_completed_ids", "_storage_of", "_internal_id", "_trial_of"}
    found = []
    for top in ast.parse(inspect.getsource(searcher)).body:
        if isinstance(top, ast.FunctionDef) and top.name in accessors:
            continue
        own = _own_attributes(top) if isinstance(top, ast.ClassDef) else set()
        for node in ast.walk(top):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
            if not (on_self and node.attr in own):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_private_attribute_is_read_outside_the_accessors():
    assert _private_reads_outside_accessors() == [], (
        "searcher.py reads private attributes of Ray or Optuna outside its accessors: add an accessor and check "
        "it in this file")


# --- Searcher: what it records, and the trials a crash left running ------------------------------


def test_a_completed_trial_keeps_its_metrics_and_an_errored_one_fails_with_its_reason(tmp_path):
    s = new_searcher(tmp_path)
    s.suggest("ray-0"), s.suggest("ray-1")
    s.on_trial_complete("ray-0", {"accuracy": 0.9, "params": 100, "widths": [4, 8], "wall_s": float("nan")})
    s.on_trial_result("ray-1", {"error": "ValueError: diverged", "accuracy": float("nan"), "params": 100})
    s.on_trial_complete("ray-1", {"accuracy": 0.5, "params": 100}, error=True)  # the last result Ray kept
    a, b = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}").get_trials()
    assert a.state.name == "COMPLETE" and a.values == [0.9, 100]
    assert a.user_attrs["widths"] == [4, 8] and a.user_attrs["wall_s"] is None and a.user_attrs["ray_trial_id"] == "ray-0"
    assert b.state.name == "FAIL" and b.values is None and b.user_attrs["error"] == "ValueError: diverged"


def test_a_trial_told_before_a_crash_is_not_told_again(tmp_path):
    s = new_searcher(tmp_path)
    s.suggest("ray-0")
    s.on_trial_complete("ray-0", {"accuracy": 0.9, "params": 100})
    searcher._completed_ids(s).clear()  # as a restored searcher whose last snapshot predates the tell
    s.on_trial_complete("ray-0", {"accuracy": 0.1, "params": 1})
    (trial,) = searcher._optuna_study(s).get_trials()
    assert trial.values == [0.9, 100] and searcher._completed_ids(s) == {"ray-0"}


def test_trials_a_crash_left_running_are_handed_out_first_then_new_ones(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    lost = study.ask(optuna_space(spec_with(*SPACE)))
    lost.set_user_attr("ray_trial_id", "gone")
    s = new_searcher(tmp_path)
    assert s.suggest("ray-new") == {**lost.params, searcher.TRIAL_KEY: lost.number}
    assert searcher._internal_id(searcher._optuna_trials(s)["ray-new"]) == searcher._internal_id(lost)
    assert s.suggest("ray-next") is not None and len(study.get_trials()) == 2
    assert study.get_trials()[0].user_attrs["ray_trial_id"] == "ray-new"


def test_a_saved_searcher_restores_its_trials_and_looks_for_lost_ones_again(tmp_path):
    s = new_searcher(tmp_path)
    s.suggest("ray-0")
    s._next_orphan()  # none: computed once, then kept
    assert s._orphans == []
    s.save(str(tmp_path / "searcher.pkl"))
    assert s._orphans == []  # the running searcher keeps its own
    again = Searcher()
    again.restore(str(tmp_path / "searcher.pkl"))
    assert list(searcher._optuna_trials(again)) == ["ray-0"] and again._orphans is None


# --- the sampler and the search space ------------------------------------------------------------

MIXED = ("pruning.compress_at: {values: [[1], [1, 2]]}",
         "pruning.min_channels: {distribution: int_uniform, low: 2, high: 10, step: 2}",
         "train.optimizer.lr: {distribution: log_uniform, low: 0.01, high: 0.2}",
         "pruning.target_density: {distribution: uniform, low: 0.5, high: 0.95}")


@pytest.mark.parametrize("name, kind", [("nsga2", optuna.samplers.NSGAIISampler),
                                        ("tpe", optuna.samplers.TPESampler),
                                        ("random", optuna.samplers.RandomSampler),
                                        ("grid", optuna.samplers.GridSampler)])
def test_each_sampler_name_gives_its_optuna_sampler_seeded_by_the_spec(name, kind):
    dims = ("pruning.compress_at: {values: [[1], [1, 2]]}", "pruning.target_density: {values: [0.3, 0.6, 0.95]}") \
        if name == "grid" else MIXED
    spec = spec_with(*dims, sampler=name)
    first = []
    for _ in range(2):
        sampler = make_sampler(spec)
        assert type(sampler) is kind
        study = optuna.create_study(sampler=sampler, directions=["maximize", "minimize"])
        first.append([study.ask(optuna_space(spec)).params for _ in range(3)])
    assert first[0] == first[1]  # the same spec proposes the same trials


def test_the_search_space_as_optuna_distributions():
    space = optuna_space(spec_with(*MIXED))
    assert space["pruning.compress_at"] == optuna.distributions.CategoricalDistribution(["[1]", "[1, 2]"])
    assert space["pruning.min_channels"] == optuna.distributions.IntDistribution(2, 10, step=2)
    assert space["train.optimizer.lr"] == optuna.distributions.FloatDistribution(0.01, 0.2, log=True)
    assert space["pruning.target_density"] == optuna.distributions.FloatDistribution(0.5, 0.95)
