"""Action noise processes (correlated for noisy data) and the low-dim state observation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from goalrl.data.recording import record_rollout
from goalrl.envs.noise import GaussianNoise, OrnsteinUhlenbeckNoise, make_noise
from goalrl.envs.play import PlayPolicy
from goalrl.envs.state import GOAL_STATE_KEY, STATE_KEY, state_vector


def lag1(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of a (T, D) series, pooled over dimensions."""
    x = x - x.mean(axis=0)
    return float((x[1:] * x[:-1]).sum() / (x * x).sum())


@pytest.mark.parametrize("theta", [0.1, 0.3, 1.0])
def test_ou_noise_has_the_asked_std_and_autocorrelation(theta: float) -> None:
    noise = OrnsteinUhlenbeckNoise(0.5, theta, np.random.default_rng(0))
    x = np.stack([noise((3,)) for _ in range(20000)])  # (T, 3)
    assert x.std() == pytest.approx(0.5, rel=0.05)
    assert lag1(x) == pytest.approx(1.0 - theta, abs=0.03)


def test_gaussian_noise_is_uncorrelated_and_reset_restarts_ou() -> None:
    gaussian = GaussianNoise(0.5, np.random.default_rng(0))
    x = np.stack([gaussian((3,)) for _ in range(5000)])
    assert abs(lag1(x)) < 0.05
    noise = OrnsteinUhlenbeckNoise(0.5, 0.01, np.random.default_rng(0))
    first = noise((2,))
    noise.reset()
    assert np.abs(noise((2,)) - first).max() > 1e-6  # a fresh stationary draw, not a step


def test_bad_noise_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="noise must be one of"):
        make_noise("pink", 0.1, 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise_theta must be in"):
        make_noise("ou", 0.1, 0.0, np.random.default_rng(0))


class RecordingPolicy(PlayPolicy):
    """PlayPolicy that keeps each (clean, sent) action pair."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def add_noise(self, action: np.ndarray) -> np.ndarray:
        sent = super().add_noise(action)
        self.pairs.append((action[:3].copy(), sent[:3].copy()))
        return sent


def added_noise(**kw) -> np.ndarray:
    """(T, 3) sent minus clean tcp actions over two Push episodes of play."""
    env = gym.make("goalrl/Push-v0", image_size=8)
    policy = RecordingPolicy(env.unwrapped, seed=0, **kw)
    for seed in range(2):
        policy.reset()
        record_rollout(env, policy, seed)
    env.close()
    return np.array([sent - np.clip(clean, -1, 1) for clean, sent in policy.pairs])


def test_noisy_play_sends_larger_and_correlated_noise_than_play() -> None:
    play = added_noise()  # today's play: Gaussian 0.15
    noisy = added_noise(action_noise=0.8, noise="ou", noise_theta=0.3)  # the noisy preset
    assert lag1(play) < 0.2 and lag1(noisy) > 0.5  # measured: 0.08 and 0.75
    assert np.abs(noisy).mean() > 2 * np.abs(play).mean()  # measured: 0.58 against 0.10


def test_state_vector_concatenates_proprio_and_the_scene() -> None:
    proprio, achieved = np.ones((4, 2, 5)), np.zeros((4, 2, 9))
    state = state_vector(proprio, achieved)
    assert state.shape == (4, 2, 14) and state.dtype == np.float32
    with pytest.raises(ValueError, match="proprio must end in 5"):
        state_vector(np.ones((4, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="leading"):
        state_vector(np.ones((4, 5)), np.zeros((3, 3)))


@pytest.mark.parametrize("scene", ["Reach", "Push", "Rearrange", "Grasp"])
def test_env_observations_carry_the_state_and_the_goal_state(scene: str) -> None:
    env = gym.make(f"goalrl/{scene}-v0", image_size=8)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    core = env.unwrapped
    np.testing.assert_array_equal(
        obs[STATE_KEY], state_vector(obs["observation"], core.task.scene_vector(
            core.current_layout())))
    goal_state = obs[GOAL_STATE_KEY]
    np.testing.assert_array_equal(goal_state[5:], core.task.scene_vector(core.goal_layout))
    if core.task.goal_shows_scene:  # the goal vectors hold the same numbers
        np.testing.assert_array_equal(obs[STATE_KEY][5:], obs["achieved_goal"])
        np.testing.assert_array_equal(goal_state[5:], obs["desired_goal"])
    np.testing.assert_allclose(goal_state[:3], core.goal_layout.tcp, atol=1e-6)
    assert env.observation_space.contains(obs)
    env.close()


@pytest.mark.parametrize(("scene", "width"), [("Grasp", 5 + 6), ("Rearrange", 5 + 9 + 2)])
def test_the_state_shows_where_every_object_and_the_tray_are(scene: str, width: int) -> None:
    # Grasp's goal vector holds only heights and no goal holds the tray: a state read from
    # them would not show where to reach (goalrl.envs.state)
    env = gym.make(f"goalrl/{scene}-v0", image_size=8)
    obs, _ = env.reset(seed=3)
    core = env.unwrapped
    state = obs[STATE_KEY]
    assert state.shape == (width,) and not core.task.goal_shows_scene
    for i, spec in enumerate(core.task.objects):
        np.testing.assert_allclose(state[5 + 3 * i: 8 + 3 * i], core.scene.position(spec.name),
                                   atol=1e-6)
    if core.task.container:
        np.testing.assert_allclose(state[-2:], core.scene.position("tray")[:2], atol=1e-6)
        np.testing.assert_allclose(obs[GOAL_STATE_KEY][-2:], state[-2:], atol=1e-6)
    env.close()
