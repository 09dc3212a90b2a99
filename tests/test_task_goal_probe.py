"""bench/task_goal_probe.py: frames of successful episodes and the goal regressor."""

from __future__ import annotations

import numpy as np
import torch
from bench_modules import load_bench

from goalrl.data.storage import DatasetWriter, EpisodeData, EpisodeDataset

probe = load_bench("task_goal_probe")


def test_success_episode_frames_pairs_each_frame_with_its_episodes_final(tmp_path) -> None:
    steps, outcomes = 5, [True, False, True]  # episode 1 fails: none of its frames are used
    with DatasetWriter(tmp_path / "d", image_shape=(8, 8, 3), action_dim=4,
                       durable=False) as writer:
        for seed, ok in enumerate(outcomes):
            success = np.zeros(steps + 1, bool)
            success[-1] = ok
            writer.append(EpisodeData(
                images=np.zeros((steps + 1, 8, 8, 3), np.uint8),
                actions=np.zeros((steps, 4), np.float32), success=success, seed=seed,
            ))
    with EpisodeDataset(tmp_path / "d") as ds:
        frames, finals = probe.success_episode_frames(ds)
    np.testing.assert_array_equal(frames, [*range(0, 6), *range(12, 18)])
    np.testing.assert_array_equal(finals, [5] * 6 + [17] * 6)


def test_goal_regressor_fits_a_map_it_can_represent() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(256, 6, generator=g)
    z = torch.tanh(h[:, :3] - h[:, 3:])  # (256, 3) in (-1, 1)
    mlp = probe.fit_goal_regressor(h, z, steps=1500)
    before = z.square().mean()  # error of predicting 0
    assert (mlp(h) - z).square().mean() < 0.05 * before
