"""ViT Parallel ("Three things everyone should know about Vision Transformers") with Birder's state-dict layout.

Module names mirror Birder's so a Birder checkpoint's ``state`` loads as is:
``conv_proj``, ``pos_embedding``, ``encoder.block.{i}.attn_blocks.{j}.{0 norm,1 attn,2 layer scale}``,
``encoder.block.{i}.mlp_blocks.{j}.{0 norm,1 ffn (.0 fc1, .3 fc2),2 layer scale}``, ``norm``, ``classifier``.

``fuse()`` (done at load time for inference) precomputes a faster equivalent of each block: both
parallel branches read the same normalised tokens, so the LayerNorm affine and the LayerScale gamma
fold into the neighbouring Linear layers and each stage becomes one wide matmul. The Birder-layout
parameters stay the source of truth (state_dict, load_state_dict); the fused copies are
non-persistent buffers rebuilt from them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from birdstream.model import onednn
from birdstream.model.vit_config import VIT_PARALLEL_S16_18X2_LS_AVG, ViTParallelConfig

__all__ = ["VIT_PARALLEL_S16_18X2_LS_AVG", "ParallelBlock", "ViTParallel", "ViTParallelConfig", "module_device"]

logger = logging.getLogger(__name__)


class LayerScale(nn.Module):
    """Per-channel scale (``gamma``)."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Linear(nn.Linear):
    """``nn.Linear`` that can run through oneDNN (``birdstream.model.onednn``), set at load time."""

    onednn = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.onednn:
            return onednn.linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


