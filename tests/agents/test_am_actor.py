"""AMConfig.actor: a DDPG+BC actor on AM's Q that acts with act_rule=actor."""

from __future__ import annotations

import copy
import math

import agent_dots as dots
import numpy as np
import pytest
import torch
from test_am import SIZE, A, make_batch, tiny_cfg

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.am_actor import EmbeddingActor, actor_loss
from goalrl.checkpoint import load_checkpoint, save_checkpoint
from goalrl.data import keys as K


def actor_agent(seed: int = 3, **overrides) -> AMAgent:
    return AMAgent(tiny_cfg(actor=True, **overrides), (SIZE, SIZE, 3), A, seed=seed)


def test_the_actor_loss_reaches_only_the_actor() -> None:
    agent = actor_agent(augment=False)
    batch = make_batch(8)
    obs, goal = (torch.as_tensor(batch[k]) for k in (K.OBS_IMAGE, K.GOAL_IMAGE))
    action = torch.as_tensor(batch[K.ACTION])
    chained = torch.as_tensor(batch[K.CHAINED])
    loss, info = agent.actor.loss(agent.q, obs, goal, None, action, chained)
    loss.backward()
    assert all(p.grad is None for p in agent.q.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.params)
    assert {"actor/loss", "actor/q_pi", "actor/bc_mse", "actor/abs_action"} <= set(info)


def test_the_critic_trains_exactly_as_without_the_actor() -> None:
    """Q's weights, its optimiser state and every critic statistic are bit-identical with the
    actor on: the actor's loss adds no gradient to Q and draws nothing from the agent's RNG."""
    plain = AMAgent(tiny_cfg(max_grad_norm=0.5), (SIZE, SIZE, 3), A, seed=3)
    with_actor = actor_agent(max_grad_norm=0.5)
    for s in range(3):
        a, b = plain.update(make_batch(seed=s)), with_actor.update(make_batch(seed=s))
        assert {k: v for k, v in b.items() if not k.startswith("actor/")} == dict(a)
    for name, p in plain.q.state_dict().items():
        assert torch.equal(p, with_actor.q.state_dict()[name]), name
    assert torch.equal(plain.get_rng_state(), with_actor.get_rng_state())


def test_act_rule_actor_acts_with_the_actor_and_scores_its_action() -> None:
    agent = actor_agent(act_rule="actor")
    for net in (agent.actor.net, agent.actor.ema):
        with torch.no_grad():
            net.net[-1].weight.zero_()
            net.net[-1].bias.fill_(math.atanh(0.5))  # every action (0.5, 0.5, 0.5)
    batch = make_batch(4)
    action, q = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], return_q=True)
    np.testing.assert_allclose(action, 0.5, atol=1e-6)
    expected = agent.q_values(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], action)
    np.testing.assert_allclose(q, expected, rtol=1e-5)
    agent.set_act_rule("cem")
    assert not np.allclose(agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE]), 0.5)


def test_act_rule_actor_needs_the_actor() -> None:
    with pytest.raises(ValueError, match="agent.act_rule=actor needs agent.actor=true"):
        AMAgent(tiny_cfg(act_rule="actor"), (SIZE, SIZE, 3), A)
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A)
    with pytest.raises(ValueError, match="needs agent.actor=true"):
        agent.set_act_rule("actor")
    with pytest.raises(ValueError, match="actor_alpha"):
        actor_agent(actor_alpha=-1.0)


class _ToyHead(torch.nn.Module):
    """Q logits highest at the action ``best`` whatever e: -||a - best||^2 * 4, two heads."""

    def __init__(self, best: torch.Tensor) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(4.0))
        self.best = best

    def forward(self, e: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        logit = -self.scale * ((actions - self.best) ** 2).sum(-1)  # (B, N)
        return torch.stack([logit, logit + 0.1], dim=-1)  # (B, N, 2)


@pytest.mark.parametrize(("alpha", "toward"), [(0.0, "best"), (100.0, "data")])
def test_ddpg_bc_moves_toward_higher_q_or_stays_near_the_data(alpha: float, toward: str) -> None:
    torch.manual_seed(0)
    best = torch.tensor([0.6, -0.4])
    data = torch.tensor([[-0.5, 0.5]]).expand(32, 2)  # (B, A)
    head, actor = _ToyHead(best), EmbeddingActor(8, 2, 32)
    e = torch.randn(32, 8)  # (B, F)
    opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
    start_q = None
    for _ in range(300):
        loss, info = actor_loss(actor, head, e, data, torch.ones(32, dtype=torch.bool), alpha)
        start_q = info["actor/q_pi"] if start_q is None else start_q
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert head.scale.grad is None  # the toy Q is never trained
    final = actor(e).detach()
    target = best if toward == "best" else data[0]
    # the mean over rows: a row whose ReLUs all died at initialisation cannot move
    assert (final - target).abs().mean() < 0.1, final[:3]
    if toward == "best":
        assert info["actor/q_pi"] > start_q


def test_bc_counts_only_rows_with_their_own_episodes_goal() -> None:
    actor = EmbeddingActor(4, 2, 8)
    head = _ToyHead(torch.zeros(2))
    e = torch.randn(4, 4)
    data = torch.tensor([[0.9, 0.9], [0.9, 0.9], [-0.9, -0.9], [-0.9, -0.9]])
    mask = torch.tensor([True, True, False, False])
    _, info = actor_loss(actor, head, e, data, mask, 1.0)
    pi = actor(e).detach()
    expected = ((pi[:2] - data[:2]) ** 2).mean()
    assert torch.isclose(info["actor/bc_mse"], expected)


def test_checkpoint_round_trip_acts_the_same(tmp_path) -> None:
    agent = actor_agent(act_rule="actor")
    for s in range(2):
        agent.update(make_batch(seed=s))
    path = save_checkpoint(tmp_path, 2, {"agent": agent.state_dict()}, {"agent": "am"})
    state, _ = load_checkpoint(path)
    loaded = actor_agent(seed=11, act_rule="actor")
    loaded.load_state_dict(state["agent"])
    batch = make_batch(4, seed=7)
    np.testing.assert_array_equal(
        agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE]),
        loaded.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE]),
    )
    plain_state = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A).state_dict()
    with pytest.raises(KeyError, match="no actor weights"):
        actor_agent().load_state_dict(plain_state)


