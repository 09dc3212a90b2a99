"""Scenes behave as GoalEnvs: checker, determinism, goals, rewards, action handling."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import goalrl
from goalrl.envs.goal_env import TabletopGoalEnv

IMAGE = 32  # small images keep the suite fast; geometry does not depend on it


def make(env_id: str, **kw) -> gym.Env:
    return gym.make(env_id, image_size=IMAGE, **kw)


@pytest.mark.parametrize("env_id", goalrl.ENV_IDS)
def test_env_checker_passes(env_id: str) -> None:
    env = make(env_id)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("env_id", goalrl.ENV_IDS)
def test_observation_layout(env_id: str) -> None:
    env = make(env_id)
    obs, info = env.reset(seed=1)
    assert obs["image"].shape == (IMAGE, IMAGE, 3) and obs["image"].dtype == np.uint8
    assert obs["desired_goal_image"].shape == (IMAGE, IMAGE, 3)
    assert obs["achieved_goal"].shape == obs["desired_goal"].shape
    assert env.observation_space.contains(obs)
    assert isinstance(info["is_success"], bool)
    env.close()


def rollout(env: gym.Env, seed: int | None, actions: np.ndarray) -> list[dict]:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        out.append(env.step(a)[0])
    return out


def assert_same(a: list[dict], b: list[dict]) -> None:
    for oa, ob in zip(a, b, strict=True):
        for key in oa:
            np.testing.assert_array_equal(oa[key], ob[key], err_msg=key)


@pytest.mark.parametrize("env_id", ["goalrl/Push-v0", "goalrl/Rearrange-v0"])
def test_seeded_reset_is_reproducible_after_other_episodes(env_id: str) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (12, 4)).astype(np.float32)
    env = make(env_id)
    first = rollout(env, 7, actions)
    rollout(env, 3, actions[::-1])  # a different episode in between
    again = rollout(env, 7, actions)
    assert_same(first, again)
    other = make(env_id)
    assert_same(first, rollout(other, 7, actions))
    assert not np.array_equal(first[0]["image"], rollout(other, 8, actions[:0])[0]["image"])


def test_unseeded_reset_after_seeded_one_is_reproducible() -> None:
    a, b = make("goalrl/Push-v0"), make("goalrl/Push-v0")
    a.reset(seed=5)
    b.reset(seed=5)
    oa, ob = a.reset()[0], b.reset()[0]
    for key in oa:
        np.testing.assert_array_equal(oa[key], ob[key])
    # and the unseeded episode is a new one, not a replay of seed 5
    assert not np.array_equal(
        oa["desired_goal"], make("goalrl/Push-v0").reset(seed=5)[0]["desired_goal"]
    )


@pytest.mark.parametrize("env_id", goalrl.ENV_IDS)
def test_goal_image_is_the_camera_view_of_the_goal_state(env_id: str) -> None:
    env = make(env_id)
    obs, _ = env.reset(seed=11)
    u: TabletopGoalEnv = env.unwrapped
    u.apply_layout(u.goal_layout)
    np.testing.assert_array_equal(u.render(), obs["desired_goal_image"])
    assert not np.array_equal(obs["image"], obs["desired_goal_image"])
    achieved = u.achieved_goal()
    assert u.compute_reward(achieved, obs["desired_goal"], None) == 1.0
    if u.task.goal != "lift":
        np.testing.assert_allclose(achieved, obs["desired_goal"], atol=1e-5)


@pytest.mark.parametrize("env_id", goalrl.ENV_IDS)
def test_vectorised_reward_matches_per_sample(env_id: str) -> None:
    env = make(env_id)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=2)
    dg = obs["desired_goal"]
    # achieved goals: the goal itself, small and large perturbations of it
    achieved = dg + rng.normal(0, 1, (64, dg.size)) * rng.choice([0.0, 0.01, 0.2], (64, 1))
    desired = np.repeat(dg[None], 64, axis=0)
    batch = u.compute_reward(achieved, desired, None)
    single = np.array([u.compute_reward(a, d, None) for a, d in zip(achieved, desired)])
    assert batch.shape == (64,)
    np.testing.assert_array_equal(batch, single)
    assert 0 < batch.sum() < 64  # both outcomes occur
    assert u.compute_terminated(achieved, desired, None).shape == (64,)
    assert u.compute_truncated(achieved, desired, None).shape == (64,)
    # a (2, 32) batch keeps its batch shape
    assert u.compute_reward(
        achieved.reshape(2, 32, -1), desired.reshape(2, 32, -1), None
    ).shape == (2, 32)


def test_step_reward_agrees_with_compute_reward() -> None:
    env = make("goalrl/Reach-v0")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    for _ in range(5):
        obs, reward, terminated, _, info = env.step(env.action_space.sample())
        assert reward == u.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
        assert info["is_success"] == bool(reward)


def test_out_of_range_actions_are_clipped() -> None:
    env = make("goalrl/Push-v0")
    env.reset(seed=4)
    u = env.unwrapped
    state = u.save_state()
    big = env.step(np.array([5.0, -7.0, 2.0, 3.0], np.float32))[0]
    u.restore_state(state)
    unit = env.step(np.array([1.0, -1.0, 1.0, 1.0], np.float32))[0]
    for key in big:
        np.testing.assert_array_equal(big[key], unit[key])


@pytest.mark.parametrize(
    "action, message",
    [
        (np.array([0.0, np.nan, 0.0, 0.0]), "NaN"),
        (np.array([0.0, 0.0, np.inf, 0.0]), "NaN or infinite"),
        (np.zeros(3), "shape"),
        (np.zeros((1, 4)), "shape"),
    ],
)
def test_bad_actions_raise_value_error(action: np.ndarray, message: str) -> None:
    env = make("goalrl/Push-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_save_and_restore_state_replays_exactly() -> None:
    env = make("goalrl/PickPlace-v0")
    env.reset(seed=9)
    u = env.unwrapped
    rng = np.random.default_rng(1)
    for _ in range(3):
        env.step(rng.uniform(-1, 1, 4))
    state = u.save_state()
    actions = rng.uniform(-1, 1, (6, 4))
    first = [env.step(a)[0] for a in actions]
    u.restore_state(state)
    again = [env.step(a)[0] for a in actions]
    assert_same(first, again)
    u.remove_state(state)


def test_yaw_control_adds_an_action_dimension() -> None:
    env = make("goalrl/Grasp-v0", yaw=True)
    assert env.action_space.shape == (5,)
    env.reset(seed=0)
    u = env.unwrapped
    before = u.arm.tcp_yaw()
    for _ in range(3):
        env.step(np.array([0, 0, 0, -1, 1.0], np.float32))
    assert u.arm.tcp_yaw() == pytest.approx(before + 0.6, abs=0.05)


def test_async_vector_env_runs() -> None:
    envs = gym.vector.AsyncVectorEnv([lambda: make("goalrl/Push-v0") for _ in range(2)])
    obs, _ = envs.reset(seed=[0, 1])
    assert obs["image"].shape == (2, IMAGE, IMAGE, 3)
    assert not np.array_equal(obs["image"][0], obs["image"][1])
    obs, reward, term, trunc, info = envs.step(envs.action_space.sample())
    assert reward.shape == (2,) and obs["desired_goal_image"].shape == (2, IMAGE, IMAGE, 3)
    envs.close()


def test_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown task 'Nope'"):
        TabletopGoalEnv("Nope")


def test_info_reports_the_arm_distance_to_the_pictured_arm() -> None:
    env = make("goalrl/Push-v0")
    _, info = env.reset(seed=2)
    u = env.unwrapped
    expected = np.linalg.norm(u.arm.tcp_position() - u.goal_layout.tcp)
    assert info["arm_distance"] == pytest.approx(expected) and expected > 0.05
    # the arm teleported into the pictured pose: arm distance ~0, the object still far
    u.arm.teleport(u.goal_layout.tcp, u.goal_layout.yaw, u.goal_layout.opening)
    _, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
    assert info["arm_distance"] < 0.01
    assert info["distance"] > 0.05 and not info["is_success"]
    env.close()


def test_a_layout_simulates_the_same_whatever_came_before() -> None:
    """Cached contacts survive teleports; apply_layout clears them (Scene.clear_contacts)."""
    env = make("goalrl/Rearrange-v0")
    u: TabletopGoalEnv = env.unwrapped
    env.reset(seed=0)
    layout = u.start_layout.copy()
    push = np.array([0.0, 0.0, -1.0, 1.0])  # down onto whatever lies below the gripper

    def simulate() -> np.ndarray:
        u.apply_layout(layout)
        for _ in range(15):
            u.actuate(push)
        return np.concatenate([u.scene.position(s.name) for s in u.task.objects])

    first = simulate()
    for a in np.random.default_rng(2).uniform(-1, 1, (25, 4)):
        u.actuate(a)  # objects now rest in other places with other contacts
    np.testing.assert_array_equal(first, simulate())
