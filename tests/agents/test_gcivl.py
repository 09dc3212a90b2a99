"""GCIVL: its value targets (0 at the goal, -1 plus the discounted next value elsewhere), its AWR
advantage (OGBench's V(s', g) - V(s, g) on the actor's goal), and learning the point task from
random walks well above chance."""

from __future__ import annotations

import numpy as np
import torch
from point_task import (
    SIZE,
    A,
    P,
    frames_batch,
    random_policy,
    success_rate,
    tiny_encoder,
    train_on_points,
    write_point_dataset,
)

from goalrl.agents.config import EncoderConfig
from goalrl.agents.gcivl import GCIVLAgent, GCIVLConfig
from goalrl.agents.value_losses import expectile_loss
from goalrl.data import keys as K


def state_agent(**overrides) -> GCIVLAgent:
    cfg = GCIVLConfig(encoder=tiny_encoder("state"), head_hidden_dim=16, **overrides)
    return GCIVLAgent(cfg, (SIZE, SIZE, 3), A, proprio_dim=P)


def test_value_target_is_zero_at_the_goal_and_bootstrapped_elsewhere() -> None:
    agent = state_agent(gamma=0.8, expectile=0.7)
    batch = frames_batch("state", b=8)
    f = agent.frames(batch, agent.frame_names)
    x = agent.batch_inputs(batch)
    at_goal = batch[K.AT_GOAL]
    assert at_goal[:2].all() and not at_goal[2:].any()
    np.testing.assert_array_equal(x["reward"].numpy(), np.where(at_goal, 0.0, -1.0))
    with torch.no_grad():
        next_v = agent.target_value(f["next_obs"], f["goal"])  # (B, 2)
        v = agent.value(f["obs"], f["goal"])
        target = torch.where(torch.as_tensor(at_goal)[:, None], 0.0, -1.0 + 0.8 * next_v)
        expected = 2 * expectile_loss((target - v).flatten(), 0.7).mean()
        loss, info = agent.value_loss(f, x)
    torch.testing.assert_close(loss, expected)
    assert set(info) == {"value/loss", "value/v_mean", "value/v_max", "value/v_min"}


def test_awr_advantage_is_the_value_change_toward_the_actor_goal() -> None:
    """A = V(s', g_actor) - V(s, g_actor), OGBench's form: no reward term, so a transition
    that reaches its goal is not pushed below the others by r = -1 elsewhere."""
    agent = state_agent(gamma=0.9)
    batch = frames_batch("state", b=8)
    batch[K.ACTOR_GOAL_STATE] = batch[K.NEXT_OBS_STATE].copy()  # unlike the value goals
    f, x = agent.frames(batch, agent.frame_names), agent.batch_inputs(batch)
    assert not torch.equal(f["actor_goal"], f["goal"])
    assert set(x) == {"action", "proprio", "next_proprio", "reward", "mask"}
    _, info = agent.actor_loss(f, x)
    with torch.no_grad():
        v = agent.value(f["obs"], f["actor_goal"], x["proprio"]).mean(dim=-1)  # (B,)
        v_next = agent.value(f["next_obs"], f["actor_goal"], x["next_proprio"]).mean(dim=-1)
    torch.testing.assert_close(info["actor/adv"], (v_next - v).mean())


def test_gcivl_learns_the_point_task_from_random_walks(one_thread, tmp_path) -> None:
    data = write_point_dataset(tmp_path / "points")
    encoder = EncoderConfig(kind="state", state_dim=2, state_hidden=[64, 64], embed_dim=32,
                            fusion_dim=64)
    cfg = GCIVLConfig(encoder=encoder, gamma=0.95, tau=0.05, head_hidden_dim=64, lr=1e-3,
                      ema_tau=0.0)
    agent = train_on_points(GCIVLAgent(cfg, (4, 4, 3), 2, 2, seed=0), data, steps=600)
    chance = success_rate(random_policy())
    rate = success_rate(agent.act)
    assert rate >= 0.6 and rate >= chance + 0.4, (rate, chance)
