"""Reading Birder ``.pt`` checkpoints safely and building the network they describe.

A checkpoint is untrusted input: it is read with ``torch.load(weights_only=True)``, which refuses
to unpickle anything but tensors and plain containers, so a crafted pickle cannot run code. That
loader had published bypasses before torch 2.10, so older versions are refused here as well as in
the package's requirements. The network a checkpoint's ``config`` describes is sized before it is
built: a config that asks for more weights than the file holds is refused before any allocation.
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
SAFE_TORCH = (2, 10)  # weights_only=True below this has published bypasses
_MAX_PARAMETERS = 2_000_000_000  # no config of this family comes near; a larger one is an attack or an error


def check_torch_version(version: str = torch.__version__) -> None:
    """CheckpointError when torch's safe loader has known bypasses in this version."""
    try:
        major, minor = (int(part) for part in version.split("+")[0].split(".")[:2])
    except ValueError:
        return  # a development build: newer than any release it is named after
    if (major, minor) < SAFE_TORCH:
        raise CheckpointError(f"torch {version}: its weights_only loader has published bypasses; checkpoints "
                              f"are untrusted input, so install torch>={SAFE_TORCH[0]}.{SAFE_TORCH[1]}")


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
    check_torch_version()
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
        _check_size(ckpt, cfg)
        net = ViTParallel(ckpt.num_classes, ckpt.size, cfg)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{ckpt.path}: unsupported model config ({first_line(err)})") from None
    _check_state(ckpt, net)
    net.load_state_dict(ckpt.state)
    return net


def least_parameters(cfg: ViTParallelConfig, num_classes: int, size: tuple[int, int]) -> int:
    """A lower bound of the network's parameter count (its big matrices only), from the config alone."""
    values = (cfg.patch_size, cfg.num_layers, cfg.num_heads, cfg.hidden_dim, cfg.mlp_dim, cfg.num_parallel,
              cfg.num_reg_tokens, num_classes, *size)
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in values) or cfg.patch_size < 1:
        raise ValueError("sizes must be non-negative integers and patch_size at least 1")
    d, m = cfg.hidden_dim, cfg.mlp_dim
    tokens = (size[0] // cfg.patch_size) * (size[1] // cfg.patch_size) + cfg.num_reg_tokens
    per_branch = 4 * d * d + 2 * d * m  # qkv + proj, fc1 + fc2
    return (cfg.num_layers * cfg.num_parallel * per_branch + tokens * d + 3 * cfg.patch_size ** 2 * d
            + d * num_classes)


def _check_size(ckpt: Checkpoint, cfg: ViTParallelConfig) -> None:
    """Refuse, before allocating, a config that asks for more weights than the checkpoint holds."""
    wanted = least_parameters(cfg, ckpt.num_classes, ckpt.size)
    held = sum(t.numel() for t in ckpt.state.values())
    # Within a few times the file (already in memory) building is harmless, and the per-tensor check
    # that follows names the first mismatching key, which says more than a count.
    if wanted > min(max(4 * held, 50_000_000), _MAX_PARAMETERS):
        raise ValueError(f"the config asks for at least {wanted:,} parameters but the file holds {held:,}")


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
