"""bench/pretrain.py: the speed part's synthetic batches train the default agents."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig

_spec = importlib.util.spec_from_file_location(
    "bench_pretrain", Path(__file__).resolve().parents[1] / "bench" / "pretrain.py"
)
bench_pretrain = importlib.util.module_from_spec(_spec)
sys.modules["bench_pretrain"] = bench_pretrain  # its dataclasses look their module up
_spec.loader.exec_module(bench_pretrain)


def test_synthetic_batch_updates_default_am_and_gcbc() -> None:
    batch = bench_pretrain.synthetic_batch(np.random.default_rng(0), 4, 16)
    tiny = dict(conv_channels=[8, 8], embed_dim=8, fusion_dim=16)
    am = AMAgent(AMConfig(**tiny, head_hidden_dim=8, cem_samples=8, cem_elites=2),
                 (16, 16, 3), bench_pretrain.ACTION_DIM)
    assert np.isfinite(am.update(batch)["critic/loss"])  # default AM: mc_floor reads offsets
    gcbc = GCBCAgent(GCBCConfig(**tiny), (16, 16, 3), bench_pretrain.ACTION_DIM)
    assert all(np.isfinite(v) for v in gcbc.update(batch).values())
