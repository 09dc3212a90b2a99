"""goalrl/RearrangeTray-v0: the reward "any object in the tray", its scripted labeled data, and
fine-tuning on it without a goal image."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import goalrl  # noqa: F401  (registers the scene ids)
from goalrl.envs.tasks import TRAY_FLOOR, TRAY_HALF
from goalrl.envs.tray_task import (
    ENV_ID,
    TrayAttemptPolicy,
    objects_in_tray,
    tray_distance,
    tray_success,
)

TRAY = np.array([0.05, -0.1])


def test_an_object_counts_inside_the_walls_and_resting_low_only() -> None:
    rest = TRAY_FLOOR + 0.02
    positions = np.array([
        [0.05, -0.1, rest],  # centre of the tray
        [0.05 + TRAY_HALF - 0.02, -0.1, rest],  # near a wall, inside
        [0.05 + TRAY_HALF + 0.01, -0.1, 0.02],  # just outside, on the table
        [0.05, -0.1, 0.15],  # carried above the tray
    ])  # (4, 3)
    np.testing.assert_array_equal(objects_in_tray(positions, TRAY), [True, True, False, False])
    # flat achieved goals of three objects, batched (2, 9): any object in is success
    out = np.array([[0.3, 0.3, 0.02]] * 3)
    one_in = np.concatenate([out[:2], positions[:1]])
    batch = np.stack([out.ravel(), one_in.ravel()])
    np.testing.assert_array_equal(tray_success(batch, TRAY), [False, True])
    assert tray_distance(one_in.ravel(), TRAY) == pytest.approx(0.0)
    np.testing.assert_allclose(tray_distance(out.ravel(), TRAY), np.hypot(0.25, 0.4))


def test_the_scene_rewards_any_object_in_the_tray_not_the_pictured_one() -> None:
    env = gym.make(ENV_ID, image_size=32)
    obs, info = env.reset(seed=3)
    u = env.unwrapped
    assert not info["is_success"]  # objects start apart from the tray
    tray = u.scene.position("tray")
    goal = u.goal_layout
    in_goal = [n for n, p in goal.objects.items()
               if objects_in_tray(p[None, :3], tray[:2])[0]]
    assert len(in_goal) == 1  # the picture shows one object in the tray
    other = next(n for n in goal.objects if n not in in_goal)  # put another one in instead
    layout = u.current_layout()
    layout.objects[other] = np.array([*tray[:2], TRAY_FLOOR + 0.02, 0.0])
    u.apply_layout(layout)
    obs, reward, _, _, info = env.step(np.zeros(4, np.float32))
    assert reward == 1.0 and info["is_success"] and info["distance"] < 0.03
    env.close()


def test_scripted_attempts_put_an_object_in_the_tray_part_of_the_time() -> None:
    """Labeled data: one attempt per episode; at this noise some succeed and some do not,
    and success is held to the last frame once the hand lets go."""
    env = gym.make(ENV_ID, image_size=16)
    finals = []
    for seed in range(6):
        policy = TrayAttemptPolicy(env.unwrapped, seed=seed, waypoint_noise=0.02)
        obs, info = env.reset(seed=seed)
        policy.reset()
        rewards = []
        for _ in range(80):
            obs, reward, _, truncated, info = env.step(policy(obs))
            rewards.append(reward)
            if truncated:
                break
        finals.append(info["is_success"])
        if info["is_success"]:
            assert rewards[-10:] == [1.0] * 10  # it rests there: the reward stays
    assert 0 < sum(finals) < len(finals), finals
    env.close()
    with pytest.raises(ValueError, match="has no tray"):
        TrayAttemptPolicy(gym.make("goalrl/Grasp-v0", image_size=16).unwrapped)


def test_collect_and_finetune_on_the_tray_task_without_a_goal_image(tmp_path) -> None:
    from goalrl.agents import AMConfig, EncoderConfig
    from goalrl.agents.task_q import TaskQConfig
    from goalrl.commands.collect import CollectConfig, collect
    from goalrl.data.storage import EpisodeDataset
    from goalrl.training.finetune import FinetuneConfig, finetune

    data = tmp_path / "tray"
    collect(CollectConfig(env=ENV_ID, policy="tray", episodes=2, image_size=16, sheet=False,
                          out=str(data)))
    ds = EpisodeDataset(data)
    assert ds.rewards is not None and ds.meta["env_id"] == ENV_ID
    am = AMConfig(encoder=EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32),
                  head_hidden_dim=16, act_cem_samples=16, act_cem_elites=4, pad=2)
    summary = finetune(FinetuneConfig(
        init="none", task=ENV_ID, data=str(data), out=str(tmp_path / "ft"), steps=2,
        online_steps=2, updates_per_episode=2, batch_size=8, eval_episodes=1, videos=0,
        prefetch=1, agent=TaskQConfig(num_negatives=4, am=am),
    ))
    assert summary["task"] == ENV_ID and summary["task_input"] == "embedding"
    assert summary["online_episodes"] == 1 and summary["success_final"] is not None
