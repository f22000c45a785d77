"""Export a trial's compressed network: a state dict with its widths, TorchScript, or ONNX.

`export_trial(study_dir, number=N | pick="recommended", fmt=...)` rebuilds the network a trial
ended with from its final checkpoint (`trials/<number>.pt` in the study directory, the baseline's
`trials/baseline.pt`), at the widths it was compressed to, and writes it to
`reports/<name>/models/` with a JSON file beside it (trial, settings, widths, metrics, input
shape). Both are written under temporary names and renamed at the end, so a failed export leaves
no half-written file and an earlier export of the same trial intact. `load_model(path)` reads any
of the three back as something to call on a batch.
The inputs the network expects are the data module's: standardised per channel with the training
split's statistics (`adsearch.data.registry`).
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from adsearch.errors import AdsearchError, one_line
from adsearch.metrics import METRICS, SPENDING
from adsearch.results.checkpoints import load_checkpoint
from adsearch.results.reading import StudyRecord, read_study
from adsearch.results.rows import TrialRow
from adsearch.results.trial_network import check_finished, rebuild, trial_spec

FORMATS = {"state_dict": ".pt", "torchscript": ".torchscript.pt", "onnx": ".onnx"}
CONTROLS = ("epochs", "compute")
"""What `--control` takes: a trial's scratch control at equal epochs or at equal training compute."""
"""Export formats and the file suffix each is written with."""
PICKS = ("recommended",)


@dataclass
class Export:
    """What `export_trial` wrote: the model file, its JSON description, and that description."""

    path: Path
    info_path: Path
    info: dict


