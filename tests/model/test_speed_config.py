"""The model speed keys: defaults keep exact parity, conflicts are one clear line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from birdstream.config import config_from_dict
from birdstream.errors import ConfigError
from birdstream.model.speed import SpeedOptions
from birdstream.station.wiring import speed_options


def _model(**keys):
    return config_from_dict({"model": keys}, base_dir=Path("."), require_streams=False).model


def test_defaults_are_exact():
    m = _model()
    assert (m.quantize, m.input_size, m.compile, m.cuda_graphs) == ("none", None, False, False)
    assert speed_options(m) == SpeedOptions()


def test_values_reach_speed_options():
    m = _model(quantize="INT8", input_size=288, device="cpu")
    assert speed_options(m) == SpeedOptions(quantize="int8", input_size=288)
    m = _model(device="cuda:0", compile=True, cuda_graphs=True)
    assert speed_options(m) == SpeedOptions(compile=True, cuda_graphs=True)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"quantize": "int8", "device": "cuda"}, "model.quantize: int8 is for the CPU only"),
        ({"quantize": "int8", "device": "cuda:1"}, "model.quantize: int8 is for the CPU only"),
        ({"quantize": "int8", "precision": "fp16"}, "model.quantize: int8 runs with fp32 around it"),
        ({"quantize": "int8", "compile": True}, "model.compile: cannot compile an int8-quantized network"),
        ({"quantize": "int4"}, "model.quantize: must be 'none' or 'int8'"),
        ({"cuda_graphs": True, "device": "cpu"}, "model.cuda_graphs: needs a CUDA device"),
        ({"input_size": 300}, "model.input_size: must be a multiple of 16"),
        ({"input_size": 48}, "model.input_size: must be greater than or equal to 64"),
        ({"input_size": 2048}, "model.input_size: must be less than or equal to 1024"),
        ({"compile": "maybe"}, "model.compile:"),
    ],
)
def test_bad_speed_keys(keys, message):
    with pytest.raises(ConfigError, match=message):
        _model(**keys)


def test_auto_device_allows_int8_and_graphs():
    # device auto decides at load time; prepare_network skips what the device cannot do.
    m = _model(quantize="int8", cuda_graphs=True)
    assert m.quantize == "int8" and m.cuda_graphs
