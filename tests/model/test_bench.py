"""The bench function runs end to end on a tiny config and reports consistent rows (no timing assertions)."""

from __future__ import annotations

from birdstream.model.bench import format_table, run_bench


def test_run_bench_tiny():
    rows = run_bench(
        (1, 2), iterations=1, warmup=0, size=(32, 48), num_classes=5,
        config={"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "mlp_dim": 64}, compare_birder=False,
    )
    assert [r.batch for r in rows] == [1, 2]
    assert all(r.fused_ips > 0 and r.reference_ips > 0 and r.birder_ips is None for r in rows)
    table = format_table(rows)
    assert "birdstream img/s" in table and len(table.splitlines()) == 3
