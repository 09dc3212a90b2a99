"""Shared fixtures of the OGBench tests: tiny files made by OGBench's own environments
(skipped where the ``ogbench`` extra is not installed) and hand-written .npz files."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_STEPS = 30  # frames per generated episode (OGBench's sets: 1001)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """cube-single play: 2 training episodes and 1 validation episode of TINY_STEPS frames."""
    pytest.importorskip("ogbench", reason="the ogbench extra is not installed")
    from goalrl.ogbench.generate import GenerateSettings, generate_dataset

    out = tmp_path_factory.mktemp("ogbench") / "cube-single-play-v0.npz"
    summary = generate_dataset(out, GenerateSettings(
        env="cube-single-v0", episodes=2, val_episodes=1, max_episode_steps=TINY_STEPS),
        progress=False)
    return {"path": out, "summary": summary}


@pytest.fixture(scope="module")
def tiny(generated: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """For the OGBench reference check (bench/ogbench_reference.py): the tiny generated files,
    goalrl's import of the training file and fixed batches of 64 (train and val)."""
    from bench_modules import load_bench

    bench = load_bench("ogbench_reference")
    data = Path(generated["path"])
    work = tmp_path_factory.mktemp("reference")
    dataset_dir = bench.imported_dataset(data, work)
    fixed = {"train": bench.fixed_batch(data, 64, seed=1),
             "val": bench.fixed_batch(bench.val_path(data), 64, seed=2)}
    return {"data": data, "work": work, "dataset_dir": dataset_dir, "fixed": fixed}
