"""Saved compressed models: `save_compressed` stores a network with its widths, so `load_compressed`
rebuilds it without the original ones. `save_torch` is every `torch.save` of the project (models,
checkpoints, prefix-cache states), a failed write reported as the `OSError` it is."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from adsearch.errors import AdsearchError
from adsearch.models.registry import create_model
from adsearch.prune.compress import group_widths
from adsearch.prune.graph import channel_groups

SAVE_FORMAT = 1


def save_torch(obj, path: str | Path) -> None:
    """`torch.save(obj, path)`, a write that fails as the `OSError` it is: torch's zip writer reports
    a short write (a full disk) as a RuntimeError ('unexpected pos ...', 'failed writing file')."""
    try:
        torch.save(obj, path)
    except RuntimeError as exc:
        if "unexpected pos" not in str(exc) and "failed writing" not in str(exc):
            raise
        full = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < 16 * 2**20
        raise OSError(errno.ENOSPC if full else errno.EIO, "No space left on device" if full else
                      f"torch.save could not write the file ({str(exc).splitlines()[0]})", str(path)) from exc


def save_compressed(model: nn.Module, path: str | Path, *, arch: str, num_classes: int, in_channels: int = 3,
                    image_size: int = 32, width_mult: float = 1.0, layers: list | None = None,
                    stem: str | None = None) -> None:
    """Write `model` (possibly compressed) with what rebuilds it: its arch arguments and group widths.

    The file is one plain dict (loadable with `torch.load(weights_only=True)`).
    """
    widths = group_widths(model, channel_groups(model))
    args = {"name": arch, "num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
            "width_mult": width_mult, "layers": layers, "stem": stem}
    save_torch({"format": SAVE_FORMAT, "arch": args, "widths": widths, "state_dict": model.state_dict()}, path)


def load_compressed(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a network written by `save_compressed` at its stored widths and load its weights."""
    blob = torch.load(path, map_location=map_location, weights_only=True)
    if blob.get("format") != SAVE_FORMAT:
        raise AdsearchError(f"{path}: saved-model format {blob.get('format')} is not {SAVE_FORMAT}")
    args = dict(blob["arch"])
    model = create_model(args.pop("name"), widths=list(blob["widths"]), **args)
    model.load_state_dict(blob["state_dict"])
    return model