class Attention(nn.Module):
    """Multi-head self attention through SDPA."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


def _ffn(dim: int, hidden: int) -> nn.Sequential:
    # Indices 0 and 3 carry the weights, as in Birder's FFN (fc1, act, dropout, fc2, dropout).
    return nn.Sequential(Linear(dim, hidden), nn.GELU(), nn.Identity(), Linear(hidden, dim))


class ParallelBlock(nn.Module):
    """``num_parallel`` attention branches summed, then ``num_parallel`` MLP branches summed."""

    def __init__(self, cfg: ViTParallelConfig) -> None:
        super().__init__()
        d, eps = cfg.hidden_dim, cfg.norm_layer_eps
        self.eps = eps
        self.num_heads = cfg.num_heads

        def scale() -> nn.Module:
            if cfg.layer_scale_init_value is None:
                return nn.Identity()
            return LayerScale(d, cfg.layer_scale_init_value)

        self.attn_blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d, eps=eps), Attention(d, cfg.num_heads, cfg.qkv_bias), scale())
            for _ in range(cfg.num_parallel)
        )
        self.mlp_blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d, eps=eps), _ffn(d, cfg.mlp_dim), scale()) for _ in range(cfg.num_parallel)
        )
        self.fused = False
        self.onednn = False  # the fused matmuls through oneDNN (set with the Linears', by ViTParallel)
        # Set by birdstream.model.quantize: int8 packed Linears that replace the fused fp32 buffers.
        self.int8: Any = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self._forward_fused(x)
        x = x + _branch_sum([blk(x) for blk in self.attn_blocks])
        return x + _branch_sum([blk(x) for blk in self.mlp_blocks])

    @torch.no_grad()
    def fuse(self, dtype: torch.dtype | None = None) -> None:
        """Precompute the fused weights from the current parameters (stored in ``dtype`` if given)."""
        p = len(self.attn_blocks)
        d = self.attn_blocks[0][0].normalized_shape[0]

        def gamma(seq: nn.Sequential) -> torch.Tensor:
            s = seq[2]
            return s.gamma if isinstance(s, LayerScale) else torch.ones_like(seq[0].weight)

        qkv_w, qkv_b, proj_w, proj_b = [], [], [], torch.zeros_like(self.attn_blocks[0][1].proj.bias)
        for seq in self.attn_blocks:
            ln, attn, g = seq[0], seq[1], gamma(seq)
            w = attn.qkv.weight * ln.weight  # fold the LayerNorm scale into the columns
            b = attn.qkv.weight @ ln.bias
            if attn.qkv.bias is not None:
                b = b + attn.qkv.bias
            qkv_w.append(w.reshape(3, d, d))
            qkv_b.append(b.reshape(3, d))
            proj_w.append(attn.proj.weight * g[:, None])
            proj_b = proj_b + attn.proj.bias * g
        # Row order q(all branches), k(all), v(all): each branch's heads become extra heads.
        self.register_buffer("f_qkv_w", torch.stack(qkv_w, 1).reshape(3 * p * d, d), persistent=False)
        self.register_buffer("f_qkv_b", torch.stack(qkv_b, 1).reshape(3 * p * d), persistent=False)
        self.register_buffer("f_proj_w", torch.cat(proj_w, 1), persistent=False)
        self.register_buffer("f_proj_b", proj_b, persistent=False)

        fc1_w, fc1_b, fc2_w, fc2_b = [], [], [], torch.zeros_like(self.mlp_blocks[0][1][3].bias)
        for seq in self.mlp_blocks:
            ln, fc1, fc2, g = seq[0], seq[1][0], seq[1][3], gamma(seq)
            fc1_w.append(fc1.weight * ln.weight)
            fc1_b.append(fc1.weight @ ln.bias + fc1.bias)
            fc2_w.append(fc2.weight * g[:, None])
            fc2_b = fc2_b + fc2.bias * g
        self.register_buffer("f_fc1_w", torch.cat(fc1_w, 0), persistent=False)
        self.register_buffer("f_fc1_b", torch.cat(fc1_b, 0), persistent=False)
        self.register_buffer("f_fc2_w", torch.cat(fc2_w, 1), persistent=False)
        self.register_buffer("f_fc2_b", fc2_b, persistent=False)
        if dtype is not None:
            # Under autocast the matmuls run in this dtype anyway; storing it saves a cast per call.
            for name in ("f_qkv_w", "f_qkv_b", "f_proj_w", "f_proj_b", "f_fc1_w", "f_fc1_b", "f_fc2_w", "f_fc2_b"):
                self._buffers[name] = self._buffers[name].to(dtype)
        self.fused = True

    def unfuse(self) -> None:
        self.int8 = None
        for name in ("f_qkv_w", "f_qkv_b", "f_proj_w", "f_proj_b", "f_fc1_w", "f_fc1_b", "f_fc2_w", "f_fc2_b"):
            self._buffers.pop(name, None)
        self.fused = False

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        heads = self.num_heads * len(self.attn_blocks)
        h = F.layer_norm(x, (d,), eps=self.eps)
        qkv = self._linear(h, "qkv").reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = F.scaled_dot_product_attention(q, k, v, scale=q.shape[-1] ** -0.5)
        x = x + self._linear(a.transpose(1, 2).reshape(b, n, -1), "proj")
        h = F.gelu(self._linear(F.layer_norm(x, (d,), eps=self.eps), "fc1"))
        return x + self._linear(h, "fc2")

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if self.int8 is not None:
            return self.int8(x, name)
        linear = onednn.linear if self.onednn else F.linear
        return linear(x, getattr(self, f"f_{name}_w"), getattr(self, f"f_{name}_b"))


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's parameters (the CPU for a module without any)."""
    try:
        return next(module.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _branch_sum(xs: list[torch.Tensor]) -> torch.Tensor:
    out = xs[0]
    for t in xs[1:]:
        out = out + t
    return out


class Encoder(nn.Module):
    def __init__(self, cfg: ViTParallelConfig) -> None:
        super().__init__()
        self.block = nn.Sequential(*(ParallelBlock(cfg) for _ in range(cfg.num_layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def interpolate_pos_embedding(
    pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int], num_prefix: int, antialias: bool
) -> torch.Tensor:
    """Bicubic resize of the patch position grid; special-token positions are kept as they are."""
    prefix, grid = pos[:, :num_prefix], pos[:, num_prefix:]
    dim = grid.shape[-1]
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos.dtype)
    return torch.cat([prefix, grid], dim=1)


class ViTParallel(nn.Module):
    """The classifier: patchify, add positions, parallel blocks, final norm, pool, linear head."""

    def __init__(
        self, num_classes: int, size: tuple[int, int], config: ViTParallelConfig | None = None, input_channels: int = 3
    ) -> None:
        super().__init__()
        cfg = config or ViTParallelConfig()
        if size[0] % cfg.patch_size or size[1] % cfg.patch_size:
            raise ValueError(f"input size {size} is not a multiple of the patch size {cfg.patch_size}")
        if cfg.hidden_dim % cfg.num_heads:
            raise ValueError(f"hidden_dim {cfg.hidden_dim} is not divisible by num_heads {cfg.num_heads}")
        self.cfg = cfg
        self.size = (int(size[0]), int(size[1]))
        self.num_classes = num_classes
        self.patch_size = cfg.patch_size
        self.embedding_size = cfg.hidden_dim
        self.dynamic_size = False
        self.autocast_dtype: torch.dtype | None = None
        # CUDA graph capture needs autocast's weight-cast cache off (the casts must be in the graph).
        self.autocast_cache = True
        d = cfg.hidden_dim

        self.conv_proj = nn.Conv2d(input_channels, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.num_special_tokens = cfg.num_reg_tokens + int(cfg.class_token)
        self.reg_tokens = nn.Parameter(torch.zeros(1, cfg.num_reg_tokens, d)) if cfg.num_reg_tokens else None
        self.class_token = nn.Parameter(torch.zeros(1, 1, d)) if cfg.class_token else None
        seq = (self.size[0] // cfg.patch_size) * (self.size[1] // cfg.patch_size) + self.num_special_tokens
        self.pos_embedding = nn.Parameter(torch.empty(1, seq, d).normal_(std=0.02))
        self.encoder = Encoder(cfg)
        self.norm = nn.LayerNorm(d, eps=cfg.norm_layer_eps)
        self.classifier: nn.Module = (
            nn.Linear(d, num_classes, bias=cfg.head_bias) if num_classes > 0 else nn.Identity()
        )
        fan_in = input_channels * cfg.patch_size**2
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)

    # -- size handling ---------------------------------------------------------------------------
    def set_dynamic_size(self, dynamic_size: bool = True) -> None:
        """Accept inputs of any patch-multiple size by interpolating the position embedding per call."""
        self.dynamic_size = dynamic_size

    @torch.no_grad()
    def adjust_size(self, new_size: tuple[int, int]) -> None:
        """Permanently resize the position embedding to a new input size (antialiased, as Birder)."""
        new_size = (int(new_size[0]), int(new_size[1]))
        if new_size == self.size:
            return
        if new_size[0] % self.patch_size or new_size[1] % self.patch_size:
            raise ValueError(f"input size {new_size} is not a multiple of the patch size {self.patch_size}")
        pos = interpolate_pos_embedding(
            self.pos_embedding, self._grid(self.size), self._grid(new_size), self.num_special_tokens, antialias=True
        )
        self.pos_embedding = nn.Parameter(pos, requires_grad=self.pos_embedding.requires_grad)
        self.size = new_size

    def _grid(self, hw: tuple[int, int]) -> tuple[int, int]:
        return (hw[0] // self.patch_size, hw[1] // self.patch_size)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == self.size:
            return self.pos_embedding
        if not self.dynamic_size:
            raise ValueError(f"input is {h}x{w} but the model takes {self.size[0]}x{self.size[1]} (dynamic size is off)")
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"input {h}x{w} is not a multiple of the patch size {self.patch_size}")
        return interpolate_pos_embedding(
            self.pos_embedding, self._grid(self.size), self._grid((h, w)), self.num_special_tokens,
            antialias=self.cfg.pos_embed_antialias,
        )

    # -- fusion ----------------------------------------------------------------------------------
    def fuse(self) -> ViTParallel:
        """Switch every block to the fused fast path (inference only), in the autocast dtype if one is set."""
        for blk in self.encoder.block:
            blk.fuse(self.autocast_dtype)
        return self

    def use_onednn(self, enabled: bool = True) -> ViTParallel:
        """Run the blocks' fp32 matmuls through oneDNN (CPU inference; see ``birdstream.model.onednn``)."""
        for blk in self.encoder.block:
            blk.onednn = enabled
            for m in blk.modules():
                if isinstance(m, Linear):
                    m.onednn = enabled
        return self

    def unfuse(self) -> ViTParallel:
        for blk in self.encoder.block:
            blk.unfuse()
        return self

    @property
    def fused(self) -> bool:
        return any(blk.fused for blk in self.encoder.block)

    @property
    def quantized(self) -> bool:
        return any(blk.int8 is not None for blk in self.encoder.block)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        if self.quantized:
            raise RuntimeError("the network is quantized: load the state dict before quantizing")
        was_fused = self.fused
        self.unfuse()
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if was_fused:
            self.fuse()
        return result

    # -- forward ---------------------------------------------------------------------------------
    def _autocast(self, x: torch.Tensor) -> Any:
        if self.autocast_dtype is None:
            return torch.autocast(x.device.type, enabled=False)
        return torch.autocast(x.device.type, dtype=self.autocast_dtype, cache_enabled=self.autocast_cache)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Token-major from here on: left as a transposed view, every later op would inherit the
        # layout (each LayerNorm copies its input, each residual add reads mismatched strides).
        x = self.conv_proj(x).flatten(2).transpose(1, 2).contiguous()
        special = []
        if self.reg_tokens is not None:
            special.append(self.reg_tokens.expand(x.shape[0], -1, -1))
        if self.class_token is not None:
            special.append(self.class_token.expand(x.shape[0], -1, -1))
        if special:
            x = torch.cat([*special, x], dim=1)
        return x + self._pos_embed(h, w)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final-normed tokens [B, special + patches, D]."""
        with self._autocast(x):
            return self.norm(self.encoder(self._tokens(x)))

    def embedding_from_features(self, features: torch.Tensor) -> torch.Tensor:
        if self.class_token is None:
            return features[:, self.num_special_tokens :].mean(dim=1)
        return features[:, self.cfg.num_reg_tokens]

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding [B, D]."""
        with self._autocast(x):
            return self.embedding_from_features(self.forward_features(x))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        with self._autocast(embedding):
            return self.classifier(embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, num_classes]."""
        with self._autocast(x):
            return self.classifier(self.embedding_from_features(self.forward_features(x)))

    def detection_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``neck``: final-normed patch tokens; ``stage1``: encoder output before the norm; both [B, D, H/p, W/p]."""
        h, w = x.shape[-2:]
        gh, gw = self._grid((h, w))
        with self._autocast(x):
            enc = self.encoder(self._tokens(x))
            out = {"neck": self.norm(enc), "stage1": enc}
        return {
            k: v[:, self.num_special_tokens :].transpose(1, 2).reshape(v.shape[0], v.shape[2], gh, gw)
            for k, v in out.items()
        }
