"""The process settings a study needs (adsearch/cluster.py): set where a study starts, never at
import, and the same however often they are set."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


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
    import adsearch.study, adsearch.searcher, adsearch.cluster
    print(settings())
    """)
    assert out == "([], [], 20, 0)"  # 20: optuna.logging.INFO, its default


def test_configure_process_sets_the_study_s_settings_once_however_often_called():
    out = run_python(SETTINGS + """
    from adsearch.cluster import configure_process
    configure_process()
    configure_process()
    print(settings())
    """)
    assert out == ("(['TUNE_DISABLE_AUTO_CALLBACK_LOGGERS', 'TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_"
                   "THRESHOLD_S'], ['_AlreadyDeletedCheckpoint'], 30, 1)")  # 30: optuna.logging.WARNING
