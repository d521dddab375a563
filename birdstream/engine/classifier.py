"""The resident classifier: one network on one device, uint8 frames in, softmax probabilities out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from birdstream.errors import first_line

log = logging.getLogger(__name__)


class Classifier:
    """A loaded network resident on its device; call it with uint8 [N, H, W, 3] RGB frames."""

    def __init__(self, net: torch.nn.Module, model_info: Any, *, device: torch.device, dtype: torch.dtype,
                 speed: Any = None, max_batch: int = 32) -> None:
        from birdstream.model.speed import SpeedOptions, prepare_network

        net = net.eval()
        if hasattr(net, "autocast_dtype"):
            net.autocast_dtype = None if dtype == torch.float32 else dtype
        # Speed options (int8, a lower input size, compile, CUDA graphs) applied once, in place.
        self.forward = prepare_network(net, speed or SpeedOptions(), max_batch=max_batch)
        self.net = net
        self.info = model_info
        self.device = device
        self.dtype = dtype
        self.class_names: list[str] = list(model_info.class_names)
        # Ingest resizes frames to this: the model's own size, or model.input_size when set.
        self.input_size: tuple[int, int] = tuple(int(v) for v in self.forward.input_size)  # type: ignore[assignment]
        self.model_id = f"{model_info.name}@{str(model_info.sha256)[:12]}"
        mean = torch.tensor(model_info.rgb_stats["mean"], dtype=torch.float32)
        std = torch.tensor(model_info.rgb_stats["std"], dtype=torch.float32)
        # Same arithmetic, in the same order, as the reference transform: *1/255, -mean, /std.
        self._mean = mean.view(1, 3, 1, 1).to(device)
        self._std = std.view(1, 3, 1, 1).to(device)
        self.max_batch = max_batch
        # Two host buffers (pinned on CUDA) used in turn: the engine stacks batch k+1 into one while
        # batch k's copy from the other may still be in flight. Outputs come back the same way.
        self._host: list[np.ndarray] = []
        self._pinned: list[torch.Tensor] = []
        self._out: list[torch.Tensor] = []
        self._turn = 0
        cuda = device.type == "cuda"
        # Inference on a stream of its own, not the default one that other CUDA work (FFmpeg's
        # hardware decoder, a download of a decoded frame) waits behind; copies on another.
        self._compute = torch.cuda.Stream(device) if cuda else None
        self._copy = torch.cuda.Stream(device) if cuda else None

    @classmethod
    def load(
        cls,
        weights: str | Path,
        device: str = "auto",
        precision: str = "auto",
        cache_dir: str | Path | None = None,
        *,
        speed: Any = None,
        max_batch: int = 32,
    ) -> Classifier:
        """Load weights (a published name or a .pt path) onto the device, ready to classify.

        `speed` is a birdstream.model.speed.SpeedOptions (default: exact, no speed option).
        """
        from birdstream.model.api import load_pretrained_model, resolve_device, resolve_dtype

        dev = resolve_device(device)
        dtype = resolve_dtype(precision or "auto", dev)
        # Weights stay fp32 on the device; the network runs its forward under autocast to dtype.
        net, info = load_pretrained_model(weights, inference=True, device=dev, dtype=dtype, cache_dir=cache_dir)
        clf = cls(net, info, device=dev, dtype=dtype, speed=speed, max_batch=max_batch)
        log.info(
            "classifier %s loaded on %s (%s; %s), input %dx%d, %d classes",
            clf.model_id, dev, str(dtype).removeprefix("torch."), clf.forward.describe(), *clf.input_size,
            len(clf.class_names),
        )
        return clf

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def host_buffer(self, n: int) -> np.ndarray:
        """The uint8 [n, H, W, 3] host array (pinned on CUDA) the next ``submit`` reads: stack frames into it."""
        if not self._host or self._host[0].shape[0] < n:
            h, w = self.input_size
            shape = (max(n, self.max_batch, 1), h, w, 3)  # once: pinned allocations are slow
            if self.device.type == "cuda":
                self._pinned = [torch.empty(shape, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
                self._out = [torch.empty((shape[0], self.num_classes), dtype=torch.float32, pin_memory=True)
                             for _ in range(2)]
                self._host = [t.numpy() for t in self._pinned]
            else:
                self._host = [np.empty(shape, np.uint8) for _ in range(2)]
        return self._host[self._turn][:n]

    def submit(self, images: np.ndarray) -> Launched:
        """Launch uint8 [N, H, W, 3] RGB frames at input_size; ``.result()`` gives float32 [N, num_classes].

        On CUDA this returns once the work is queued: the copy runs on a side stream, the forward
        on the compute stream, the probabilities come back into pinned memory, and an event marks
        the end. On a CPU it classifies at once (the same steps, without streams).
        """
        h, w = self.input_size
        if images.ndim != 4 or images.shape[1:] != (h, w, 3) or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 [N, {h}, {w}, 3] images, got {images.dtype} {list(images.shape)}")
        n = images.shape[0]
        if n == 0:
            return Launched(np.zeros((0, self.num_classes), np.float32))
        if self.device.type != "cuda":
            with torch.inference_mode():
                probs = self._infer(torch.from_numpy(np.ascontiguousarray(images)))
                return Launched(probs.cpu().numpy())
        return self._submit_cuda(images, n)

    def _submit_cuda(self, images: np.ndarray, n: int) -> Launched:
        host = self.host_buffer(n)
        if images.__array_interface__["data"][0] != host.__array_interface__["data"][0]:
            host[...] = images  # not stacked into this turn's pinned buffer: copy there first
        turn, self._turn = self._turn, self._turn ^ 1
        assert self._compute is not None and self._copy is not None
        with torch.inference_mode():
            with torch.cuda.stream(self._copy):
                x = self._pinned[turn][:n].to(self.device, non_blocking=True)
            self._compute.wait_stream(self._copy)
            x.record_stream(self._compute)  # allocated on the copy stream, used on the compute stream
            with torch.cuda.stream(self._compute):
                probs = self._infer(x)
                out = self._out[turn][:n]
                out.copy_(probs, non_blocking=True)
                done = torch.cuda.Event()
                done.record(self._compute)
        return Launched(out, done)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC on the device -> float32 softmax probabilities on the device."""
        x = x.permute(0, 3, 1, 2).to(torch.float32).mul_(1.0 / 255)
        x = x.sub_(self._mean).div_(self._std).contiguous()
        logits = self.forward(x)  # autocast to self.dtype inside the network
        return torch.softmax(logits.float(), dim=1)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB at input_size -> float32 [N, num_classes] softmax probabilities."""
        return self.submit(images).result()

    def prepare(self) -> None:
        """Compile / capture every batch bucket now (model.compile, model.cuda_graphs), not in service.

        If that fails (a compiler or driver problem), say so in one line and run the network
        eagerly: slower, same results, and the station keeps working.
        """
        if self.forward.buckets is None:
            return
        try:
            self.forward.warmup()
        except Exception as exc:  # noqa: BLE001 - any compile/capture failure has the same remedy
            log.error("model.compile / model.cuda_graphs (%s) failed: %s; running without them",
                      self.forward.describe(), _root_cause(exc))
            self.forward = self.forward.without_compile_and_graphs()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
                torch.cuda.empty_cache()

    def warm_up(self, batch_size: int = 1) -> None:
        """Run one batch (and compile or capture every batch bucket) before the service is READY."""
        self.prepare()
        h, w = self.input_size
        self(np.zeros((batch_size, h, w, 3), np.uint8))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def stream(self) -> torch.cuda.Stream | None:
        """The CUDA stream inference runs on (None on a CPU)."""
        return self._compute

    def release_memory(self) -> None:
        """Give cached device memory back after an out-of-memory error."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class Launched:
    """A submitted batch; ``result()`` waits for it (on CUDA) and returns its probabilities."""

    def __init__(self, out: np.ndarray | torch.Tensor, done: torch.cuda.Event | None = None) -> None:
        self._out = out
        self._done = done

    @property
    def ready(self) -> bool:
        return self._done is None or self._done.query()

    def result(self) -> np.ndarray:
        if self._done is None:
            return self._out  # type: ignore[return-value]
        self._done.synchronize()
        # A copy: the pinned output buffer is reused two launches later, trackers keep rows longer.
        return self._out.numpy().copy()  # type: ignore[union-attr]


def _root_cause(exc: BaseException) -> str:
    """``Type: first line`` of the innermost cause (compiler errors wrap the real one, with long traces)."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or getattr(exc, "inner_exception", None)  # torch.compile wraps it there
        if not isinstance(inner, BaseException) or id(inner) in seen:
            break
        exc = inner
        seen.add(id(exc))
    return f"{type(exc).__name__}: {first_line(exc, 300)}"