def test_resume_with_the_actor_continues_exactly() -> None:
    agent = actor_agent(seed=1)
    for s in range(2):
        agent.update(make_batch(seed=s))
    state = copy.deepcopy(agent.state_dict())
    infos = [dict(agent.update(make_batch(seed=10 + s))) for s in range(2)]
    resumed = actor_agent(seed=99)
    resumed.load_state_dict(state)
    assert [dict(resumed.update(make_batch(seed=10 + s))) for s in range(2)] == infos
    for p, q in zip(agent.actor.params, resumed.actor.params, strict=True):
        assert torch.equal(p, q)


def test_old_configs_load_without_the_actor() -> None:
    values = {k: v for k, v in AMConfig().__dict__.items() if not k.startswith("actor")}
    cfg = AMConfig.from_dict(values)
    assert cfg.actor is False and cfg.act_rule == "cem"


@pytest.mark.slow
def test_the_actor_learns_to_move_toward_the_goal() -> None:
    """The toy task of test_learning: the actor read from AM's Q improves the distance from well
    above chance (about 43%) of states. Seed 0: 100% after 500 updates (CEM on the same Q: 100%)."""
    from test_learning import ENCODER

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = AMConfig(**ENCODER, head_hidden_dim=64, tau=0.05, actor=True, act_rule="actor")
        agent = AMAgent(cfg, (dots.SIZE, dots.SIZE, 3), 2, seed=0)
        rng = np.random.default_rng(0)
        states, actions = dots.collect(1000, 16, rng)
        for _ in range(500):
            agent.update(dots.sample_batch(states, actions, 128, rng, p_chain=0.2))
    finally:
        torch.set_num_threads(threads)
    s, g = dots.eval_pairs(np.random.default_rng(1000), 400)
    rate = dots.improvement_rate(s, g, agent.act(dots.render(s), dots.render(g)))
    assert rate > 0.75, f"the actor improves the distance from {rate:.0%} of states"


DDP_SCRIPT = """
import sys
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_am import SIZE, A, make_batch, tiny_cfg
from goalrl.agents.am import AMAgent

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
agent = AMAgent(tiny_cfg(actor=True), (SIZE, SIZE, 3), A, seed=0)
agent.seed(rank)  # per-rank augmentation and negatives, as pretraining does
agent.train_net = torch.nn.parallel.DistributedDataParallel(agent.train_net)
for step in range(3):
    agent.update(make_batch(seed=10 * step + rank))  # each rank its own batches
for name, p in list(agent.q.named_parameters()) + list(agent.actor.net.named_parameters()):
    copies = [torch.empty_like(p) for _ in range(2)]
    dist.all_gather(copies, p.detach())
    assert torch.equal(copies[0], copies[1]), name
print("same weights on both ranks", flush=True)
dist.destroy_process_group()
# torch 2.14's gloo sometimes aborts at interpreter exit of a short script ("terminate called
# without an active exception", about 1 exit in 10, also with a 10-line DDP script); the check
# above is done, so leave without the teardown (goalrl's torchrun CLI test passed 12 of 12)
import os
os._exit(0)
"""


def test_torchrun_ranks_keep_the_same_actor(tmp_path) -> None:
    """Under DDP (which wraps only the Q network) the actor's gradients are averaged over the
    ranks by am_actor.average_across_ranks, so both ranks keep identical actors."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "ddp_actor.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",  # a free port: other tests may run torchrun at the same time
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("same weights on both ranks") == 2


def test_am_on_state_observations_reaches_point_goals(tmp_path) -> None:
    """AM reads state vectors with encoder.kind=state (the sampler's OBS_STATE etc.); CEM on its
    Q and its actor both reach the point task's goals. Seed 0: 100% and 100% of 64 goals after
    400 updates of batch 256 (random actions: 11%)."""
    import point_task
    from test_crl import STATE_ENCODER

    from goalrl.agents.config import EncoderConfig
    from goalrl.data.sampler import GoalBatchSampler
    from goalrl.data.storage import EpisodeDataset

    data = EpisodeDataset(point_task.write_point_dataset(tmp_path / "points"))
    cfg = AMConfig(
        encoder=EncoderConfig(**STATE_ENCODER), head_hidden_dim=64, lr=1e-3, tau=0.05, actor=True
    )
    agent = AMAgent(cfg, data.image_shape, 2, seed=0)
    sampler = GoalBatchSampler(
        data, 256, goal_mode="geometric", gamma=cfg.gamma, p_chain=0.2, observation="state", seed=0
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(400):
            agent.update(sampler.sample())
    finally:
        torch.set_num_threads(threads)
    for rule in ("cem", "actor"):
        agent.set_act_rule(rule)
        rate = point_task.success_rate(agent.act)
        assert rate > 0.6, f"AM ({rule}) reached {rate:.0%} of point goals"
