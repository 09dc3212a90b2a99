"""TaskQAgent: the task embedding stands in for the goal, Cal-QL in the update, state round trip."""

from __future__ import annotations

import copy
from dataclasses import asdict

import numpy as np
import pytest
import torch
from test_am import flat_config

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.task_q import TaskQAgent, TaskQConfig
from goalrl.checkpoint import load_checkpoint, save_checkpoint
from goalrl.data import keys as K
from goalrl.data.task import MC_RETURN

SIZE, A, P = 16, 4, 5
TINY_AM = dict(
    conv_channels=[8, 8], embed_dim=16, fusion_dim=32, head_hidden_dim=16, cem_samples=16,
    cem_elites=4, act_cem_samples=32, act_cem_elites=4, num_negatives=4, pad=2,
)


def cfg(**overrides) -> TaskQConfig:
    """Tiny config; the learned task embedding and acting with the online weights (so scores
    show each update at once) unless ``task_input`` / ``act_with_target`` say otherwise."""
    overrides.setdefault("task_input", "embedding")
    overrides.setdefault("act_with_target", False)
    am = flat_config(AMConfig, **{**TINY_AM, **overrides.pop("am", {})})
    return TaskQConfig(num_negatives=4, am=am, **overrides)


def images(b: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, SIZE, SIZE, 3), dtype=np.uint8)


def task_batch(b: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        K.OBS_IMAGE: images(b, seed),
        K.NEXT_OBS_IMAGE: images(b, seed + 1),
        K.ACTION: rng.uniform(-1, 1, (b, A)).astype(np.float32),
        K.REWARD: (np.arange(b) % 3 == 0).astype(np.float32),
        MC_RETURN: np.linspace(0, 1, b).astype(np.float32),
        K.OBS_PROPRIO: rng.normal(size=(b, P)).astype(np.float32),
        K.NEXT_OBS_PROPRIO: rng.normal(size=(b, P)).astype(np.float32),
    }


def goal_batch(b: int = 8, seed: int = 5) -> dict[str, np.ndarray]:
    batch = task_batch(b, seed)
    batch[K.GOAL_IMAGE] = images(b, seed + 2)
    batch[K.REACHED] = np.arange(b) % 4 == 0
    batch[K.CHAINED] = np.arange(b) % 4 == 1
    batch[K.OFFSET] = np.select([np.arange(b) % 4 == 0, np.arange(b) % 4 == 1], [1, -1], 4)
    return batch


def test_calql_floors_the_policy_candidates_in_the_update() -> None:
    """With a return of 0.99 and a near-zero temperature the pushed-down candidate is a policy
    action at its floor (goalrl.agents.conservative has the rule on hand-made tensors);
    without calibration the same candidates are pushed down at their own, lower, values."""
    batch = task_batch()
    batch[MC_RETURN][:] = 0.99
    info = {}
    for calibration in ("none", "calql"):
        agent = TaskQAgent(cfg(calibration=calibration, neg_temperature=1e-4),
                           (SIZE, SIZE, 3), A, seed=0)
        info[calibration] = agent.update(batch)
    assert info["calql"]["task/frac_floored"] == 1.0
    assert info["calql"]["task/q_neg"] == pytest.approx(0.99, abs=1e-4)
    assert info["none"]["task/q_neg"] < 0.9 and "task/frac_floored" not in info["none"]
    # the policy's values before the floor are the same network's: the floor changed the loss
    assert info["none"]["task/q_policy"] == pytest.approx(info["calql"]["task/q_policy"])


def test_policy_candidates_are_the_online_cem_action_at_o_and_the_targets_at_o_next() -> None:
    agent = TaskQAgent(cfg(), (SIZE, SIZE, 3), A, seed=0)
    action = torch.zeros(3, A)
    e = torch.randn(3, agent.cfg.am.encoder.fusion_dim)
    next_best = torch.full((3, A), 0.5)
    state = agent.get_rng_state()
    cands, is_policy = agent._candidates(action, e, next_best)
    assert cands.shape == (3, 4 + 2, A) and is_policy.tolist() == [False] * 4 + [True] * 2
    torch.testing.assert_close(cands[:, -1], next_best)
    agent.set_rng_state(state)
    from goalrl.agents.losses import negative_candidates

    negative_candidates(action, 4, "mixed", agent.generator)  # the same draws, in order
    here, _ = agent.goal_agent.maximize(agent.q, e)
    torch.testing.assert_close(cands[:, -2], here)
    off = TaskQAgent(cfg(policy_candidates=False), (SIZE, SIZE, 3), A, seed=0)
    cands, is_policy = off._candidates(action, e, next_best)
    assert cands.shape == (3, 4, A) and not is_policy.any()


