"""A resumed agent takes its learning rates and weight decay from its own config, not from the
checkpoint, while keeping the checkpoint's optimiser moments (``resume=true agent.lr=...``)."""

from __future__ import annotations

import copy

import pytest
import torch
from test_am import A as AM_ACTION_DIM
from test_am import make_batch as am_batch
from test_am import tiny_cfg as am_cfg
from test_gcbc import A as GCBC_ACTION_DIM
from test_gcbc import make_batch as gcbc_batch
from test_gcbc import tiny_cfg as gcbc_cfg
from test_task_q import A as TASK_ACTION_DIM
from test_task_q import cfg as task_cfg
from test_task_q import task_batch

from goalrl.agents.am import AMAgent
from goalrl.agents.gcbc import GCBCAgent
from goalrl.agents.task_q import TaskQAgent

SIZE = 16


def make(kind: str, **overrides):
    if kind == "am":
        return AMAgent(am_cfg(**overrides), (SIZE, SIZE, 3), AM_ACTION_DIM, seed=0), am_batch
    if kind == "gcbc":
        return GCBCAgent(
            gcbc_cfg(**overrides), (SIZE, SIZE, 3), GCBC_ACTION_DIM, seed=0
        ), gcbc_batch
    return TaskQAgent(task_cfg(**overrides), (SIZE, SIZE, 3), TASK_ACTION_DIM, seed=0), task_batch


def moments(agent) -> list[torch.Tensor]:
    return [s["exp_avg"] for s in agent.optimizer.state_dict()["state"].values()]


@pytest.mark.parametrize("kind", ["am", "gcbc", "task_q"])
def test_resume_takes_lr_and_weight_decay_from_the_config(kind: str) -> None:
    trained, batch = make(kind, lr=3e-4)
    trained.update(batch(seed=0))
    state = copy.deepcopy(trained.state_dict())

    resumed, _ = make(kind, lr=1e-5, weight_decay=0.01)
    configured = [(g["lr"], g["weight_decay"]) for g in resumed.optimizer.param_groups]
    resumed.load_state_dict(state)
    assert [(g["lr"], g["weight_decay"]) for g in resumed.optimizer.param_groups] == configured
    assert resumed.optimizer.param_groups[0]["lr"] == 1e-5
    for saved, loaded in zip(moments(trained), moments(resumed), strict=True):
        assert torch.equal(saved, loaded)  # the moments still come from the checkpoint


@pytest.mark.parametrize("kind", ["am", "gcbc"])
def test_a_resumed_update_moves_the_weights_by_the_new_rate(kind: str) -> None:
    """Same checkpoint, same batch: the step at lr 1e-5 is far smaller than at 3e-4."""
    trained, batch = make(kind)
    trained.update(batch(seed=0))
    state = copy.deepcopy(trained.state_dict())
    net = (lambda a: a.q) if kind == "am" else (lambda a: a.policy)

    def step_size(lr: float) -> float:
        agent, _ = make(kind, lr=lr)
        agent.load_state_dict(state)
        before = torch.cat([p.detach().flatten().clone() for p in net(agent).parameters()])
        agent.update(batch(seed=1))
        after = torch.cat([p.detach().flatten() for p in net(agent).parameters()])
        return float((after - before).abs().max())

    assert step_size(1e-5) < 0.1 * step_size(3e-4)
