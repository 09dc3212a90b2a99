"""Learning tests that can fail: a dot on a 7x7 grid in 16x16 images, random-walk play data.

Greedy actions should reduce the L1 distance to the goal from well over 80% of random
(state, goal) pairs after a few hundred updates; a random action does so from about 43%.
(Over seeds 0-7 both agents reach 99-100% with these budgets. Without negatives, AM stays at
chance on this data: every logged action is a positive for the goals it led to.)
Torch runs on one thread here: on a shared 2-core machine two OpenMP threads spin against
other processes and are slower than one.
"""

from __future__ import annotations

from collections.abc import Iterator

import agent_dots as dots
import numpy as np
import pytest
import torch

from goalrl.agents import AMAgent, AMConfig, EncoderConfig, GCBCAgent, GCBCConfig
from goalrl.data import keys as K

EPISODES = 1000
ENCODER = dict(
    encoder=EncoderConfig(conv_channels=[16, 32], embed_dim=64, fusion_dim=128), pad=1, lr=1e-3
)


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train_and_score(agent, steps: int, p_chain: float, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    states, actions = dots.collect(EPISODES, 16, rng)
    for _ in range(steps):
        agent.update(dots.sample_batch(states, actions, 128, rng, p_chain=p_chain))
    s, g = dots.eval_pairs(np.random.default_rng(seed + 1000), 400)
    rate = dots.improvement_rate(s, g, agent.act(dots.render(s), dots.render(g)))
    chance = dots.improvement_rate(s, g, rng.uniform(-1, 1, s.shape))
    return rate, chance


def test_am_learns_to_move_toward_the_goal(one_thread: None) -> None:
    cfg = AMConfig(**ENCODER, head_hidden_dim=64, tau=0.05)
    agent = AMAgent(cfg, (dots.SIZE, dots.SIZE, 3), 2, seed=0)
    rate, chance = _train_and_score(agent, steps=500, p_chain=0.2, seed=0)
    assert chance < 0.55
    assert rate > 0.85, f"AM improves the distance from {rate:.0%} of states (chance {chance:.0%})"


def test_gcbc_learns_to_move_toward_the_goal(one_thread: None) -> None:
    agent = GCBCAgent(GCBCConfig(**ENCODER), (dots.SIZE, dots.SIZE, 3), 2, seed=0)
    rate, chance = _train_and_score(agent, steps=700, p_chain=0.0, seed=0)
    assert chance < 0.55
    assert rate > 0.85, (
        f"GCBC improves the distance from {rate:.0%} of states (chance {chance:.0%})"
    )


def _with_binary_gripper(batch: dict, rng: np.random.Generator) -> dict:
    """Append a gripper dimension that is exactly +-1 (as in scripted play) and moves nothing."""
    action = batch[K.ACTION]
    grip = rng.choice([-1.0, 1.0], size=(len(action), 1)).astype(np.float32)
    return {**batch, K.ACTION: np.concatenate([action, grip], axis=1)}


@pytest.mark.parametrize("neg_source", ["batch", "swap", "uniform"])
def test_am_negatives_with_a_binary_gripper(one_thread: None, neg_source: str) -> None:
    """Uniform negatives almost never have a gripper of exactly +-1, so a Q-function can reject
    them all by that value alone and learn nothing about motion; negatives drawn from the
    batch's data actions close that shortcut (goalrl.agents.losses.negative_candidates).
    Seeds 0 and 1: batch 99.5-100% of states improved, uniform 46-48% (chance about 43%)."""
    cfg = AMConfig(**ENCODER, head_hidden_dim=64, tau=0.05, neg_source=neg_source)
    agent = AMAgent(cfg, (dots.SIZE, dots.SIZE, 3), 3, seed=0)
    rng = np.random.default_rng(0)
    states, actions = dots.collect(EPISODES, 16, rng)
    for _ in range(500):
        batch = dots.sample_batch(states, actions, 128, rng, p_chain=0.2)
        agent.update(_with_binary_gripper(batch, rng))
    s, g = dots.eval_pairs(np.random.default_rng(1000), 400)
    rate = dots.improvement_rate(s, g, agent.act(dots.render(s), dots.render(g))[:, :2])
    if neg_source in ("batch", "swap"):
        assert rate > 0.85, f"{neg_source} negatives: greedy actions improve {rate:.0%} of states"
    else:
        assert rate < 0.75, f"uniform negatives unexpectedly learned motion ({rate:.0%})"
