"""GCIQL: the critic's and value's targets, DDPG+BC's gradient reaching only the actor, the
actor_loss switch, and learning the point task well above chance with either extraction."""

from __future__ import annotations

import pytest
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

from goalrl.agents.config import AgentConfigError, EncoderConfig
from goalrl.agents.gciql import GCIQLAgent, GCIQLConfig
from goalrl.agents.value_losses import expectile_loss


def state_agent(**overrides) -> GCIQLAgent:
    cfg = GCIQLConfig(encoder=tiny_encoder("state"), head_hidden_dim=16, **overrides)
    return GCIQLAgent(cfg, (SIZE, SIZE, 3), A, proprio_dim=P)


def inputs(agent: GCIQLAgent, seed: int = 0) -> tuple[dict, dict]:
    batch = frames_batch("state", b=8, seed=seed)
    return agent.frames(batch, agent.frame_names), agent.batch_inputs(batch)


def test_value_and_critic_targets() -> None:
    agent = state_agent(gamma=0.8, expectile=0.7)
    f, x = inputs(agent)
    with torch.no_grad():
        q_t = agent.target_critic(f["obs"], f["goal"], x["action"]).min(dim=-1).values
        v = agent.value(f["obs"], f["goal"])[:, 0]
        value_loss, _ = agent.value_loss(f, x)
        torch.testing.assert_close(value_loss, expectile_loss(q_t - v, 0.7).mean())
        next_v = agent.value(f["next_obs"], f["goal"])[:, 0]
        y = x["reward"] + 0.8 * x["mask"] * next_v  # 0 at the goal, -1 + 0.8 V(s', g) elsewhere
        q = agent.critic(f["obs"], f["goal"], x["action"])
        critic_loss, _ = agent.critic_loss(f, x)
        torch.testing.assert_close(critic_loss, (q - y[:, None]).square().sum(-1).mean())


def test_ddpg_bc_gradient_reaches_only_the_actor() -> None:
    agent = state_agent()
    f, x = inputs(agent)
    loss, info = agent.actor_loss(f, x)
    assert {"actor/q", "actor/nll"} <= set(info)
    loss.backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.grad is None for p in agent.value.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.policy.parameters())


def test_awr_extraction_and_a_bad_actor_loss() -> None:
    agent = state_agent(actor_loss="awr", alpha=3.0)
    f, x = inputs(agent)
    _, info = agent.actor_loss(f, x)
    assert {"actor/adv", "actor/weight"} <= set(info)
    with pytest.raises(AgentConfigError, match="agent.actor_loss='td3'"):
        GCIQLConfig(actor_loss="td3")


@pytest.mark.parametrize(("actor_loss", "alpha", "steps"), [
    ("ddpgbc", 0.3, 900),
    pytest.param("awr", 3.0, 700, marks=pytest.mark.slow),
])
def test_gciql_learns_the_point_task_from_random_walks(
    one_thread, tmp_path, actor_loss: str, alpha: float, steps: int
) -> None:
    data = write_point_dataset(tmp_path / "points")
    encoder = EncoderConfig(kind="state", state_dim=2, state_hidden=[64, 64], embed_dim=32,
                            fusion_dim=64)
    cfg = GCIQLConfig(encoder=encoder, gamma=0.95, tau=0.05, head_hidden_dim=64, lr=1e-3,
                      ema_tau=0.0, actor_loss=actor_loss, alpha=alpha)
    agent = train_on_points(GCIQLAgent(cfg, (4, 4, 3), 2, 2, seed=0), data, steps=steps)
    chance = success_rate(random_policy())
    rate = success_rate(agent.act)
    assert rate >= 0.6 and rate >= chance + 0.4, (rate, chance)