def export_trial(study_dir: Path | str, *, number: int | None = None, pick: str | None = None,
                 fmt: str = "state_dict", out_dir: Path | str | None = None, control: str | None = None) -> Export:
    """Write the network trial `number` (-1: the baseline) or the `pick`ed trial ended with.

    Args:
        study_dir: the study's directory, e.g. `reports/quickstart`.
        number: the trial to export; exactly one of `number` and `pick` is given.
        pick: 'recommended': the study's recommended trade-off.
        fmt: 'state_dict' (`load_model` or `adsearch.models.saving.load_compressed` rebuilds it),
            'torchscript' or 'onnx' (needs the `onnx` extra: `pip install 'adsearch[onnx]'`).
        out_dir: where to write; default `<study_dir>/models/`.
        control: 'epochs' or 'compute': the network of the trial's scratch control matched on that
            (its final widths trained from scratch) instead, as `trial-<N>-scratch-<control>`.

    Raises:
        AdsearchError: an unknown study, trial, pick or format (the message lists what exists), a
            trial that failed (with its reason) or has not finished, a missing or unreadable
            checkpoint, ONNX without the onnx package, or a file that cannot be written (then
            nothing is: no partial file, an earlier export of the trial left as it was).
    """
    _check_request(number, pick, fmt, control)
    if fmt == "onnx":
        _require_onnx()
    record = read_study(study_dir)
    row = record.row(_trial_number(record, number, pick))
    check_finished(record, row)
    if control is not None and row.is_baseline:
        raise AdsearchError("the baseline has no scratch control: --control takes a pruned search trial")
    checkpoint = load_checkpoint(record.study_dir, row, control)
    spec = trial_spec(record, row)
    model, data = rebuild(spec, checkpoint)

    out_dir = Path(out_dir) if out_dir is not None else record.study_dir.models_dir
    stem = ("baseline" if row.is_baseline else f"trial-{row.number}") + (f"-scratch-{control}" if control else "")
    path = out_dir / f"{stem}{FORMATS[fmt]}"
    info_path = path.with_name(f"{path.name}.json")
    info = _describe(record, row, spec, checkpoint, data, fmt, path, control)
    _write_all(out_dir, {path: lambda tmp: _write_model(model, spec, data, fmt, tmp, info),
                         info_path: lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n")})
    return Export(path=path, info_path=info_path, info=info)


# --- which trial ---------------------------------------------------------------------------------


def _check_request(number: int | None, pick: str | None, fmt: str, control: str | None = None) -> None:
    """The arguments alone, checked before the study is read."""
    if number is None and pick is None:
        raise AdsearchError("say which trial to export: --trial N, --trial baseline or --pick recommended")
    if number is not None and pick is not None:
        raise AdsearchError(f"give --trial or --pick, not both (got --trial {number} and --pick {pick})")
    if pick is not None and pick not in PICKS:
        raise AdsearchError(f"unknown pick {pick!r}; choose one of {', '.join(PICKS)} (or --trial N)")
    if fmt not in FORMATS:
        raise AdsearchError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if control is not None and control not in CONTROLS:
        raise AdsearchError(f"unknown control {control!r}; choose one of {', '.join(CONTROLS)} (the trial's scratch "
                            "control at equal epochs or at equal training compute)")


def _trial_number(record: StudyRecord, number: int | None, pick: str | None) -> int:
    if number is not None:
        return number
    from adsearch.results.pareto import recommended

    best = recommended(record.rows, record.spec.report.max_accuracy_drop,
                       size_tolerance=record.spec.report.size_tolerance)
    if best is None:
        done = [r.label for r in record.search_rows if r.complete]
        raise AdsearchError(
            f"study {record.name!r} has no recommended trade-off (no completed search trial within "
            f"{100 * record.spec.report.max_accuracy_drop:.1f} points of the baseline's accuracy); "
            + (f"pick one with --trial N: completed trials {', '.join(done)}" if done else "no trial has completed yet"))
    return record.rows[best].number


# --- the checkpoint and the network ------------------------------------------------------------


def _describe(record: StudyRecord, row: TrialRow, spec, checkpoint: dict, data, fmt: str, path: Path,
              control: str | None = None) -> dict:
    kept = [m for m in METRICS if m not in ("wall_s", "epoch", *SPENDING)]  # what the network is, not how long it took
    metrics = row.control(control) if control else row.metrics
    return {
        "study": record.name,
        "trial": row.number,
        **({"control": control} if control else {}),
        "format": fmt,
        "file": path.name,
        "arch": spec.model.model_dump(mode="json"),
        "widths": list(checkpoint["widths"]),
        "base_widths": row.base_widths,
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "dataset": spec.data.dataset,
        "settings": dict(row.settings),
        "metrics": {k: metrics[k] for k in kept if metrics.get(k) is not None},
        "epoch": checkpoint.get("epoch"),
        "spec_digest": record.spec.digest(),
    }


# --- writing -------------------------------------------------------------------------------------


def _write_model(model: nn.Module, spec, data, fmt: str, path: Path, info: dict) -> None:
    example = torch.zeros(2, *data.input_shape)
    if fmt == "state_dict":
        from adsearch.models.saving import save_compressed

        m = spec.model
        save_compressed(model, path, arch=m.arch, num_classes=data.num_classes, in_channels=data.input_shape[0],
                        image_size=data.input_shape[-1], width_mult=m.width_mult, layers=m.layers, stem=m.stem)
    elif fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still the format people load
            scripted = torch.jit.trace(model, example)
            torch.jit.save(scripted, str(path), _extra_files={"adsearch.json": json.dumps(info)})
    else:
        _write_onnx(model, example, path, info)


def _write_all(out_dir: Path, writes: dict[Path, Callable[[Path], None]]) -> None:
    """Run each writer on a hidden temporary file beside its path, then rename them all into place:
    a failure leaves no partial file, the earlier files as they were, and no `out_dir` it made.

    Raises:
        AdsearchError: a file or `out_dir` cannot be written (the OS's reason); other errors are
            re-raised after the clean-up.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise AdsearchError(f"cannot write the export into {out_dir}: it is a file, not a folder")
    made = [d for d in (out_dir, *out_dir.parents) if not d.exists()]
    temps: dict[Path, Path] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in writes:
            temps[path] = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            temps[path].open("xb").close()  # an unwritable folder fails here, as an OSError that names it
        for path, write in writes.items():
            write(temps[path])
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        for d in made:  # innermost first, and only while still empty
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        if isinstance(exc, OSError):
            final = {str(tmp): path for path, tmp in temps.items()}
            target = final.get(str(exc.filename), exc.filename or out_dir)
            raise AdsearchError(f"cannot write {target}: {exc.strerror or exc}; nothing was written") from None
        raise


# --- ONNX ----------------------------------------------------------------------------------------


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise AdsearchError(f"ONNX export needs the onnx and onnxscript packages ({exc.name} is missing): "
                            "pip install 'adsearch[onnx]'") from None


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path, info: dict) -> None:
    import onnx

    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    proto = onnx.load(str(path), format="protobuf")  # `path` may be a temporary name: no suffix to go by
    for key, value in (("adsearch", json.dumps(info)), ("widths", json.dumps(info["widths"]))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path), format="protobuf")


class OnnxModel:
    """An ONNX export run by onnxruntime, called like the network: a float tensor batch in, logits out."""

    def __init__(self, path: Path):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(None, {self.input_name: x.detach().cpu().float().numpy()})
        return torch.from_numpy(out)

    def eval(self) -> OnnxModel:
        return self


# --- loading back --------------------------------------------------------------------------------


def load_model(path: Path | str, map_location: str | torch.device = "cpu"):
    """Load an exported network: an `nn.Module` (state dict + widths), a TorchScript module, or
    for ONNX an `OnnxModel` (needs onnxruntime). Each is in eval mode and maps a batch
    `(N, *input_shape)` to logits `(N, num_classes)`.

    Raises:
        AdsearchError: a missing file (the message lists the models beside it), a file that is not
            an exported model, or an ONNX file without onnxruntime installed.
    """
    path = Path(path)
    if not path.is_file():
        raise AdsearchError(f"no exported model at {path}" + _models_in(path.parent))
    try:
        return _load(path, map_location)
    except AdsearchError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch, TorchScript and onnxruntime each fail their own way
        hint = f" (it describes one: load {path.with_suffix('')})" if path.suffix == ".json" else ""
        raise AdsearchError(f"{path} is not a model written by adsearch export{hint}: {one_line(exc)}") from None


def _models_in(directory: Path) -> str:
    """'; models there: a.pt, b.onnx' for the exported models in `directory` (temporary files left out)."""
    there = sorted(p.name for p in directory.glob("*") if p.suffix in (".pt", ".onnx") and not p.name.startswith("."))
    return f"; models there: {', '.join(there)}" if there else f"; no models in {directory}"


def _load(path: Path, map_location):
    if path.suffix == ".onnx":
        try:
            return OnnxModel(path)
        except ImportError:
            raise AdsearchError(f"running {path} needs onnxruntime: pip install onnxruntime "
                                "(or export with --format state_dict or torchscript)") from None
    if _is_torchscript(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location=map_location).eval()
    from adsearch.models.saving import load_compressed

    return load_compressed(path, map_location=map_location).eval()


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold `code/` and `constants.pkl`; `torch.save` archives do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


@torch.no_grad()
def held_out_accuracy(model, study_dir: Path | str, number: int, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` (anything `load_model` returns) on the held-out split trial
    `number` of the study was evaluated on."""
    from adsearch.data.registry import load_data

    record = read_study(study_dir)
    spec = trial_spec(record, record.row(number))
    data = load_data(spec.data, spec.seed)
    hits = seen = 0
    for x, y in data.test_batches(batch_size):
        hits += int((model(x).argmax(1) == y).sum())
        seen += len(y)
    return hits / seen


def verify_export(result: Export, study_dir: Path | str) -> str:
    """Load the written file back and measure it on the held-out split; one line saying how it went.

    An ONNX file without onnxruntime installed is checked with `onnx.checker` instead.

    Raises:
        AdsearchError: the file does not load, or (checked by onnx.checker) is not a valid graph.
    """
    expected = result.info["metrics"].get("accuracy")
    if result.path.suffix == ".onnx" and not _has_onnxruntime():
        return _check_onnx_graph(result.path)
    model = load_model(result.path)
    accuracy = held_out_accuracy(model, study_dir, result.info["trial"])
    same = expected is not None and abs(accuracy - expected) < 1e-9
    return (f"held-out accuracy of {result.path.name}: {accuracy:.2%} "
            + ("(as reported)" if same else f"(reported {expected:.2%})" if expected is not None else ""))


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _check_onnx_graph(path: Path) -> str:
    import onnx

    try:
        onnx.checker.check_model(onnx.load(str(path), format="protobuf"))
    except Exception as exc:  # noqa: BLE001 - a protobuf DecodeError or onnx's ValidationError
        raise AdsearchError(f"{path} is not a valid ONNX graph (onnx.checker): {one_line(exc)}") from None
    return "onnx.checker: the graph is valid (install onnxruntime to measure its accuracy)"
