"""The seed API (the model card's usage with ``birder`` replaced by ``birdstream``)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from birdstream.errors import CheckpointError, ConfigError, SourceError
from birdstream.model.checkpoint import build_network, read_checkpoint, sha256_file, size_from_signature
from birdstream.model import onednn
from birdstream.model.download import ProgressCallback, fetch_model_verified
from birdstream.model.metrics import CHECKPOINT_LOAD_FAILURES, LOAD_SECONDS
from birdstream.model.registry import KNOWN_WEIGHTS, PublishedWeights
from birdstream.model.transforms import classification_transform
from birdstream.model.vit_parallel import ViTParallel, module_device

logger = logging.getLogger(__name__)

__all__ = [
    "ModelInfo",
    "choose_layout",
    "classification_transform",
    "fuse_pays",
    "get_size_from_signature",
    "infer_batch",
    "infer_image",
    "load_pretrained_model",
    "resolve_device",
    "resolve_dtype",
]

_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint says about the model, plus where it came from."""

    class_to_idx: dict[str, int]
    signature: dict[str, Any]
    rgb_stats: dict[str, Any]
    custom_config: dict[str, Any] | None
    class_names: list[str]
    name: str
    sha256: str
    path: Path
    device: torch.device
    dtype: torch.dtype

    @property
    def size(self) -> tuple[int, int]:
        return size_from_signature(self.signature)

    @property
    def model_id(self) -> str:
        """``<name>@<first 12 hex of sha256>``, as sighting events carry it."""
        return f"{self.name}@{self.sha256[:12]}"


def get_size_from_signature(signature: dict[str, Any]) -> tuple[int, int]:
    """(height, width) the model takes."""
    return size_from_signature(signature)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None -> cuda if available else cpu; ``cpu``, ``cuda``, ``cuda:N`` checked against this machine."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"model.device: {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"model.device: {device!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"model.device: {device!r}: only {torch.cuda.device_count()} CUDA device(s) on this machine"
            )
    elif dev.type != "cpu":
        raise ConfigError(f"model.device: {device!r}: expected auto, cpu, cuda or cuda:N")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/fp32 -> float32; ``auto`` -> bf16 on a GPU that has it, else fp16 on GPU, fp32 on CPU."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ConfigError(f"model.precision: {dtype}: expected fp32, fp16 or bf16")
        return dtype
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ConfigError(f"model.precision: {dtype!r}: expected auto, fp32, fp16 or bf16") from None


def fuse_pays(device: torch.device) -> bool:
    """Whether the fused layout is the faster one on ``device``: on a GPU, not on a CPU.

    On a CPU the matmuls and attention are most of the work; the passes the fusion saves
    (LayerNorm affine, LayerScale, branch sums) are a few per cent, and the wide fused matmuls lose
    that much or more to the per-branch ones (per block, one thread, CPU time against Birder's
    block: Birder layout 1.02-1.07x, fused 0.97-1.02x with MKL; 1.70-1.76x and 1.52-1.71x with
    oneDNN). On a GPU the many small kernels of the Birder layout are the cost the fusion removes.
    """
    return device.type != "cpu"


def choose_layout(net: ViTParallel, device: torch.device, dtype: torch.dtype, fuse: bool | None = None) -> ViTParallel:
    """The fastest exact forward for the device: fused or Birder layout (``fuse`` None: ``fuse_pays``),
    and on a CPU in fp32 the matmuls through oneDNN (``birdstream.model.onednn``)."""
    if fuse if fuse is not None else fuse_pays(device):
        net.fuse()
    if device.type == "cpu" and dtype == torch.float32 and onednn.available():
        net.use_onednn()
    return net


def load_pretrained_model(
    name_or_path: str | os.PathLike[str],
    inference: bool = True,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    progress: ProgressCallback | None = None,
    new_size: tuple[int, int] | None = None,
    dynamic_size: bool = False,
    fuse: bool | None = None,
    custom_config: dict[str, Any] | None = None,
    known_weights: Mapping[str, PublishedWeights] | None = None,
) -> tuple[ViTParallel, ModelInfo]:
    """Load published weights by name (downloaded once into the cache) or a Birder ``.pt`` file.

    ``dtype`` (fp32 | fp16 | bf16 | auto) runs the forward under autocast; weights stay float32 on
    ``device`` (auto | cpu | cuda | cuda:N), moved there once. ``inference`` puts the model in eval
    mode without gradients and picks the faster layout for the device (``fuse_pays``); ``fuse``
    True or False forces the fused or the Birder layout.
    ``cache_dir`` defaults to ``$BIRDSTREAM_CACHE`` or ``~/.cache/birdstream``; ``base_url`` to
    ``$BIRDSTREAM_MODEL_URL`` or Hugging Face; ``known_weights`` replaces the built-in name registry.
    """
    dev = resolve_device(device)
    amp = resolve_dtype(dtype, dev)
    known = KNOWN_WEIGHTS if known_weights is None else known_weights
    path, digest, name = _weights_file(os.fspath(name_or_path), known, cache_dir, progress, base_url)
    started = time.monotonic()
    try:
        ckpt = read_checkpoint(path)
        if not digest:
            digest = sha256_file(path)
        net = build_network(ckpt, custom_config)
    except CheckpointError:
        CHECKPOINT_LOAD_FAILURES.inc()
        raise
    _place(net, dev, amp, new_size=new_size, dynamic_size=dynamic_size, inference=inference, fuse=fuse)
    info = ModelInfo(
        class_to_idx=ckpt.class_to_idx,
        signature=ckpt.signature,
        rgb_stats=ckpt.rgb_stats,
        custom_config=ckpt.config,
        class_names=ckpt.class_names,
        name=name,
        sha256=digest,
        path=path,
        device=dev,
        dtype=amp,
    )
    LOAD_SECONDS.observe(time.monotonic() - started)
    logger.info(
        "loaded %s (%d classes, %dx%d) on %s, %s", info.model_id, len(info.class_names), *ckpt.size, dev, amp
    )
    return net, info


