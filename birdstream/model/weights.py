"""A cheap structural check of a Birder checkpoint file, without torch and without unpickling.

Reads the pickle opcodes of a zip-format torch file: the expected top-level keys must be there and
every global it references must be a torch rebuild function or an OrderedDict (what
``torch.load(weights_only=True)`` would accept); nothing is executed.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

from birdstream.errors import CheckpointError

REQUIRED_KEYS = ("state", "signature", "class_to_idx", "rgb_stats")
_SAFE_GLOBALS = {("collections", "OrderedDict")}


def check_checkpoint_file(path: Path, what: str = "model.weights") -> None:
    """Raise CheckpointError (one line naming *what* and the file) unless *path* looks like a Birder checkpoint."""
    if not path.exists():
        raise CheckpointError(f"{what}: {path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{what}: {path}: not a file")
    try:
        with open(path, "rb"):  # is_zipfile() would hide an unreadable file behind "not a zip"
            pass
    except OSError as exc:
        raise CheckpointError(f"{what}: {path}: cannot read: {exc.strerror or exc}") from None
    try:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{what}: {path}: not a zip-format torch checkpoint")
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise CheckpointError(f"{what}: {path}: not a torch checkpoint (no data.pkl)")
            data = archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{what}: {path}: unreadable: {exc}") from None
    strings: set[str] = set()
    recent: list[str] = []
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                _check_global(*arg.split(" ", 1), path=path, what=what)
            elif op.name == "STACK_GLOBAL" and len(recent) >= 2:
                _check_global(recent[-2], recent[-1], path=path, what=what)
            if isinstance(arg, str):
                strings.add(arg)
                recent = (recent + [arg])[-2:]
    except (ValueError, EOFError) as exc:
        raise CheckpointError(f"{what}: {path}: corrupt checkpoint: {exc}") from None
    missing = [k for k in REQUIRED_KEYS if k not in strings]
    if missing:
        raise CheckpointError(f"{what}: {path}: not a Birder checkpoint (no {', '.join(missing)})")


def _check_global(module: str, name: str, *, path: Path, what: str) -> None:
    if module == "torch" or module.startswith("torch.") or (module, name) in _SAFE_GLOBALS:
        return
    raise CheckpointError(f"{what}: {path}: unsafe checkpoint: it references {module}.{name}")
