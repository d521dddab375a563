"""Reading Birder ``.pt`` checkpoints safely and building the network they describe.

A checkpoint is untrusted input: it is read with ``torch.load(weights_only=True)``, which refuses
to unpickle anything but tensors and plain containers, so a crafted pickle cannot run code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from birdstream.errors import CheckpointError, first_line
from birdstream.model.vit_parallel import VIT_PARALLEL_S16_18X2_LS_AVG, ViTParallel, ViTParallelConfig

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("state", "signature", "class_to_idx", "rgb_stats")


@dataclass(frozen=True)
class Checkpoint:
    """The validated contents of a Birder checkpoint file."""

    path: Path
    state: dict[str, torch.Tensor]
    signature: dict[str, Any]
    class_to_idx: dict[str, int]
    rgb_stats: dict[str, Any]
    config: dict[str, Any] | None
    birder_version: str | None
    task: str | None

    @property
    def size(self) -> tuple[int, int]:
        return size_from_signature(self.signature)

    @property
    def num_classes(self) -> int:
        if "num_labels" in self.signature:
            return int(self.signature["num_labels"])
        return int(self.signature["outputs"][0]["data_shape"][1])

    @property
    def class_names(self) -> list[str]:
        return [name for name, _ in sorted(self.class_to_idx.items(), key=lambda kv: kv[1])]


def size_from_signature(signature: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of the model input, from a Birder signature."""
    shape = signature["inputs"][0]["data_shape"]
    return (int(shape[2]), int(shape[3]))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a Birder checkpoint; every failure is one CheckpointError line naming the file."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: weights file not found")
    if not p.is_file():
        raise CheckpointError(f"{p}: not a file")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged archives (RuntimeError, IndexError, ...)
        text = str(err)
        if isinstance(err, pickle.UnpicklingError) and ("weights_only" in text or "Unsupported global" in text):
            raise CheckpointError(
                f"{p}: refused to load: the file holds Python objects other than weights "
                f"(unsafe, or not a Birder checkpoint)"
            ) from None
        raise CheckpointError(
            f"{p}: not a Birder checkpoint, or a damaged or truncated one ({type(err).__name__}: {first_line(err)})"
        ) from None
    return _validate(p, data)


def _validate(p: Path, data: Any) -> Checkpoint:
    if not isinstance(data, dict):
        raise CheckpointError(f"{p}: not a Birder checkpoint (top level is {type(data).__name__}, not a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{p}: not a Birder checkpoint (missing {', '.join(missing)})")
    state, signature, class_to_idx, rgb_stats = (data[k] for k in REQUIRED_KEYS)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p}: 'state' is not a dict of tensors")
    try:
        shape = signature["inputs"][0]["data_shape"]
        if len(shape) != 4 or int(shape[1]) != 3:
            raise ValueError(f"input shape {shape} is not [N, 3, H, W]")
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise CheckpointError(f"{p}: bad signature ({first_line(err)})") from None
    if not isinstance(class_to_idx, dict) or not class_to_idx:
        raise CheckpointError(f"{p}: 'class_to_idx' is not a non-empty dict")
    idx = sorted(class_to_idx.values())
    if idx != list(range(len(idx))):
        raise CheckpointError(f"{p}: 'class_to_idx' indices are not 0..{len(idx) - 1}")
    try:
        for key in ("mean", "std"):
            if len(rgb_stats[key]) != 3:
                raise ValueError(f"rgb_stats[{key!r}] does not have 3 values")
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{p}: bad rgb_stats ({first_line(err)})") from None
    config = data.get("config")
    if config is not None and not isinstance(config, dict):
        raise CheckpointError(f"{p}: 'config' is not a dict")
    task = data.get("task")
    if task is not None and task != "image_classification":
        raise CheckpointError(f"{p}: task is {task!r}, not an image classification checkpoint")
    ckpt = Checkpoint(
        path=p,
        state=state,
        signature=signature,
        class_to_idx={str(k): int(v) for k, v in class_to_idx.items()},
        rgb_stats={"mean": tuple(float(x) for x in rgb_stats["mean"]), "std": tuple(float(x) for x in rgb_stats["std"])},
        config=config,
        birder_version=data.get("birder_version"),
        task=task,
    )
    try:
        n = ckpt.num_classes
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise CheckpointError(f"{p}: bad signature outputs ({first_line(err)})") from None
    if n != len(class_to_idx):
        raise CheckpointError(f"{p}: signature has {n} classes but class_to_idx names {len(class_to_idx)}")
    return ckpt


def build_network(ckpt: Checkpoint, config_override: dict[str, Any] | None = None) -> ViTParallel:
    """Instantiate ViT Parallel for the checkpoint (registered config < checkpoint config < override) and load it."""
    merged = {**VIT_PARALLEL_S16_18X2_LS_AVG, **(ckpt.config or {}), **(config_override or {})}
    try:
        cfg = ViTParallelConfig.from_birder(merged)
        net = ViTParallel(ckpt.num_classes, ckpt.size, cfg)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{ckpt.path}: unsupported model config ({first_line(err)})") from None
    _check_state(ckpt, net)
    net.load_state_dict(ckpt.state)
    return net


def _check_state(ckpt: Checkpoint, net: ViTParallel) -> None:
    expected = net.state_dict()
    got = ckpt.state
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        what = []
        if missing:
            what.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            what.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"{ckpt.path}: not a vit_parallel_s16_18x2_ls_avg checkpoint: {'; '.join(what)}"
        )
    for k, t in expected.items():
        if tuple(got[k].shape) != tuple(t.shape):
            if k.startswith("classifier."):
                raise CheckpointError(
                    f"{ckpt.path}: classifier has {got[k].shape[0]} outputs but the checkpoint names "
                    f"{ckpt.num_classes} classes"
                )
            raise CheckpointError(
                f"{ckpt.path}: {k} has shape {tuple(got[k].shape)}, expected {tuple(t.shape)} "
                f"for this architecture and input size"
            )
