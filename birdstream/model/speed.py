"""Speed options for a loaded network: threads, lower input resolution, int8 (CPU), torch.compile, CUDA graphs.

The classifier calls, once after loading (``station.wiring`` maps the ``model:`` keys onto SpeedOptions)::

    configure_threads(cfg.model.threads)
    fast = prepare_network(net, SpeedOptions(...), max_batch=cfg.model.max_batch)
    fast.warmup()                      # before READY: compiles / captures every batch bucket
    ...
    logits = fast(x)                   # x: normalised float32 [N, 3, *fast.input_size] on fast.device

Defaults (no int8, native size, no compile, no graphs) leave the network's output bit for bit as
``net(x)``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from birdstream.errors import ConfigError, first_line
from birdstream.model.graphs import GraphedForward, batch_buckets, bucket_for, pad_batch
from birdstream.model.quantize import quantize_int8
from birdstream.model.vit_parallel import ViTParallel, module_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeedOptions:
    """The ``model:`` keys that trade exactness or start-up time for throughput."""

    quantize: Literal["none", "int8"] = "none"
    input_size: int | None = None
    compile: bool = False
    cuda_graphs: bool = False


def configure_threads(threads: int | None) -> None:
    """Intra-op threads for CPU inference (``model.threads``); null keeps torch's default (one per core)."""
    if threads is None:
        return
    torch.set_num_threads(int(threads))
    try:
        # The forward has no inter-op parallelism; one pool thread instead of one per core.
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable before the first parallel work in the process
        logger.debug("inter-op threads already fixed at %d", torch.get_num_interop_threads())
    logger.info("torch CPU threads: %d", torch.get_num_threads())


COMPILE, GRAPHS = "torch.compile", "CUDA graphs"


class PreparedNetwork:
    """A network with its speed options applied; call it on a normalised batch to get float32 logits."""

    def __init__(
        self, net: ViTParallel, forward: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
        buckets: tuple[int, ...] | None, applied: list[str],
    ) -> None:
        self.net = net
        self.device = device
        self.buckets = buckets
        self.applied = applied
        self._forward = forward

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the frames must have: the ingest side resizes to this."""
        return self.net.size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.buckets is None:
                return self._forward(x).float()
            n = x.shape[0]
            out = []
            for start in range(0, n, self.buckets[-1]):  # a batch over the largest bucket runs in pieces
                part = x[start : start + self.buckets[-1]]
                size = bucket_for(part.shape[0], self.buckets)
                out.append(self._forward(pad_batch(part, size))[: part.shape[0]].float())
            return out[0] if len(out) == 1 else torch.cat(out)

    def warmup(self, batch_sizes: tuple[int, ...] | None = None) -> None:
        """Run each bucket (or the given sizes) once so compilation and graph capture happen before service.

        The inputs are made under inference mode, as the classifier's are: torch.compile guards on
        it, so warming up with ordinary tensors would compile every bucket a second time in service.
        """
        sizes = batch_sizes or self.buckets or (1,)
        with torch.inference_mode():
            for b in sizes:
                self(torch.zeros((b, 3, *self.input_size), device=self.device))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def without_compile_and_graphs(self) -> PreparedNetwork:
        """The same network run eagerly: the fallback when compiling or capturing fails."""
        applied = [a for a in self.applied if a not in (COMPILE, GRAPHS)]
        return PreparedNetwork(self.net, self.net, self.device, None, applied)

    def describe(self) -> str:
        return ", ".join(self.applied) or "defaults"


def prepare_network(
    net: ViTParallel, options: SpeedOptions, *, max_batch: int = 32, compile_backend: str = "inductor"
) -> PreparedNetwork:
    """Apply ``options`` to a loaded, eval-mode network (in place) and wrap it for the engine.

    int8 on a GPU and CUDA graphs on a CPU are skipped with a warning (the config check refuses
    them when the device is named explicitly; ``device: auto`` only decides here).
    """
    device = module_device(net)
    applied: list[str] = []
    if options.input_size is not None and (options.input_size, options.input_size) != net.size:
        s = int(options.input_size)
        try:
            net.adjust_size((s, s))
        except ValueError as err:
            raise ConfigError(f"model.input_size: {s}: {err}") from None
        applied.append(f"input {s}x{s}")
    if options.quantize == "int8":
        if device.type == "cpu":
            quantize_int8(net)
            applied.append("int8 dynamic")
        else:
            logger.warning("model.quantize: int8 is for the CPU only; running on %s without it", device)
    forward: Callable[[torch.Tensor], torch.Tensor] = net
    buckets = None
    graphs = options.cuda_graphs and device.type == "cuda"
    if options.cuda_graphs and not graphs:
        logger.warning("model.cuda_graphs: needs a CUDA device; running on %s without it", device)
    if options.compile:
        if net.quantized:
            raise ConfigError("model.compile: cannot compile an int8-quantized network; set model.quantize: none")
        compiled = compile_forward(net, compile_backend, len(batch_buckets(max_batch)) + 2)
        if compiled is not None:
            buckets = batch_buckets(max_batch)
            forward = compiled
            applied.append(COMPILE)
    if graphs:
        # Our own graphs, around the compiled code too: process-wide (not per thread, as
        # torch.compile's reduce-overhead mode keeps them), captured at warm-up, replayed by the engine.
        net.autocast_cache = False
        buckets = batch_buckets(max_batch)
        forward = GraphedForward(forward, (3, *net.size), device, buckets)
        applied.append(GRAPHS)
    logger.info("model speed options: %s", ", ".join(applied) or "defaults")
    return PreparedNetwork(net, forward, device, buckets, applied)


def compile_forward(net: torch.nn.Module, backend: Any, shapes: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``torch.compile(net)`` for ``shapes`` static batch shapes on whichever torch is installed, or None.

    torch.compile takes ``recompile_limit`` only from torch 2.13; before that the limit is the
    process-wide dynamo setting (``recompile_limit``, earlier ``cache_size_limit``), which is only
    ever raised here. A torch that cannot compile at all (no dynamo for this Python, a missing
    compiler) is one error line and an eager network, as a failure at warm-up is.
    """
    kwargs: dict[str, Any] = {"dynamic": False, "backend": backend}
    try:
        if "recompile_limit" in inspect.signature(torch.compile).parameters:
            kwargs["recompile_limit"] = shapes
        else:
            _raise_dynamo_limit(shapes)
        # One static-shape compilation per bucket (padded batches never change shape otherwise).
        return torch.compile(net, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure to set up compilation has the same remedy
        logger.error("model.compile: torch %s cannot compile here (%s: %s); running without it",
                     torch.__version__, type(exc).__name__, first_line(exc, 300))
        return None


def _raise_dynamo_limit(shapes: int) -> None:
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        current = getattr(dynamo_config, name, None)
        if isinstance(current, int):
            if current < shapes:
                setattr(dynamo_config, name, shapes)
            return
