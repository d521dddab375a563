"""The speed bench scripts run end to end on CPU with tiny settings (no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_bench_runs_on_cpu(tmp_path, capsys):
    gpu = _load("gpu")
    out = tmp_path / "gpu.json"
    assert gpu.main(["--device", "cpu", "--quick", "--precisions", "fp32", "bf16", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert {(r["variant"], r["batch"]) for r in rows} == {
        ("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2), ("bf16 e2e pageable", 1), ("bf16 e2e pageable", 2),
        ("bf16 engine", 2)}
    assert all(r["ips"] > 0 and r["tflops"] > 0 for r in rows)
    fp32 = [r for r in rows if r["variant"] == "fp32"]
    assert all(r["top1"] == 1.0 and r["max_prob_diff"] == 0.0 for r in fp32)  # the reference itself
    # Which SDPA kernel ran, as the profiler saw it.
    assert all(r["attention"] in gpu.SDPA_KERNELS for r in rows if r["variant"] in ("fp32", "bf16"))
    engine = next(r for r in rows if r["variant"] == "bf16 engine")
    assert engine["vs_forward"] > 0 and engine["streams"] == 2  # through the real Engine and tracker thread
    assert "matmul ceiling" in capsys.readouterr().out


def test_gpu_bench_saves_after_every_variant_and_keeps_to_its_budget(tmp_path):
    gpu = _load("gpu")
    args = gpu.parse_args(["--device", "cpu", "--quick", "--precisions", "fp32", "bf16", "--e2e-precisions"])
    saved: list[list[str]] = []
    result = gpu.run(args, save=lambda r: saved.append([row["variant"] for row in r["rows"]]))
    assert saved[0] == []  # the machine's facts before any variant
    assert saved[1] == ["fp32", "fp32"] and saved[-1] == [row["variant"] for row in result["rows"]]
    assert len(saved) == 3
    args.budget_s = 0  # spent at once: every variant and size is listed as skipped, none measured
    out = tmp_path / "cut.json"
    gpu.write_json(str(out), gpu.run(args))
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["skipped"] == "time budget" for r in rows)


def test_gpu_bench_counts_the_full_model_flops():
    gpu = _load("gpu")
    from birdstream.model.vit_parallel import VIT_PARALLEL_S16_18X2_LS_AVG, ViTParallel, ViTParallelConfig

    with torch.device("meta"):
        net = ViTParallel(735, (384, 384), ViTParallelConfig.from_birder(VIT_PARALLEL_S16_18X2_LS_AVG))
    assert abs(gpu.forward_flops(net, (384, 384)) / 1e9 - 92.07) < 0.01


def test_gpu_bench_without_cuda_says_so(capsys):
    gpu = _load("gpu")
    if torch.cuda.is_available():
        return
    assert gpu.main(["--device", "cuda", "--quick"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_cpu_bench_runs_tiny(tmp_path, capsys):
    cpu = _load("cpu")
    out = tmp_path / "cpu.json"
    args = ["--images", "4", "--batch", "1", "--iterations", "1", "--warmup", "0", "--size", "64", "--sizes", "48",
            "--classes", "10", "--no-bf16", "--config", json.dumps({"num_layers": 1, "hidden_dim": 32, "num_heads": 2,
                                                                     "mlp_dim": 64}), "--out", str(out)]
    assert cpu.main(args) == 0
    result = json.loads(out.read_text())
    assert set(result["options"]) == {"fp32 birder-layout", "fp32 fused", "int8 dynamic", "fp32 fused 48", "int8 48"}
    assert result["options"]["fp32 birder-layout"]["agreement"] is None
    assert result["options"]["fp32 fused"]["agreement"]["top1"] == 1.0
    assert "int8 dynamic" in capsys.readouterr().out


def test_cpu_bench_with_a_real_checkpoint_and_photos(tmp_path):
    from tests.model.test_parity import CKPT, FIX

    cpu = _load("cpu")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("bird.jpeg", "bird.png"):
        (photos / name).write_bytes((FIX / name).read_bytes())
    out = tmp_path / "cpu.json"
    args = ["--weights", str(CKPT), "--image-dir", str(photos), "--batch", "1", "--iterations", "1", "--warmup", "0",
            "--sizes", "48", "--no-bf16", "--out", str(out)]
    assert cpu.main(args) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["weights"] == str(CKPT)
    assert result["options"]["int8 dynamic"]["agreement"]["top1"] == 1.0
