"""Shared fixtures of the OGBench tests: tiny files made by OGBench's own environments
(skipped where the ``ogbench`` extra is not installed) and hand-written .npz files."""

from __future__ import annotations

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