def test_calibration_settings_are_checked_by_name() -> None:
    with pytest.raises(ValueError, match="agent.calibration must be one of.*'calibrate'"):
        TaskQAgent(cfg(calibration="calibrate"), (SIZE, SIZE, 3), A)
    with pytest.raises(ValueError, match="agent.policy_candidates=true"):
        TaskQAgent(cfg(calibration="calql", policy_candidates=False), (SIZE, SIZE, 3), A)


def test_checkpoints_of_the_removed_calibrate_rule_are_refused_by_name() -> None:
    """calibrate=true floored every candidate (not Cal-QL's rule); such a checkpoint cannot be
    rebuilt, one with calibrate=false (the rule off) reads as today's config."""
    old = {**asdict(cfg()), "calibrate": True}
    old.pop("calibration")
    with pytest.raises(ValueError, match=r"agent.calibrate=True was removed"):
        TaskQConfig.from_dict(old)
    assert TaskQConfig.from_dict({**old, "calibrate": False}) == cfg()


def test_acting_with_target_weights_scores_with_the_polyak_copy() -> None:
    """After an update the online and target weights differ; act_with_target scores (and so
    acts) with the target copy, exactly as an agent whose online weights are that copy."""
    agent = TaskQAgent(cfg(act_with_target=True), (SIZE, SIZE, 3), A, seed=0)
    agent.update(task_batch())
    plain = TaskQAgent(cfg(), (SIZE, SIZE, 3), A, seed=0)
    plain.load_state_dict(agent.state_dict())
    obs = images(3, 9)
    acts = np.random.default_rng(1).uniform(-1, 1, (3, 5, A)).astype(np.float32)
    online = plain.q_values(obs, None, acts)
    plain.q.load_state_dict(agent.q_target.state_dict())
    with torch.no_grad():
        plain.z.copy_(agent.z_target)
    np.testing.assert_allclose(agent.q_values(obs, None, acts), plain.q_values(obs, None, acts))
    assert not np.allclose(agent.q_values(obs, None, acts), online)


def test_config_round_trips_through_checkpoint_metadata() -> None:
    c = cfg(aux_weight=0.0, calibration="calql", am=dict(use_proprio=True))
    assert TaskQConfig.from_dict(asdict(c)) == c


def test_task_q_equals_the_goal_q_with_that_goal_embedding() -> None:
    """Swapping z for encode_goal(g) reproduces the pretrained Q(o, a, g) exactly."""
    pre = AMAgent(flat_config(AMConfig, **TINY_AM), (SIZE, SIZE, 3), A, seed=3)
    agent = TaskQAgent(cfg(), (SIZE, SIZE, 3), A, seed=0)
    agent.load_pretrained({"q": pre.q.state_dict()})
    obs, goal = images(4, 0), images(1, 1)
    acts = np.random.default_rng(0).uniform(-1, 1, (4, 6, A)).astype(np.float32)
    agent.init_task_embedding(goal)  # the mean over one frame is its embedding
    expected = pre.q_values(obs, goal[0], acts, reduce="none")
    got = agent.q_values(obs, None, acts, reduce="none")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_fine_tuning_starts_from_the_pretrained_weight_average() -> None:
    """The task agent starts from the weights the goal agent acted (and was evaluated) with."""
    pre = AMAgent(flat_config(AMConfig, **TINY_AM, ema_tau=0.01), (SIZE, SIZE, 3), A, seed=3)
    with torch.no_grad():
        for p in pre.q_ema.parameters():
            p.add_(0.05)  # the average now differs from the latest weights
    agent = TaskQAgent(cfg(), (SIZE, SIZE, 3), A, seed=0)
    agent.load_pretrained(pre.state_dict())
    for name, p in agent.q.state_dict().items():
        torch.testing.assert_close(p, pre.q_ema.state_dict()[name], msg=name)
        torch.testing.assert_close(agent.q_target.state_dict()[name], p, msg=name)
    assert not torch.equal(next(agent.q.parameters()), next(pre.q.parameters()))


