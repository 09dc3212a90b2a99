"""Reward labeling from data, Monte-Carlo returns, success frames and mixed task batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from goalrl.data import keys as K
from goalrl.data.storage import DatasetError, DatasetWriter, EpisodeData, EpisodeDataset
from goalrl.data.task import (
    MC_RETURN,
    ONLINE,
    TaskBatchSampler,
    last_success_frames,
    mc_returns,
    rewards_from_success,
    success_from_rewards,
    successful_episodes,
    task_rewards,
    task_success,
)

# two episodes: 4 frames (3 steps) and 5 frames (4 steps), tiling frames 0..8
STARTS, LENGTHS = np.array([0, 4]), np.array([4, 5])
HAS_NEXT = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0], dtype=bool)


def test_rewards_from_success_label_the_action_that_led_to_success() -> None:
    success = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1], dtype=bool)
    r = rewards_from_success(success, HAS_NEXT)
    # r_t = success[t + 1] inside an episode; episode 1's first frame (success[4]) is not a
    # reward of episode 0's last frame, which has no action
    np.testing.assert_array_equal(r, [0, 1, 1, 0, 0, 0, 0, 1, 0])
    assert r.dtype == np.float32
    back = success_from_rewards(r, HAS_NEXT)
    np.testing.assert_array_equal(back, [0, 0, 1, 1, 0, 0, 0, 0, 1])


def test_mc_returns_are_the_discounted_time_to_the_first_reward_in_the_episode() -> None:
    r = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=np.float32)
    g = mc_returns(r, STARTS, LENGTHS, gamma=0.5)
    np.testing.assert_allclose(g, [0.25, 0.5, 1.0, 0, 0, 0, 0, 0, 0])
    # a reward in the next episode is never credited to this one
    r2 = np.array([0, 0, 0, 0, 0, 0, 1, 0, 0], dtype=np.float32)
    expected = [0, 0, 0, 0, 0.25, 0.5, 1, 0, 0]
    np.testing.assert_allclose(mc_returns(r2, STARTS, LENGTHS, 0.5), expected)


def test_mc_returns_match_the_td_rule_they_floor() -> None:
    """G_t = 1 where r_t, else gamma * G_{t+1}: the Monte-Carlo version of ``q_targets``."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 12, size=20)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n = int(lengths.sum())
    r = (rng.random(n) < 0.15).astype(np.float32)
    r[starts + lengths - 1] = 0
    g = mc_returns(r, starts, lengths, gamma=0.9)
    for s, length in zip(starts, lengths, strict=True):
        expected, nxt = np.zeros(length), 0.0
        for t in range(length - 2, -1, -1):  # the last frame has no action
            nxt = 1.0 if r[s + t] > 0 else 0.9 * nxt
            expected[t] = nxt
        np.testing.assert_allclose(g[s : s + length], expected, rtol=1e-6)


