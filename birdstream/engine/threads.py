"""CPU thread settings for inference (model.threads)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def set_cpu_threads(threads: int | None) -> None:
    """Use this many CPU threads for inference; None leaves torch's default (all cores)."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
    log.info("inference uses %d CPU thread(s)", threads)
