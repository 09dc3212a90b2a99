"""The acting weight average (``agent.ema_tau``) of AM and GCBC: it follows ``ema_rate``, is what
``act`` uses, never changes an update, and round-trips through state dicts (old ones included)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_am import make_batch
from test_am import tiny_cfg as am_cfg
from test_gcbc import tiny_cfg as gcbc_cfg

from goalrl.agents.am import AMAgent
from goalrl.agents.gcbc import GCBCAgent
from goalrl.agents.losses import ema_rate
from goalrl.agents.task_q import TaskQAgent, TaskQConfig
from goalrl.data import keys as K

SIZE, A = 16, 3
KINDS = ["am", "gcbc"]


def make_agent(kind: str, ema_tau: float, seed: int = 0):
    if kind == "am":
        return AMAgent(am_cfg(ema_tau=ema_tau), (SIZE, SIZE, 3), A, seed=seed)
    return GCBCAgent(gcbc_cfg(ema_tau=ema_tau), (SIZE, SIZE, 3), A, seed=seed)


def online(agent) -> torch.nn.Module:
    return agent.q if isinstance(agent, AMAgent) else agent.policy


def average(agent) -> torch.nn.Module | None:
    return agent.q_ema if isinstance(agent, AMAgent) else agent.policy_ema


def acting_output(agent, batch) -> np.ndarray:
    """Deterministic read-out of the acting weights: Q of the data actions (AM), the mean (GCBC)."""
    obs, goal = batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE]
    if isinstance(agent, AMAgent):
        return agent.q_values(obs, goal, batch[K.ACTION], reduce="none")
    return agent.act(obs, goal)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_the_average_changes_no_update(kind: str) -> None:
    plain, averaged = make_agent(kind, 0.0), make_agent(kind, 0.1)
    assert average(plain) is None
    for s in range(3):
        assert plain.update(make_batch(seed=s)) == averaged.update(make_batch(seed=s))
    assert_same_weights(online(plain), online(averaged))


@pytest.mark.parametrize("kind", KINDS)
def test_the_average_follows_ema_rate(kind: str) -> None:
    tau = 0.2
    agent = make_agent(kind, tau)
    expected = {k: v.clone() for k, v in online(agent).state_dict().items()}
    for s in range(4):
        agent.update(make_batch(seed=s))
        rate = ema_rate(agent.step, tau)  # 10/11, 10/12, ... : the warm-up, above tau
        for k, v in online(agent).state_dict().items():
            expected[k] = (1 - rate) * expected[k] + rate * v
    assert rate > tau
    got = average(agent).state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v, msg=k)
    # and it is a real average: neither the first nor the latest weights
    first = make_agent(kind, tau)
    for ref in (online(agent), online(first)):
        assert any(not torch.allclose(got[k], v) for k, v in ref.state_dict().items())
    assert all(not p.requires_grad for p in average(agent).parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_acting_uses_the_average(kind: str) -> None:
    agent = make_agent(kind, 0.2)
    for s in range(3):
        agent.update(make_batch(seed=s))
    probe = make_batch(b=5, seed=50)
    # An agent without an average whose online weights are this agent's average acts the same...
    same = make_agent(kind, 0.0)
    online(same).load_state_dict(average(agent).state_dict())
    np.testing.assert_allclose(acting_output(agent, probe), acting_output(same, probe), rtol=1e-6)
    # ...and differently from the latest weights.
    latest = make_agent(kind, 0.0)
    online(latest).load_state_dict(online(agent).state_dict())
    assert not np.allclose(acting_output(agent, probe), acting_output(latest, probe))


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_keeps_the_average_and_old_checkpoints_act_as_before(kind: str) -> None:
    agent = make_agent(kind, 0.2)
    for s in range(3):
        agent.update(make_batch(seed=s))
    state = copy.deepcopy(agent.state_dict())
    restored = make_agent(kind, 0.2, seed=9)
    restored.load_state_dict(state)
    assert_same_weights(average(restored), average(agent))

    key = "q_ema" if kind == "am" else "policy_ema"
    del state[key]  # a checkpoint written before the average existed
    old = make_agent(kind, 0.2, seed=9)
    old.load_state_dict(state)
    assert_same_weights(average(old), online(agent))


@pytest.mark.parametrize("kind", KINDS)
def test_bad_ema_tau_is_refused_by_name(kind: str) -> None:
    with pytest.raises(ValueError, match="agent.ema_tau"):
        make_agent(kind, 1.5)


def test_a_task_agent_keeps_no_goal_agent_average() -> None:
    """The fine-tuned network is stepped by the task agent, so a goal image sent to it must be
    reached with those weights, not with a copy that never moves."""
    cfg = TaskQConfig(task_input="embedding", am=am_cfg(ema_tau=0.2))
    task = TaskQAgent(cfg, (SIZE, SIZE, 3), A)
    assert task.cfg.am.ema_tau == 0.2
    assert task.goal_agent.q_ema is None and task.goal_agent.acting_q is task.q
