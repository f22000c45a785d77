"""Docs that run: every `adsearch` command the README and docs/ give to run is run here, as printed,
through a shell (the three paper studies' smoke runs on small generated copies of their datasets,
the quickstart's commands on a smaller quickstart), and docs/api.md's Python session is executed.

A command is "given to run" when it has arguments and no placeholder (`SPEC`, `reports/NAME`,
`[--trial N]`, `<name>`); a bare `adsearch show` is a mention. `EXPECTED` must list exactly the
commands the docs give, so a new or edited command fails here until it is run here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fake_datasets import write_cifar10, write_cifar100, write_idx_dataset, write_tinyimagenet

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]+\b|[<>\[\]|]|\.\.\.")


def given_commands(text: str) -> list[str]:
    """The `adsearch ...` commands of a Markdown text given to run: lines of its shell blocks
    (continuations joined, comments dropped) and inline code spans of its prose."""
    found = []
    for lang, body in FENCE.findall(text):
        if lang in ("bash", "sh", "shell", "console"):
            for line in body.replace("\\\n", " ").splitlines():
                found.append(re.sub(r"\s+#.*$", "", line).strip())
    found += re.findall(r"`(adsearch [^`]+)`", FENCE.sub("", text))
    commands = [re.sub(r"\s+", " ", c) for c in found if c.startswith("adsearch ")]
    return [c for c in commands if len(c.split()) > 2 and not PLACEHOLDER.search(c.split(" --set ")[0])]


def docs_commands() -> dict[str, str]:
    """Each command given to run -> the doc that gives it."""
    return {c: path.name for path in DOCS for c in given_commands(path.read_text())}


SMOKE = ("adsearch run studies/resnet18_tinyimagenet.yaml --set train.epochs=2 --set search.trials=2 "
         "--set data.limit=64 --set train.batch_size=8 --set model.width_mult=0.125 --set train.device=cpu "
         "--set resources.per_trial.gpu=0 --set resources.per_trial.cpu=1 --set 'pruning.compress_at=[1]' "
         "--set 'search.space={pruning.compress_at: {values: [[1]]}, pruning.target_density: {distribution: "
         "uniform, low: 0.6, high: 0.95}}'")
GPU_RUN = "adsearch run studies/resnet18_tinyimagenet.yaml"
QUICKSTART = ("adsearch run studies/quickstart.yaml --fresh", "adsearch export reports/quickstart --pick recommended",
              "adsearch resume reports/quickstart", "adsearch replicate reports/quickstart --seeds 2")
FASHION = "adsearch run studies/fashion_mnist.yaml --fresh"
EXPECTED = {SMOKE, GPU_RUN, *QUICKSTART, FASHION}
PAPER = {"resnet18_tinyimagenet": "resnet18-tinyimagenet", "vgg19_cifar10": "vgg19-cifar10",
         "resnet18_cifar100": "resnet18-cifar100"}


def test_the_docs_give_exactly_the_commands_run_here():
    assert set(docs_commands()) == EXPECTED, "a command in the docs is not run by this test (or one run here is gone)"


def test_placeholders_and_mentions_are_not_commands():
    text = ("`adsearch show reports/NAME [--trial N]`, `adsearch scratch reports/<name>`, `adsearch show`, "
            "`adsearch run studies/x.yaml --address HEAD_IP:6379`, `adsearch resume reports/quickstart`\n"
            "```bash\nadsearch run a.yaml --set x=1 \\\n  --set y=2   # two sets\nmake demo\n```\n")
    assert given_commands(text) == ["adsearch run a.yaml --set x=1 --set y=2", "adsearch resume reports/quickstart"]


def _small_quickstart(path: Path) -> None:
    """studies/quickstart.yaml, narrower and shorter (the commands on it are the point here, not
    its figures: `make demo` runs the real one), with a recommendation sure to exist."""
    spec = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    spec["model"]["layers"] = [8, "M", 16]
    spec["train"]["epochs"] = 4
    spec["search"].update(trials=2, space={"pruning.compress_at": {"values": [[2], [3]]}})
    spec["report"]["max_accuracy_drop"] = 1.0
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def _small_fashion(path: Path) -> None:
    """studies/fashion_mnist.yaml, tiny (its figures come from the real run in benchmarks/RESULTS.md),
    on the small IDX files the fixture writes in $ADSEARCH_DATA."""
    spec = yaml.safe_load((ROOT / "studies" / "fashion_mnist.yaml").read_text())
    spec["model"]["layers"] = [4, "M", 8]
    spec["train"].update(epochs=2, batch_size=16)
    spec["pruning"].update(start=1, every=1, max_rounds=1)
    spec["search"].update(trials=2, space={"pruning.weights": {"values": ["inherit", "reinit"]}})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Every command run in a folder of its own holding `studies/` (the paper studies as shipped,
    a small quickstart) and `$ADSEARCH_DATA` with small generated copies of the paper datasets.
    The smoke runs and the GPU run go at once, each starting its own local Ray as a user's does;
    the quickstart's three commands one after the other."""
    data = tmp_path_factory.mktemp("data")
    write_cifar10(data, per_batch=10, n_test=30)
    write_cifar100(data, n_train=30, n_test=30)
    write_tinyimagenet(data)
    write_idx_dataset(data / "fashion-mnist", n_train=100, n_test=40)
    runs: dict[str, tuple[Path, list[str]]] = {}  # name -> (folder, commands)
    for study in PAPER:
        runs[study] = (tmp_path_factory.mktemp(study), [SMOKE.replace("resnet18_tinyimagenet", study)])
    runs["gpu"] = (tmp_path_factory.mktemp("gpu"), [GPU_RUN])
    runs["quickstart"] = (tmp_path_factory.mktemp("quickstart"), list(QUICKSTART))
    runs["fashion"] = (tmp_path_factory.mktemp("fashion"), [FASHION])
    for folder, _ in runs.values():
        shutil.copytree(ROOT / "studies", folder / "studies")
    _small_quickstart(runs["quickstart"][0] / "studies" / "quickstart.yaml")
    _small_fashion(runs["fashion"][0] / "studies" / "fashion_mnist.yaml")
    results: dict[str, list[tuple[int, str]]] = {}
    with contextlib.ExitStack() as stack:
        def start(name: str, i: int) -> subprocess.Popen:
            folder, commands = runs[name]
            env = {**os.environ, "ADSEARCH_DATA": str(data), "ADSEARCH_CACHE": str(folder / "cache")}  # a cache each
            proc = subprocess.Popen(["bash", "-c", commands[i]], cwd=folder, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
            stack.callback(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
            return proc

        running = {name: start(name, 0) for name in runs}
        for name, proc in running.items():
            out, _ = proc.communicate(timeout=600)
            if proc.returncode == 143:  # a SIGTERM this test never sends, from outside: run it once more
                # (seen once in CI, a smoke run stopped before its first line; the sender unknown,
                # likely a stray signal to a reused PID among the many processes six local Rays start)
                proc = start(name, 0)
                again, _ = proc.communicate(timeout=600)
                out = f"{out}--- run again after that SIGTERM ---\n{again}"
            results[name] = [(proc.returncode, out)]
        for i in range(1, len(QUICKSTART)):
            proc = start("quickstart", i)
            out, _ = proc.communicate(timeout=600)
            results["quickstart"].append((proc.returncode, out))
    return {name: (runs[name][0], results[name]) for name in runs}


@pytest.mark.parametrize("study", PAPER)
def test_the_readme_smoke_run_of_each_paper_study_passes(ran, study):
    folder, [(code, out)] = ran[study]
    assert code == 0, out[-3000:]
    assert "[2/2]" in out and "report:" in out and "Traceback" not in out
    trials = pd.read_csv(folder / "reports" / PAPER[study] / "trials.csv")
    assert sorted(trials["number"]) == [-1, 0, 1] and (trials["state"] == "COMPLETE").all()
    base = trials[trials["role"] == "baseline"].iloc[0]
    assert base["rounds"] == 0 and base["params_ratio"] == 1.0
    assert max(json.loads(base["widths"])) == 64  # 512 channels x 1/8
    search = trials[trials["role"] == "search"]
    assert (search["param:pruning.compress_at"] == "[1]").all() and (search["rounds"] == 1).all()
    assert (search["params"] <= base["params"]).all()
    if study == "resnet18_tinyimagenet":  # its JPEGs decoded once, before the study starts
        assert f"images (train) once into the image cache {folder / 'cache'}" in out


def test_the_readme_gpu_run_stops_before_it_starts_on_this_machine(ran):
    """The full TinyImageNet study (a GPU per trial, batches of 256) cannot run here: pre-flight
    stops it with exit 2, one clear error and nothing written. On the generated copy (12 training
    images) the batch size is what it names first; with the real data, the missing GPU."""
    folder, [(code, out)] = ran["gpu"]
    assert code == 2 and "Traceback" not in out, out[-3000:]
    assert "error: train.batch_size 256 is larger than the training split" in out or (
        "resources.per_trial.gpu" in out and "resources.per_trial.gpu=0" in out), out[-3000:]
    assert not (folder / "reports").exists()


def test_the_readme_fashion_mnist_run_reads_the_idx_files_and_tests_on_the_whole_test_split(ran):
    folder, [(code, out)] = ran["fashion"]
    assert code == 0 and "[2/2]" in out and "Traceback" not in out, out[-3000:]
    trials = pd.read_csv(folder / "reports" / "fashion_mnist" / "trials.csv")
    assert sorted(trials["number"]) == [-1, 0, 1] and (trials["state"] == "COMPLETE").all()


def test_the_quickstart_commands_run_export_resume_and_replicate(ran):
    folder, [(run, run_out), (export, export_out), (resume, resume_out), (replicate, replicate_out)] = ran["quickstart"]
    assert run == 0 and "report: reports/quickstart/report.md" in run_out, run_out[-3000:]
    assert export == 0, export_out[-3000:]
    assert list((folder / "reports" / "quickstart" / "models").glob("trial-*.pt"))
    assert resume == 0 and "Traceback" not in resume_out, resume_out[-3000:]
    assert "[1/2]" not in resume_out  # nothing trained again
    assert replicate == 0 and "replicates: the baseline" in replicate_out, replicate_out[-3000:]
    assert "(2 seeds)" in (folder / "reports" / "quickstart" / "report.md").read_text()


def test_the_api_md_session_runs(tmp_path, monkeypatch, ray_session):
    """docs/api.md's Python blocks, in order, in one namespace, from a folder holding `studies/`;
    on the session's Ray (a notebook's `run_study` starts its own when none is running)."""
    shutil.copytree(ROOT / "studies", tmp_path / "studies")
    monkeypatch.chdir(tmp_path)
    blocks = [body for lang, body in FENCE.findall((ROOT / "docs" / "api.md").read_text()) if lang == "python"]
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own documentation
    study = namespace["study"]
    assert study.state == "done" and list(study.trials.index) == [-1, 0, 1, 2]
    assert study.baseline["role"] == "baseline" and study.front["on_front"].all()
    assert len(namespace["history"]) == 6 and tuple(namespace["net"](namespace["torch"].zeros(2, 1, 8, 8)).shape) == (2, 10)
