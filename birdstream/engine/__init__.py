"""Per-stream mailboxes and the one inference thread that batches frames through the classifier.

``Classifier`` imports torch; it is loaded lazily so that importing this package does not.
"""

from __future__ import annotations

from typing import Any

from birdstream.engine.engine import Engine
from birdstream.engine.mailbox import Mailbox

__all__ = ["Classifier", "Engine", "Mailbox"]


def __getattr__(name: str) -> Any:
    if name == "Classifier":
        from birdstream.engine.classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'birdstream.engine' has no attribute {name!r}")
