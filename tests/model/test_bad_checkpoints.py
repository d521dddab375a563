"""Every bad weights file gives one CheckpointError line naming the file, and never runs code."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import birdstream
from birdstream.errors import CheckpointError
from tests.support.planted import make_planted_checkpoint


class _Payload:
    """Unpickling this creates the marker file (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _load_error(path) -> str:
    with pytest.raises(CheckpointError) as exc:
        birdstream.load_pretrained_model(path, device="cpu")
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


@pytest.fixture
def good(tmp_path) -> dict:
    return torch.load(make_planted_checkpoint(tmp_path / "good.pt"), weights_only=True)


def test_missing_file(tmp_path):
    assert "not found" in _load_error(tmp_path / "nope.pt")


def test_directory(tmp_path):
    assert "not a file" in _load_error(tmp_path)


def test_unknown_name_that_is_not_a_file():
    with pytest.raises(CheckpointError, match="not a known weights name"):
        birdstream.load_pretrained_model("vit_parallel_no_such_weights")


def test_random_bytes(tmp_path):
    p = tmp_path / "random.pt"
    p.write_bytes(os.urandom(4096))
    assert "not a Birder checkpoint" in _load_error(p)


def test_text_file(tmp_path):
    p = tmp_path / "notes.pt"
    p.write_text("these are not weights\n")
    assert "not a Birder checkpoint" in _load_error(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    _load_error(p)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_truncated_file(tmp_path, fraction):
    src = make_planted_checkpoint(tmp_path / "full.pt").read_bytes()
    p = tmp_path / "cut.pt"
    p.write_bytes(src[: int(len(src) * fraction)])
    _load_error(p)


def test_malicious_pickle_in_torch_archive_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"state": _Payload(marker), "signature": {}, "class_to_idx": {}, "rgb_stats": {}}, p)
    msg = _load_error(p)
    assert "refused" in msg
    assert not marker.exists()
    # The payload is real: unpickling it without the safe loader would have run it.
    code = f"import torch; torch.load({str(p)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert marker.exists()


def test_malicious_raw_pickle_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"state": _Payload(marker)}, protocol=2))
    _load_error(p)
    assert not marker.exists()


def test_not_a_dict(tmp_path):
    p = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), p)
    assert "not a dict" in _load_error(p)


def test_dict_without_birder_keys(tmp_path, good):
    p = tmp_path / "state_only.pt"
    torch.save(good["state"], p)  # a bare state dict, as other tools save
    assert "missing" in _load_error(p)


def test_other_architecture(tmp_path, good):
    state = {"stem.conv.weight": torch.zeros(8, 3, 3, 3), "head.fc.weight": torch.zeros(12, 8)}
    p = tmp_path / "resnet.pt"
    torch.save({**good, "state": state}, p)
    msg = _load_error(p)
    assert "not a vit_parallel_s16_18x2_ls_avg checkpoint" in msg


def test_other_width(tmp_path, good):
    p = tmp_path / "wide.pt"
    torch.save({**good, "config": {**good["config"], "hidden_dim": 64}}, p)
    assert "shape" in _load_error(p)


def test_class_count_does_not_match_head(tmp_path, good):
    names = [*good["class_to_idx"], "Extra Bird One", "Extra Bird Two"]
    sig = {"inputs": good["signature"]["inputs"], "outputs": [{"data_shape": [0, len(names)]}]}
    p = tmp_path / "heads.pt"
    torch.save({**good, "signature": sig, "class_to_idx": {n: i for i, n in enumerate(names)}}, p)
    msg = _load_error(p)
    assert "classifier has 12 outputs" in msg and "14 classes" in msg


def test_signature_disagrees_with_class_to_idx(tmp_path, good):
    p = tmp_path / "sig.pt"
    torch.save({**good, "class_to_idx": {"a": 0, "b": 1}}, p)
    assert "12 classes but class_to_idx names 2" in _load_error(p)


def test_detection_checkpoint(tmp_path, good):
    p = tmp_path / "det.pt"
    torch.save({**good, "task": "object_detection"}, p)
    assert "not an image classification" in _load_error(p)


def test_bad_input_size(tmp_path, good):
    p = tmp_path / "size.pt"
    sig = {"inputs": [{"data_shape": [0, 3, 100, 100]}], "outputs": good["signature"]["outputs"]}
    torch.save({**good, "signature": sig}, p)
    assert "patch size" in _load_error(p)


def test_a_config_asking_for_a_huge_network_is_refused_before_allocating(tmp_path, good):
    # 3 x 262144^2 floats for one qkv matrix: 824 GB, far beyond what the file holds.
    p = tmp_path / "huge.pt"
    torch.save({**good, "config": {"hidden_dim": 262144, "num_heads": 4, "mlp_dim": 4, "num_layers": 1}}, p)
    msg = _load_error(p)
    assert "unsupported model config" in msg and "parameters but the file holds" in msg


def test_a_config_with_absurd_values_is_one_line(tmp_path, good):
    p = tmp_path / "absurd.pt"
    torch.save({**good, "config": {"num_layers": -3, "patch_size": 0}}, p)
    assert "unsupported model config" in _load_error(p)


def test_torch_versions_with_a_bypassable_safe_loader_are_refused():
    from birdstream.model.checkpoint import check_torch_version

    for bad in ("2.9.1", "2.5.0+cu121", "1.13.1"):
        with pytest.raises(CheckpointError, match="weights_only loader has published bypasses"):
            check_torch_version(bad)
    for ok in ("2.10.0", "2.13.0+cpu", torch.__version__):
        check_torch_version(ok)


def test_the_package_requires_a_safe_torch():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    deps = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(Requirement(d) for d in deps if d.startswith("torch"))
    assert not torch_req.specifier.contains(Version("2.9.1")) and torch_req.specifier.contains(Version("2.10.0"))
