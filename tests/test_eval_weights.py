"""bench/eval_weights.py: the weights it evaluates are the ones the agent then acts with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bench_modules import load_bench

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig
from goalrl.agents.task_q import TaskQAgent, TaskQConfig

probe = load_bench("eval_weights")
TINY = dict(conv_channels=[8, 8], embed_dim=16, fusion_dim=32, head_hidden_dim=16)
SHAPE = (16, 16, 3)


def nudge(net: torch.nn.Module, by: float) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.add_(by)


def test_target_weights_replace_the_online_and_acting_weights() -> None:
    am = AMAgent(AMConfig(**TINY), SHAPE, 4, seed=0)
    task = TaskQAgent(TaskQConfig(task_input="embedding", am=AMConfig(**TINY)), SHAPE, 4)
    for agent in (am, task):
        nudge(agent.q, 1.0)  # online and target weights now differ
        if agent is task:
            task.z.data += 1.0
        probe.use_target_weights(agent)
        for name, p in agent.q.state_dict().items():
            torch.testing.assert_close(p, agent.q_target.state_dict()[name], msg=name)
    torch.testing.assert_close(task.z.detach(), task.z_target)
    assert am.acting_q is am.q  # the agent's own weight average no longer acts


def test_average_state_is_the_uniform_mean() -> None:
    a, b, c = (torch.nn.Linear(3, 2) for _ in range(3))
    avg = probe.average_state([a.state_dict(), b.state_dict(), c.state_dict()])
    torch.testing.assert_close(avg["weight"], (a.weight + b.weight + c.weight).detach() / 3)
    with pytest.raises(ValueError):
        probe.average_state([])


@pytest.mark.parametrize("kind", ["am", "gcbc"])
def test_act_with_drops_the_agents_own_average(kind: str) -> None:
    def make(ema_tau: float):
        if kind == "am":
            return AMAgent(AMConfig(**TINY, ema_tau=ema_tau), SHAPE, 4, seed=0)
        gcbc_tiny = {k: v for k, v in TINY.items() if k != "head_hidden_dim"}
        return GCBCAgent(GCBCConfig(**gcbc_tiny, ema_tau=ema_tau), SHAPE, 4, seed=0)

    agent, plain = make(0.0005), make(0.0)  # plain keeps no average: acts with what it holds
    weights = probe.online_net(plain)
    nudge(weights, 0.05)
    probe.act_with(agent, weights.state_dict())
    obs = np.random.default_rng(0).integers(0, 256, (3, *SHAPE), dtype=np.uint8)
    acts = np.zeros((3, 4), np.float32)
    if kind == "am":
        out, ref = agent.q_values(obs, obs, acts), plain.q_values(obs, obs, acts)
    else:
        out, ref = agent.act(obs, obs), plain.act(obs, obs)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_cem_spec_is_checked() -> None:
    am = AMAgent(AMConfig(**TINY), SHAPE, 4, seed=0)
    probe.set_act_cem(am, "6,512,32")
    cfg = am.cfg
    assert (cfg.act_cem_iterations, cfg.act_cem_samples, cfg.act_cem_elites) == (6, 512, 32)
    with pytest.raises(SystemExit, match="--cem"):
        probe.set_act_cem(am, "6,512")