def test_task_embedding_is_the_mean_goal_embedding_of_success_frames() -> None:
    agent = TaskQAgent(cfg(), (SIZE, SIZE, 3), A, seed=0)
    frames = images(5, 7)
    z = agent.init_task_embedding(frames, chunk=2)  # chunks sum like one pass
    with torch.no_grad():
        expected = agent.q.encode_goal(torch.as_tensor(frames)).mean(dim=0)
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(agent.z.detach(), expected)
    torch.testing.assert_close(agent.z_target, expected)


@pytest.mark.parametrize("use_proprio", [False, True])
@pytest.mark.parametrize(
    "overrides",
    [{}, dict(calibration="calql"), dict(policy_candidates=False), dict(conservative=False),
     dict(aux_weight=0.0)],
)
def test_update_reports_finite_diagnostics(use_proprio, overrides) -> None:
    c = cfg(am=dict(use_proprio=use_proprio), **overrides)
    agent = TaskQAgent(c, (SIZE, SIZE, 3), A, proprio_dim=P, seed=0)
    batch, aux = task_batch(), goal_batch()
    before = copy.deepcopy((batch, aux))
    z0 = agent.z.detach().clone()
    info = agent.update(batch, aux)
    assert all(np.isfinite(v) for k, v in info.items() if k != "task/q_rewarded")
    assert ("aux/loss" in info) == (c.aux_weight > 0)
    assert ("task/frac_floored" in info) == (c.calibration == "calql")
    assert ("task/q_policy" in info) == (c.conservative and c.policy_candidates)
    assert ("task/q_neg" in info) == c.conservative
    assert not torch.equal(agent.z.detach(), z0)  # the task embedding learns
    assert agent.step == 1
    for b, b0 in zip((batch, aux), before, strict=True):
        for k in b:
            np.testing.assert_array_equal(b[k], b0[k], err_msg=k)  # inputs are not mutated


@pytest.mark.parametrize("mc_floor", [False, True])
def test_targets_are_floored_at_the_monte_carlo_return(mc_floor) -> None:
    agent = TaskQAgent(cfg(mc_floor=mc_floor), (SIZE, SIZE, 3), A, seed=0)
    batch = task_batch()
    batch[K.REWARD][:] = 0.0
    batch[MC_RETURN][:] = 0.95  # above gamma * Q' for an untrained net (Q' <= 1, gamma 0.9)
    info = agent.update(batch)
    assert info["task/td_target_mean"] < 0.9
    assert info["task/target_mean"] == (pytest.approx(0.95) if mc_floor
                                        else info["task/td_target_mean"])


def test_act_ignores_the_goal_image_and_explores_inside_the_box() -> None:
    agent = TaskQAgent(cfg(), (SIZE, SIZE, 3), A, seed=0)
    obs = images(3, 0)
    state = agent.get_rng_state()
    a1 = agent.act(obs, images(1, 1)[0])
    agent.set_rng_state(state)
    a2 = agent.act(obs, None)
    np.testing.assert_array_equal(a1, a2)
    single, q = agent.act(obs[0], None, explore_std=5.0, return_q=True)
    assert single.shape == (A,) and np.all(np.abs(single) <= 1.0) and 0.0 <= q <= 1.0


def test_state_round_trips_through_a_checkpoint(tmp_path) -> None:
    agent = TaskQAgent(cfg(), (SIZE, SIZE, 3), A, seed=0)
    agent.init_task_embedding(images(3, 4))
    agent.update(task_batch())
    save_checkpoint(tmp_path, agent.step, {"agent": agent.state_dict()}, {"agent": "task"})
    state, _ = load_checkpoint(tmp_path)
    other = TaskQAgent(cfg(), (SIZE, SIZE, 3), A, seed=1)
    other.load_state_dict(state["agent"])
    acts = np.random.default_rng(0).uniform(-1, 1, (2, 5, A)).astype(np.float32)
    obs = images(2, 9)
    np.testing.assert_array_equal(other.q_values(obs, None, acts), agent.q_values(obs, None, acts))
    assert other.step == 1
    assert other.update(task_batch(seed=3)) == agent.update(task_batch(seed=3))


def test_unknown_negative_source_is_refused_when_the_task_agent_is_built() -> None:
    with pytest.raises(ValueError, match="agent.neg_source.*'nearby'"):
        TaskQAgent(cfg(neg_source="nearby"), (SIZE, SIZE, 3), A)


# --- goal-image task input ---


