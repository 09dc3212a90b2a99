"""bench/pretrain.py: synthetic batches train the default agents; the speed report; and
bench/update_overhead.py, which times the same agents on the same batches."""

from __future__ import annotations

import numpy as np
from bench_modules import load_bench

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig

bench_pretrain = load_bench("pretrain")


def test_synthetic_batch_updates_default_am_and_gcbc() -> None:
    batch = bench_pretrain.synthetic_batch(np.random.default_rng(0), 4, 16)
    tiny = {"encoder": {"conv_channels": [8, 8], "embed_dim": 8, "fusion_dim": 16}}
    am = AMAgent(AMConfig.from_dict({**tiny, "head_hidden_dim": 8, "cem_samples": 8,
                                     "cem_elites": 2}), (16, 16, 3), bench_pretrain.ACTION_DIM)
    assert np.isfinite(am.update(batch)["critic/loss"])  # default AM: mc_floor reads offsets
    gcbc = GCBCAgent(GCBCConfig.from_dict(tiny), (16, 16, 3), bench_pretrain.ACTION_DIM)
    assert all(np.isfinite(v) for v in gcbc.update(batch).values())


def test_update_overhead_splits_an_update_into_its_phases() -> None:
    import torch

    overhead = load_bench("update_overhead")
    real_tolist = torch.Tensor.tolist
    for kind in ("am", "gcbc"):
        row = overhead.measure(kind, batch_size=2, image=16, updates=2)
        assert row["aten_ops"] > 100
        for phase in ("optimiser", "backward", "averaging", "clipping"):
            assert row[phase] > 0.0, (kind, phase)  # each phase was found in the profile
        assert row["rest"] >= 0.0  # no phase counted twice
        assert row["host_reads"] == 0  # stats stay on the device until read
        assert "| " + kind + " | cpu | 2 | 16 |" in "\n".join(overhead.table([row]))
    with overhead.host_reads_mode() as counter:
        torch.zeros(3).tolist()
        float(torch.ones(()))
        torch.ones(2) + 1  # stays a tensor: no read
    assert counter.reads == 2
    assert torch.Tensor.tolist is real_tolist  # the wrapper is removed on exit


def test_speed_report_shows_cuda_graph_rows_and_their_failures() -> None:
    import json

    res = json.loads((bench_pretrain.DOCS / "pretrain_speed_cuda_1threads.json").read_text())
    plain = "\n".join(bench_pretrain.speed_section("x", res))
    assert "CUDA graph" not in plain  # a result without graph rows renders as before
    res["rows"][1].update(am_graph_ups=250.0, gcbc_graph_error="RuntimeError: capture failed")
    text = "\n".join(bench_pretrain.speed_section("x", res))
    assert "| 256 | 250.0 | failed: RuntimeError: capture failed |" in text
    verdicts = "\n".join(bench_pretrain.speed_verdicts(res))
    assert "CUDA graph: 250 updates/s (target 200): **met**" in verdicts


def test_update_overhead_ab_section_lists_every_round() -> None:
    overhead = load_bench("update_overhead")
    ab = {"against": "abc", "head": "def", "rounds": 2, "batch": 2, "updates": 3, "date": "d",
          "times": {"before": {"am": [10.0, 12.0]}, "after": {"am": [8.0, 9.5]}}}
    text = "\n".join(overhead.report([ab]))
    assert "## A/B against abc" in text
    assert "| am | 11.0 ms | 8.8 ms | 10.0 / 8.0, 12.0 / 9.5 |" in text


def test_report_is_written_from_the_speed_results_only(tmp_path) -> None:
    import shutil

    for name in ("pretrain_speed_cpu_1threads.json", "pretrain_speed_cuda_1threads.json"):
        shutil.copy(bench_pretrain.DOCS / name, tmp_path / name)
    (tmp_path / "pretrain_success_cpu.json").write_text('{"runs": []}')  # not a speed result
    text = bench_pretrain.write_report(tmp_path).read_text()
    assert "(`pretrain_speed_cpu_1threads.json`)" in text
    assert "NVIDIA H200 (`pretrain_speed_cuda_1threads.json`)" in text
    assert "pretrain_success" not in text
    assert "GPU batch 256: 77 updates/s (target 200): **not met**. (pretrain_speed_cuda_1threads)" \
        in text
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # no temporary file left behind
        "pretrain.md", "pretrain_speed_cpu_1threads.json", "pretrain_speed_cuda_1threads.json",
        "pretrain_success_cpu.json"]
