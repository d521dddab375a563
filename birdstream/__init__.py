"""birdstream: bird sightings from camera streams.

The model API (the Birder model card's usage) is imported lazily, so that importing
``birdstream`` or its non-model modules never imports torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_MODEL_API = {
    "load_pretrained_model": "birdstream.model.api",
    "get_size_from_signature": "birdstream.model.api",
    "classification_transform": "birdstream.model.api",
    "infer_image": "birdstream.model.api",
    "infer_batch": "birdstream.model.api",
}

__all__ = ["__version__", *_MODEL_API]


def __getattr__(name: str) -> Any:
    module = _MODEL_API.get(name)
    if module is None:
        raise AttributeError(f"module 'birdstream' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
