"""The network's hyper-parameters, named as Birder's config keys, and the shipped network's config."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ViTParallelConfig:
    """Architecture hyper-parameters; names follow Birder's config keys."""

    patch_size: int = 16
    num_layers: int = 18
    num_heads: int = 6
    hidden_dim: int = 384
    mlp_dim: int = 1536
    num_parallel: int = 2
    layer_scale_init_value: float | None = 1e-5
    class_token: bool = False
    num_reg_tokens: int = 0
    qkv_bias: bool = True
    norm_layer_eps: float = 1e-6
    pos_embed_antialias: bool = False
    head_bias: bool = True

    @classmethod
    def from_birder(cls, config: dict[str, Any]) -> ViTParallelConfig:
        """Build from a (merged) Birder config dict; raises ValueError on options this network lacks."""
        known = {f.name for f in fields(cls)}
        norm = config.get("norm_layer_type", "LayerNorm")
        if norm != "LayerNorm":
            raise ValueError(f"norm_layer_type {norm!r} is not supported (only LayerNorm)")
        if config.get("mlp_head", False):
            raise ValueError("mlp_head is not supported")
        kwargs = {k: v for k, v in config.items() if k in known}
        return cls(**kwargs)


# The registered Birder config of the one network birdstream ships.
VIT_PARALLEL_S16_18X2_LS_AVG: dict[str, Any] = {
    "patch_size": 16,
    "num_layers": 18,
    "num_heads": 6,
    "hidden_dim": 384,
    "mlp_dim": 1536,
    "num_parallel": 2,
    "layer_scale_init_value": 1e-5,
    "class_token": False,
    "drop_path_rate": 0.05,
}
