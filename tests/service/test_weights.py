"""The structural checkpoint check: real torch files pass, anything else is one clear line, nothing is executed."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest

from birdstream.errors import CheckpointError
from birdstream.model.weights import check_checkpoint_file


def birder_like(path: Path) -> Path:
    import torch

    torch.save({"state": {"norm.weight": torch.ones(4)}, "birder_version": "0.8.4", "task": "image_classification",
                "signature": {"inputs": [{"data_shape": [0, 3, 384, 384]}], "outputs": [{"data_shape": [0, 2]}]},
                "class_to_idx": {"Columba livia": 0, "Passer domesticus": 1},
                "rgb_stats": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}, path)
    return path


class Exploit:
    def __reduce__(self):  # what a malicious checkpoint does: call something on load
        return (os.system, ("touch /tmp/birdstream-pwned",))


def test_real_checkpoint_passes(tmp_path: Path) -> None:
    check_checkpoint_file(birder_like(tmp_path / "bird.pt"))


def test_other_torch_file_lacks_keys(tmp_path: Path) -> None:
    import torch

    torch.save({"model": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"not a Birder checkpoint \(no state, signature, class_to_idx"):
        check_checkpoint_file(tmp_path / "other.pt")


def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    payload = {"state": {}, "signature": {}, "class_to_idx": {}, "rgb_stats": Exploit()}
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("evil/version", "3")
    with pytest.raises(CheckpointError, match=r"unsafe checkpoint: it references posix\.system"):
        check_checkpoint_file(evil)
    with zipfile.ZipFile(tmp_path / "evil4.pt", "w") as archive:
        archive.writestr("evil4/data.pkl", pickle.dumps(payload, protocol=4))  # STACK_GLOBAL form
    with pytest.raises(CheckpointError, match=r"unsafe checkpoint: it references posix\.system"):
        check_checkpoint_file(tmp_path / "evil4.pt")


def test_truncated_and_missing(tmp_path: Path) -> None:
    data = birder_like(tmp_path / "bird.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        check_checkpoint_file(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match=r"model.weights: .*absent.pt: no such file"):
        check_checkpoint_file(tmp_path / "absent.pt")
