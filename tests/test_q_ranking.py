"""bench/q_ranking.py: arm-copy actions, xy cosines, and the object-moving transition pairs."""

from __future__ import annotations

import numpy as np
from bench_modules import load_bench

from goalrl.data.storage import DatasetWriter, EpisodeData, EpisodeDataset

q_ranking = load_bench("q_ranking")


def test_toward_scales_to_max_step_and_keeps_direction() -> None:
    step = q_ranking.MAX_STEP
    delta = np.array([[2 * step, 0.0, 0.0], [0.5 * step, step, 0.0], [0.25 * step, 0, 0]])
    out = q_ranking.toward(delta, np.array([1.0, -1.0, 1.0]))
    np.testing.assert_allclose(out, [[1, 0, 0, 1], [0.5, 1, 0, -1], [0.25, 0, 0, 1]])


def test_xy_cosine() -> None:
    x = np.array([[1.0, 0, 5, 1], [1, 1, 0, 0]])
    y = np.array([[2.0, 0, -3, 0], [-1, -1, 0, 0]])
    np.testing.assert_allclose(q_ranking.xy_cosine(x, y), [1.0, -1.0], atol=1e-6)


def test_pairs_keep_only_goals_where_the_object_moved(tmp_path) -> None:
    # two 40-step episodes; the object jumps 5 cm at step 20 of each
    steps = 40
    with DatasetWriter(tmp_path / "d", image_shape=(8, 8, 3), action_dim=4, proprio_dim=5,
                       goal_dim=3, durable=False) as writer:
        for seed in range(2):
            obj = np.zeros((steps + 1, 3), np.float32)
            obj[20:, 0] = 0.05
            writer.append(EpisodeData(
                images=np.zeros((steps + 1, 8, 8, 3), np.uint8),
                actions=np.zeros((steps, 4), np.float32),
                proprio=np.zeros((steps + 1, 5), np.float32),
                achieved_goal=obj, seed=seed,
            ))
    with EpisodeDataset(tmp_path / "d") as ds:
        t, g = q_ranking.object_moving_pairs(ds, count=50, seed=0)
        episode = ds.episode_of(np.arange(ds.num_frames))
    local_t, local_g = t % (steps + 1), g % (steps + 1)
    assert np.all(episode[t] == episode[g])
    assert np.all((g - t >= 5) & (g - t < 30))
    assert np.all((local_t < 20) & (local_g >= 20))  # the jump lies between t and the goal
