"""Where a study runs (adsearch/study/cluster.py): the process settings it needs, set where a study starts,
never at import, the same however often they are set; what its trials ask against what the
machine or the cluster has."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from adsearch.study.cluster import Capacity, resource_problems
from adsearch.spec.loading import parse_spec


def run_python(code: str) -> str:
    """`code` in a fresh Python, without the Tune variables a study run in this process may have set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNE_")}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


SETTINGS = """
    import logging, os, warnings, optuna
    def settings():
        return (sorted(k for k in os.environ if k.startswith("TUNE_")),
                [type(f).__name__ for f in logging.getLogger("ray.tune.execution.tune_controller").filters],
                optuna.logging.get_verbosity(),
                sum(f[2] is optuna.exceptions.ExperimentalWarning for f in warnings.filters))
"""


def test_importing_a_study_changes_no_process_setting():
    out = run_python(SETTINGS + """
    import adsearch.study.runner, adsearch.study.searcher, adsearch.study.cluster
    print(settings())
    """)
    assert out == "([], [], 20, 0)"  # 20: optuna.logging.INFO, its default


def test_configure_process_sets_the_study_s_settings_once_however_often_called():
    out = run_python(SETTINGS + """
    from adsearch.study.cluster import configure_process
    configure_process()
    configure_process()
    print(settings())
    """)
    assert out == ("(['TUNE_DISABLE_AUTO_CALLBACK_LOGGERS', 'TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_"
                   "THRESHOLD_S'], ['_AlreadyDeletedCheckpoint', '_WriteFailures'], 30, 1)")  # 30: optuna.logging.WARNING


# --- what the trials ask against what the machine or the cluster has ---------------------------

BASE = "name: res\ntrain: {epochs: 2, device: cpu}\n"


def spec_with(extra: str = "", *, cpu: float = 1, gpu: float = 0, concurrent: int | None = None):
    concurrent_line = f", max_concurrent: {concurrent}" if concurrent else ""
    return parse_spec(BASE.replace("device: cpu", extra or "device: cpu")
                      + f"resources: {{per_trial: {{cpu: {cpu}, gpu: {gpu}}}{concurrent_line}}}\n")


def machine(cpus=2, gpus=0, bf16=None) -> Capacity:
    return Capacity(nodes=((cpus, gpus),), where="this machine", local=True, bf16=bf16, gpu_name="Old GPU")


def cluster(*nodes) -> Capacity:
    return Capacity(nodes=tuple(nodes), where="the cluster at '10.0.0.1:6379'", local=False)


def test_a_local_ray_that_can_never_place_a_trial_is_an_error_naming_the_field_and_both_numbers():
    errors, warnings = resource_problems(spec_with(cpu=8), machine(cpus=2))
    assert len(errors) == 1 and not warnings
    assert errors[0].startswith("resources.per_trial.cpu is 8, but this machine has 2 CPUs and no GPU")
    assert "--set resources.per_trial.cpu=1" in errors[0] and "--address" in errors[0]
    errors, _ = resource_problems(spec_with(gpu=1), machine(cpus=16))
    assert errors[0].startswith("resources.per_trial.gpu is 1, but this machine has 16 CPUs and no GPU")
    assert "--set resources.per_trial.gpu=0 --set train.device=cpu" in errors[0]
    errors, _ = resource_problems(spec_with(gpu=2), machine(cpus=16, gpus=1))
    assert "ask at most 1" in errors[0]
    assert resource_problems(spec_with(cpu=2, gpu=0.5), machine(cpus=2, gpus=1)) == ([], [])


def test_a_cluster_that_has_no_such_node_now_is_a_warning_with_the_wait():
    errors, warnings = resource_problems(spec_with(cpu=8, gpu=1), cluster((4, 0), (8, 0), (4, 0)))
    assert not errors and len(warnings) == 1
    assert warnings[0] == ("resources.per_trial asks 8 CPUs and 1 GPU per trial, but no node of the cluster at "
                           "'10.0.0.1:6379' has that now (2 nodes of 4 CPUs, no GPU; 1 of 8 CPUs, no GPU): waiting "
                           "up to 15m 00s (resources.placement_timeout_s) for an autoscaler to add one")
    assert resource_problems(spec_with(cpu=8, gpu=1), cluster((4, 0), (8, 1))) == ([], [])


def test_device_and_amp_against_the_trials_machines():
    assert resource_problems(spec_with("device: cuda"), machine())[0] == [
        "train.device is 'cuda', but this machine has no CUDA device: use auto or cpu (with "
        "resources.per_trial.gpu: 0), or run on GPU nodes: --address HOST:PORT"]
    assert "each trial sees only the 1 GPU(s) Ray gives it" in \
        resource_problems(spec_with("device: 'cuda:1'", gpu=1), machine(gpus=2))[0][0]
    assert resource_problems(spec_with("device: 'cuda:1'", gpu=2), machine(gpus=2)) == ([], [])
    assert "no node of the cluster at '10.0.0.1:6379' has a GPU" in \
        resource_problems(spec_with("device: cuda"), cluster((8, 0)))[0][0]
    bf16 = "device: cuda, amp: bf16"
    assert resource_problems(spec_with(bf16, gpu=1), machine(gpus=1, bf16=False))[0] == [
        "train.amp is bf16, but this machine's GPU (Old GPU) has no bfloat16: use fp16 (or off)"]
    assert resource_problems(spec_with(bf16, gpu=1), machine(gpus=1, bf16=True)) == ([], [])
    # auto on a GPU machine with no GPU per trial: every trial lands on cuda:0, unscheduled (it runs)
    errors, warnings = resource_problems(spec_with("device: auto"), machine(gpus=1))
    assert not errors and "so every trial runs on cuda:0, as many at once as the CPUs allow" in warnings[0]


def test_max_concurrent_above_what_fits_says_how_many_run_at_once():
    errors, warnings = resource_problems(spec_with(cpu=0.5, concurrent=8), machine(cpus=2))
    assert not errors and warnings == ["resources.max_concurrent is 8, but this machine has 2 CPUs and no GPU, room "
                                       "for 4 trial(s) at 0.5 CPUs and no GPU each: 4 will run at once"]
    assert resource_problems(spec_with(cpu=0.5, concurrent=4), machine(cpus=2)) == ([], [])
    assert cluster((4, 2), (8, 1), (2, 0)).fits(2, 1) == 3  # per node: min(2, 2) + min(4, 1) + 0