def test_last_success_frame_of_each_successful_episode() -> None:
    success = np.array([0, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    np.testing.assert_array_equal(last_success_frames(success, STARTS, LENGTHS), [2])
    success[8] = True
    np.testing.assert_array_equal(last_success_frames(success, STARTS, LENGTHS), [2, 8])


def write(root: Path, rewards: bool, success: bool, episodes: int = 3) -> EpisodeDataset:
    rng = np.random.default_rng(0)
    with DatasetWriter(root, image_shape=(8, 8, 3), action_dim=2, proprio_dim=3) as w:
        for i in range(episodes):
            succ = np.zeros(6, dtype=bool)
            succ[4:] = i % 2 == 0  # even episodes succeed at frame 4
            w.append(
                EpisodeData(
                    images=np.full((6, 8, 8, 3), 10 * i + np.arange(6)[:, None, None, None],
                                   dtype=np.uint8),
                    actions=rng.uniform(-1, 1, (5, 2)).astype(np.float32),
                    proprio=rng.normal(size=(6, 3)).astype(np.float32),
                    rewards=succ[1:].astype(np.float32) if rewards else None,
                    success=succ if success else None,
                    seed=i,
                )
            )
    return EpisodeDataset(root)


@pytest.mark.parametrize("rewards,success", [(True, False), (False, True), (True, True)])
def test_task_rewards_from_rewards_or_success_labels(tmp_path, rewards, success) -> None:
    ds = write(tmp_path / "d", rewards, success)
    r = task_rewards(ds)
    # episode 0: frames 0..5, success from frame 4: the actions at t = 3, 4 are rewarded
    np.testing.assert_array_equal(r[:6], [0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(r[6:12], 0)
    np.testing.assert_array_equal(task_success(ds)[:6], [0, 0, 0, 0, 1, 1])


def test_unlabeled_dataset_is_refused_by_name(tmp_path) -> None:
    ds = write(tmp_path / "plain", rewards=False, success=False)
    with pytest.raises(DatasetError, match="neither per-step 'rewards' nor per-frame 'success'"):
        task_rewards(ds)


def test_task_batches_mix_online_data_at_the_ratio(tmp_path) -> None:
    offline = write(tmp_path / "off", rewards=True, success=True)
    online = write(tmp_path / "on", rewards=True, success=True, episodes=2)
    sampler = TaskBatchSampler(offline, 10, gamma=0.9, online_ratio=0.3, seed=0)
    batch = sampler.sample()
    assert not batch[ONLINE].any() and batch[K.OBS_IMAGE].shape == (10, 8, 8, 3)
    sampler.set_online(online)
    assert sampler.split() == (7, 3)
    batch = sampler.sample()
    np.testing.assert_array_equal(batch[ONLINE], [0] * 7 + [1] * 3)
    # the next frame really is the next frame, and labels travel with their transition
    t = batch[K.FRAME_INDEX]
    for i, src in enumerate([offline] * 7 + [online] * 3):
        np.testing.assert_array_equal(batch[K.NEXT_OBS_IMAGE][i], src.images([t[i] + 1])[0])
        assert batch[K.REWARD][i] == task_rewards(src)[t[i]]
    assert batch[MC_RETURN].shape == (10,) and batch[K.OBS_PROPRIO].shape == (10, 3)


def test_task_batches_carry_each_transitions_episode_goal_image(tmp_path) -> None:
    offline = write(tmp_path / "off", rewards=True, success=True)  # 3 episodes
    online = write(tmp_path / "on", rewards=True, success=True, episodes=2)
    goals = np.arange(3)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8) + 100
    online_goals = goals[:2] + 50
    sampler = TaskBatchSampler(offline, 12, gamma=0.9, online_ratio=0.5, seed=0,
                               goal_images=goals)
    sampler.set_online(online, online_goals)
    batch = sampler.sample()
    for i, (src, g) in enumerate([(offline, goals)] * 6 + [(online, online_goals)] * 6):
        episode = src.episode_of(batch[K.FRAME_INDEX][i : i + 1])[0]
        np.testing.assert_array_equal(batch[K.GOAL_IMAGE][i], g[episode])
    assert K.GOAL_IMAGE not in TaskBatchSampler(offline, 4, gamma=0.9).sample()
    with pytest.raises(ValueError, match="2 goal images for 3 episodes"):
        TaskBatchSampler(offline, 4, gamma=0.9, goal_images=goals[:2])


def test_successful_only_batches_come_from_episodes_that_end_in_success(tmp_path) -> None:
    """Behaviour cloning's sampler: episodes 0 and 2 succeed (even ones), 1 does not; an online
    set without a success adds nothing, and offline data without one is refused."""
    offline = write(tmp_path / "off", rewards=True, success=True)
    np.testing.assert_array_equal(successful_episodes(offline), [0, 2])
    sampler = TaskBatchSampler(offline, 64, gamma=0.9, seed=0, successful_only=True)
    assert sampler.offline.num_transitions == 10  # 2 episodes of 5 steps
    episodes = offline.episode_of(sampler.sample()[K.FRAME_INDEX])
    assert set(episodes.tolist()) == {0, 2}
    online = write(tmp_path / "on", rewards=True, success=True, episodes=2)  # 0 succeeds
    sampler.set_online(online)
    assert sampler.split() == (32, 32)
    batch = sampler.sample()
    assert set(online.episode_of(batch[K.FRAME_INDEX][batch[ONLINE]]).tolist()) == {0}
    sampler.set_online(_only_failures(tmp_path / "failed_online"))
    assert sampler.split() == (64, 0)  # no successful online episode yet: all offline
    with pytest.raises(DatasetError, match="no successful episodes' transitions"):
        TaskBatchSampler(_only_failures(tmp_path / "failed_offline"), 4, gamma=0.9,
                         successful_only=True)


def _only_failures(root: Path) -> EpisodeDataset:
    """A dataset of one labeled episode that never succeeds, at ``root``."""
    with DatasetWriter(root, image_shape=(8, 8, 3), action_dim=2) as w:
        w.append(EpisodeData(images=np.zeros((4, 8, 8, 3), np.uint8),
                             actions=np.zeros((3, 2), np.float32),
                             rewards=np.zeros(3, np.float32)))
    return EpisodeDataset(root)