def _weights_file(key: str, known: Mapping[str, PublishedWeights], cache_dir: str | os.PathLike[str] | None,
                  progress: ProgressCallback | None, base_url: str | None) -> tuple[Path, str, str]:
    """(path, sha256 or "" when not yet known, name) of published weights (downloaded) or a file."""
    if key in known:
        path, digest = fetch_model_verified(key, cache_dir, progress, base_url=base_url, known=known)
        return path, digest, key
    path = Path(key).expanduser()
    if not path.exists() and os.sep not in key and not key.endswith(".pt"):
        names = ", ".join(sorted(known))
        raise CheckpointError(f"{key}: not a known weights name ({names}) nor an existing file")
    return path, "", path.stem


def _place(net: ViTParallel, dev: torch.device, amp: torch.dtype, *, new_size: tuple[int, int] | None,
           dynamic_size: bool, inference: bool, fuse: bool | None) -> None:
    """Size, autocast dtype and device of a built network; for inference eval, frozen and in the
    layout that is faster on its device."""
    if new_size is not None:
        net.adjust_size(new_size)
    net.set_dynamic_size(dynamic_size)
    net.autocast_dtype = None if amp == torch.float32 else amp
    net.to(dev)
    if inference:
        net.eval()
        net.requires_grad_(False)
        choose_layout(net, dev, amp, fuse)
    elif fuse:
        raise ValueError("fuse=True needs inference=True")


def infer_image(
    net: torch.nn.Module,
    sample: Image.Image | str | os.PathLike[str],
    transform: Callable[[Image.Image], torch.Tensor],
    return_embedding: bool = False,
    tta: bool = False,
    return_logits: bool = False,
    device: torch.device | str | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
    """Classify one image (PIL image or file path): ``(probabilities [1, C], embedding [1, D] or None)``."""
    if isinstance(sample, Image.Image):
        image = sample
    elif isinstance(sample, (str, os.PathLike)):
        try:
            image = Image.open(sample)
            image.load()
        except (OSError, UnidentifiedImageError) as err:
            raise SourceError(f"{os.fspath(sample)}: cannot read image ({err})") from None
    else:
        raise TypeError(f"expected a PIL image or a path, got {type(sample).__name__}")
    dev = torch.device(device) if device is not None else module_device(net)
    x = transform(image).unsqueeze(0).to(dev)
    return infer_batch(net, x, return_embedding=return_embedding, tta=tta, return_logits=return_logits)


def infer_batch(
    net: torch.nn.Module,
    inputs: torch.Tensor,
    return_embedding: bool = False,
    tta: bool = False,
    return_logits: bool = False,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
    """Classify a normalised batch [N, 3, H, W]: ``(probabilities or logits [N, C], embedding [N, D] or None)``."""
    with torch.inference_mode():
        embedding = None
        if return_embedding:
            emb = net.embedding(inputs)
            logits = net.classify(emb)
            embedding = emb.float().cpu().numpy()
            out = logits.float() if return_logits else F.softmax(logits.float(), dim=1)
        elif tta:
            outs = []
            for crop in _five_crop(inputs):
                logits = net(_resize_bicubic(crop, inputs.shape[-2:])).float()
                outs.append(logits if return_logits else F.softmax(logits, dim=1))
            out = torch.stack(outs).mean(dim=0)
        else:
            logits = net(inputs).float()
            out = logits if return_logits else F.softmax(logits, dim=1)
    return out.cpu().numpy().astype(np.float32, copy=False), embedding


def _five_crop(x: torch.Tensor) -> list[torch.Tensor]:
    """Corners and centre at 80% of each side (Birder's test-time augmentation)."""
    h, w = x.shape[-2:]
    ch, cw = int(h * 0.8), int(w * 0.8)
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return [
        x[..., :ch, :cw], x[..., :ch, w - cw :], x[..., h - ch :, :cw], x[..., h - ch :, w - cw :],
        x[..., top : top + ch, left : left + cw],
    ]


def _resize_bicubic(x: torch.Tensor, size: Any) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False, antialias=True)
