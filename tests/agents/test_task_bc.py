"""TaskBCAgent: behaviour cloning of a task with a learned task embedding and no goal image."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from goalrl.agents import EncoderConfig, GCBCConfig
from goalrl.agents.gcbc import GCBCAgent
from goalrl.agents.task_bc import TaskBCAgent, TaskBCConfig
from goalrl.checkpoint import load_checkpoint, save_checkpoint
from goalrl.data import keys as K

SIZE, A, P = 16, 4, 5
GCBC = GCBCConfig(encoder=EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32,
                                        use_proprio=True), pad=2)


def cfg(**kw) -> TaskBCConfig:
    return TaskBCConfig(gcbc=GCBC, **kw)


def batch(b: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        K.OBS_IMAGE: rng.integers(0, 256, (b, SIZE, SIZE, 3), dtype=np.uint8),
        K.ACTION: rng.uniform(-0.8, 0.8, (b, A)).astype(np.float32),
        K.OBS_PROPRIO: rng.normal(size=(b, P)).astype(np.float32),
    }


def test_updates_fit_the_actions_and_move_the_task_embedding() -> None:
    agent = TaskBCAgent(cfg(), (SIZE, SIZE, 3), A, P, seed=0)
    b = batch()
    first = agent.update(b)["bc/mse"]
    z0 = agent.z.detach().clone()
    for _ in range(30):
        info = agent.update(b)
    assert info["bc/mse"] < first and agent.step == 31
    assert not torch.equal(agent.z.detach(), z0)


def test_act_never_reads_a_goal_image() -> None:
    agent = TaskBCAgent(cfg(), (SIZE, SIZE, 3), A, P, seed=0)
    obs = batch(3)[K.OBS_IMAGE]
    prop = np.zeros((3, P), np.float32)
    with_goal = agent.act(obs, np.full((SIZE, SIZE, 3), 9, np.uint8), prop)
    np.testing.assert_array_equal(with_goal, agent.act(obs, None, prop))
    single = agent.act(obs[0], None, prop[0], explore_std=5.0)
    assert single.shape == (A,) and np.all(np.abs(single) <= 1)


def test_a_gcbc_policy_with_the_success_embedding_acts_as_gcbc_toward_that_frame() -> None:
    """Loaded from GCBC with z = encode_goal(frame), the task policy is GCBC's pi(. | o, frame)."""
    gcbc = GCBCAgent(GCBC, (SIZE, SIZE, 3), A, P, seed=3)
    agent = TaskBCAgent(cfg(), (SIZE, SIZE, 3), A, P, seed=0)
    agent.load_pretrained(gcbc.state_dict())
    frame = batch(1, seed=4)[K.OBS_IMAGE]
    agent.init_task_embedding(frame)
    obs, prop = batch(3, seed=5)[K.OBS_IMAGE], np.zeros((3, P), np.float32)
    np.testing.assert_allclose(agent.act(obs, None, prop), gcbc.act(obs, frame[0], prop),
                               rtol=1e-5, atol=1e-6)


def test_state_and_config_round_trip(tmp_path) -> None:
    agent = TaskBCAgent(cfg(z_lr=0.01), (SIZE, SIZE, 3), A, P, seed=0)
    agent.update(batch())
    save_checkpoint(tmp_path, agent.step, {"agent": agent.state_dict()}, {"agent": "task_bc"})
    state, _ = load_checkpoint(tmp_path)
    other = TaskBCAgent(TaskBCConfig.from_dict(asdict(agent.cfg)), (SIZE, SIZE, 3), A, P, seed=1)
    other.load_state_dict(state["agent"])
    assert other.cfg == agent.cfg and other.step == 1
    obs, prop = batch(2, seed=7)[K.OBS_IMAGE], np.zeros((2, P), np.float32)
    np.testing.assert_array_equal(other.act(obs, None, prop), agent.act(obs, None, prop))
    assert dict(other.update(batch(seed=3))) == dict(agent.update(batch(seed=3)))


def test_a_state_policy_fits_state_batches_and_acts_on_one_state() -> None:
    """gcbc.encoder.kind=state: the update reads OBS_STATE (B, S), never an image; act takes
    the env's state (S,) -> (A,)."""
    state = GCBCConfig(encoder=EncoderConfig(kind="state", state_dim=8, embed_dim=16,
                                             fusion_dim=32, state_hidden=[32]))
    agent = TaskBCAgent(TaskBCConfig(gcbc=state), (SIZE, SIZE, 3), A, P, seed=0)
    b = {k: v for k, v in batch().items() if k != K.OBS_IMAGE}
    b[K.OBS_STATE] = np.random.default_rng(1).normal(size=(8, 8)).astype(np.float32)
    first = agent.update(b)["bc/mse"]
    for _ in range(30):
        info = agent.update(b)
    assert info["bc/mse"] < first
    assert agent.act(np.zeros(8, np.float32)).shape == (A,)
    assert agent.act(np.zeros((3, 8), np.float32)).shape == (3, A)
