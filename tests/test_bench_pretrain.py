"""bench/pretrain.py: the speed part's synthetic batches train the default agents."""

from __future__ import annotations

import numpy as np
from bench_modules import load_bench

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig

bench_pretrain = load_bench("pretrain")


def test_synthetic_batch_updates_default_am_and_gcbc() -> None:
    batch = bench_pretrain.synthetic_batch(np.random.default_rng(0), 4, 16)
    tiny = dict(conv_channels=[8, 8], embed_dim=8, fusion_dim=16)
    am = AMAgent(AMConfig(**tiny, head_hidden_dim=8, cem_samples=8, cem_elites=2),
                 (16, 16, 3), bench_pretrain.ACTION_DIM)
    assert np.isfinite(am.update(batch)["critic/loss"])  # default AM: mc_floor reads offsets
    gcbc = GCBCAgent(GCBCConfig(**tiny), (16, 16, 3), bench_pretrain.ACTION_DIM)
    assert all(np.isfinite(v) for v in gcbc.update(batch).values())