def test_goal_image_task_q_equals_the_pretrained_goal_q() -> None:
    """With task_input=goal_image the task Q is the pretrained Q(o, a, g) of that goal image."""
    pre = AMAgent(flat_config(AMConfig, **TINY_AM), (SIZE, SIZE, 3), A, seed=3)
    agent = TaskQAgent(cfg(task_input="goal_image"), (SIZE, SIZE, 3), A, seed=0)
    agent.load_pretrained({"q": pre.q.state_dict()})
    obs, goals = images(4, 0), images(4, 1)
    acts = np.random.default_rng(0).uniform(-1, 1, (4, 6, A)).astype(np.float32)
    expected = pre.q_values(obs, goals, acts, reduce="none")
    np.testing.assert_allclose(agent.q_values(obs, goals, acts, reduce="none"), expected,
                               rtol=1e-5, atol=1e-6)
    other = agent.q_values(obs, images(4, 2), acts, reduce="none")
    assert not np.allclose(other, expected)  # the goal image is read, not ignored


def test_goal_image_update_trains_on_each_episode_goal_and_leaves_z_alone() -> None:
    agent = TaskQAgent(cfg(task_input="goal_image"), (SIZE, SIZE, 3), A, seed=0)
    batch = task_batch()
    batch[K.GOAL_IMAGE] = images(8, 11)
    before = copy.deepcopy(batch)
    z0 = agent.z.detach().clone()
    q0 = agent.q_values(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], batch[K.ACTION])
    info = agent.update(batch)
    assert all(np.isfinite(v) for k, v in info.items() if k != "task/q_rewarded")
    assert torch.equal(agent.z.detach(), z0)  # z_task takes no part
    assert not np.allclose(agent.q_values(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE],
                                          batch[K.ACTION]), q0)
    for k in batch:
        np.testing.assert_array_equal(batch[k], before[k], err_msg=k)


def test_goal_image_input_needs_goal_images() -> None:
    agent = TaskQAgent(cfg(task_input="goal_image"), (SIZE, SIZE, 3), A, seed=0)
    with pytest.raises(KeyError, match="task_input=goal_image.*'goal_image'"):
        agent.update(task_batch())
    with pytest.raises(ValueError, match="task_input=goal_image.*goal image"):
        agent.act(images(2, 0), None)
    with pytest.raises(ValueError, match="agent.task_input.*'goal'"):
        TaskQAgent(cfg(task_input="goal"), (SIZE, SIZE, 3), A)


def state_batch(b: int = 8, seed: int = 0, width: int = 8) -> dict[str, np.ndarray]:
    """A task batch on state vectors (B, S): no image key at all."""
    batch = {k: v for k, v in task_batch(b, seed).items()
             if k not in (K.OBS_IMAGE, K.NEXT_OBS_IMAGE)}
    rng = np.random.default_rng(seed + 7)
    batch[K.OBS_STATE] = rng.normal(size=(b, width)).astype(np.float32)
    batch[K.NEXT_OBS_STATE] = rng.normal(size=(b, width)).astype(np.float32)
    return batch


def test_a_state_network_trains_on_state_batches_and_acts_on_one_state() -> None:
    """encoder.kind=state: the task update reads OBS_STATE / NEXT_OBS_STATE (B, S) and the
    auxiliary batch's GOAL_STATE, no image; act takes the env's state (S,) -> (A,)."""
    state = {"kind": "state", "state_dim": 8, "state_hidden": [32]}  # encoder fields
    agent = TaskQAgent(cfg(am=state), (SIZE, SIZE, 3), A, P)
    aux = state_batch(8, 3)
    aux[K.GOAL_STATE] = np.random.default_rng(4).normal(size=(8, 8)).astype(np.float32)
    aux.update({k: v for k, v in goal_batch().items() if k in (K.REACHED, K.CHAINED, K.OFFSET)})
    before = [p.detach().clone() for p in agent.q.parameters()]
    stats = agent.update(state_batch(), aux)
    assert np.isfinite(float(stats["task/loss"])) and np.isfinite(float(stats["aux/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.q.parameters()))
    assert agent.act(np.zeros(8, np.float32)).shape == (A,)
    assert agent.act(np.zeros((3, 8), np.float32)).shape == (3, A)
    with pytest.raises(ValueError, match=r"agent.task_input=goal_image .*agent.am.encoder."
                                         r"kind='state'"):
        TaskQAgent(cfg(task_input="goal_image", am=state), (SIZE, SIZE, 3), A, P)
