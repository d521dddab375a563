"""What hardware this test machine has, without importing torch."""

from __future__ import annotations

from pathlib import Path


def nvidia_gpu_present() -> bool:
    """An NVIDIA GPU is passed to this machine (the device nodes CUDA and NVDEC would need exist)."""
    return any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvidiactl"))
