"""Fine-tuning on state observations (issue 42's table on CPU): a state AM or GCBC checkpoint,
or a state network from scratch, fine-tuned on the labeled data's states, acting on the env's
``state``; the task given by its reward only; mismatches refused by name before training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from goalrl.agents import AMConfig, EncoderConfig, GCBCConfig
from goalrl.agents.registry import agent_policy, load_agent
from goalrl.agents.task_bc import TaskBCAgent, TaskBCConfig
from goalrl.agents.task_q import TaskQAgent, TaskQConfig
from goalrl.checkpoint import resolve_checkpoint
from goalrl.commands.collect import CollectConfig, collect
from goalrl.commands.evaluate import observation_of
from goalrl.data import keys as K
from goalrl.data.sampler import state_vectors
from goalrl.data.storage import EpisodeDataset
from goalrl.training import PretrainConfig, TrainingError, pretrain
from goalrl.training.finetune import FinetuneConfig, finetune


def state_encoder() -> EncoderConfig:
    """A tiny state encoder, new each time: a run fills in its ``state_dim`` from the data."""
    return EncoderConfig(kind="state", embed_dim=16, fusion_dim=32, state_hidden=[32])


def tiny_am() -> AMConfig:
    return AMConfig(encoder=state_encoder(), head_hidden_dim=16, cem_samples=16, cem_elites=4,
                    act_cem_iterations=2, act_cem_samples=32, act_cem_elites=4, num_negatives=4)


SIZE = 8  # the state variants' image size (the network never reads the images)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ft_state")
    paths = {name: root / name for name in ("play", "grasp", "am", "gcbc")}
    common = dict(env="goalrl/Grasp-v0", image_size=SIZE, sheet=False)
    collect(CollectConfig(episodes=3, out=str(paths["play"]), **common))
    collect(CollectConfig(episodes=4, out=str(paths["grasp"]), policy="grasp",
                          waypoint_noise=0.02, **common))  # 2 of 4 succeed
    for name, agent in (("am", tiny_am()), ("gcbc", GCBCConfig(encoder=state_encoder()))):
        pretrain(PretrainConfig(data=str(paths["play"]), out=str(paths[name]), agent=agent,
                                steps=2, batch_size=8, eval_episodes=0, videos=0, prefetch=1))
    return paths


def config(paths: dict[str, Path], out: Path, **kw) -> FinetuneConfig:
    defaults = dict(init=str(paths["am"]), data=str(paths["grasp"]), out=str(out), steps=2,
                    batch_size=8, eval_episodes=0, videos=0, log_every=1, prefetch=1,
                    agent=TaskQConfig(num_negatives=4, am=tiny_am()),
                    bc=TaskBCConfig(gcbc=GCBCConfig(encoder=state_encoder())))
    defaults.update(kw)
    return FinetuneConfig(**defaults)


def check_acts_on_states(out: Path, cls: type, width: int) -> None:
    """The run's checkpoint is a state agent that `goalrl eval` drives with the env's state."""
    agent, meta = load_agent(out)
    assert isinstance(agent, cls) and observation_of(meta) == "state"
    action, _ = agent_policy(agent)(np.zeros(width, np.float32), None, np.zeros(5, np.float32))
    assert action.shape == (4,)


def test_q_from_a_state_am_trains_offline_then_online_on_states(data, tmp_path) -> None:
    width = state_vectors(EpisodeDataset(data["grasp"])).shape[1]
    out = tmp_path / "ft"
    summary = finetune(config(data, out, online_steps=2, updates_per_episode=2,
                              eval_episodes=1))
    assert summary["observation"] == "state" and summary["method"] == "task_q_from_am_aux"
    assert summary["task_embedding_init"] == "success frames"
    assert summary["online_episodes"] == 1 and summary["success_final"] is not None
    assert [p["step"] for p in summary["curve"]] == [0, 2, 4]
    online = EpisodeDataset(out / "online")  # the policy's episode records states too
    assert state_vectors(online).shape[1] == width
    check_acts_on_states(out, TaskQAgent, width)


@pytest.mark.parametrize("method", ["q", "bc"])
def test_state_networks_fine_tune_from_scratch(data, tmp_path, method) -> None:
    """init=none with a state encoder: the scratch run takes the data's state width; the fair
    scratch run samples the play data's states for its auxiliary loss."""
    summary = finetune(config(data, tmp_path / "ft", init="none", method=method,
                              aux_data=str(data["play"]), online_steps=2,
                              updates_per_episode=2))
    name = "task_q_from_scratch_aux" if method == "q" else "task_bc_success_from_scratch"
    assert summary["method"] == name and summary["observation"] == "state"
    width = state_vectors(EpisodeDataset(data["grasp"])).shape[1]
    check_acts_on_states(tmp_path / "ft", TaskQAgent if method == "q" else TaskBCAgent, width)


@pytest.mark.parametrize("recipe", ["gcbc_init", "bc_gcbc_init"])
def test_a_state_gcbc_checkpoint_starts_the_task_q_and_behaviour_cloning(data, tmp_path,
                                                                        recipe) -> None:
    method = "bc" if recipe.startswith("bc") else "q"
    summary = finetune(config(data, tmp_path / "ft", init=str(data["gcbc"]), method=method,
                              recipe=recipe))
    assert summary["observation"] == "state"
    assert summary["init_weights"] == ("encoder" if method == "q" else "all weights")


# --- resume: a stopped run goes on as if it had never stopped ---

def agent_tensors(out: Path) -> dict:
    from goalrl.checkpoint import load_checkpoint

    state, _ = load_checkpoint(out)
    flat: dict = {}

    def walk(tree, prefix):
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif hasattr(value, "dtype"):
                flat[prefix + key] = value

    walk(state["agent"], "")
    return flat


def test_a_stopped_fine_tuning_run_resumes_bit_exactly(data, tmp_path) -> None:
    """A run stopped in its online phase, after checkpoint 4 but before evaluating it, with an
    online episode recorded that the checkpoint never trained on: resumed, it drops that
    episode, evaluates step 4 again, and ends with the weights, online episodes and learning
    curve of a run that was never stopped."""
    kw = dict(online_steps=6, updates_per_episode=2, eval_episodes=1, eval_every=2,
              save_every=2, keep_last=0)
    ref = finetune(config(data, tmp_path / "ref", **kw))
    out = tmp_path / "run"
    finetune(config(data, out, **kw))
    # undo what came after checkpoint 4: later checkpoints, the curve from step 4 on
    for step in (6, 8):
        shutil.rmtree(out / "checkpoints" / f"step_{step:07d}")
    (out / "checkpoints" / "latest").write_text("step_0000004\n")
    curve = json.loads((out / "checkpoints" / "curve.json").read_text())
    (out / "checkpoints" / "curve.json").write_text(json.dumps(
        [p for p in curve if p["step"] < 4]))
    assert EpisodeDataset(out / "online").num_episodes == 3  # played before updates 3, 5, 7
    with pytest.raises(TrainingError, match="pass resume=true to continue it"):
        finetune(config(data, out, **kw))
    resumed = finetune(config(data, out, resume=True, **kw))
    for key in ("curve", "online_episodes", "success_offline", "success_final",
                "dip_after_switch", "online_episode_success_rate"):
        assert resumed[key] == ref[key], key
    ours, theirs = agent_tensors(out), agent_tensors(tmp_path / "ref")
    assert ours.keys() == theirs.keys()
    assert all(bool((ours[k] == theirs[k]).all()) for k in ours)
    online = EpisodeDataset(out / "online")
    assert online.num_episodes == 3
    assert "after the checkpoint" in str(online.meta["repairs"][-1]["dropped"])
    assert resumed["offline_checkpoint"] == str(out / "checkpoints" / "step_0000002")


def test_resume_refuses_a_run_whose_online_episodes_are_gone(data, tmp_path) -> None:
    out = tmp_path / "ft"
    kw = dict(online_steps=4, updates_per_episode=2)
    finetune(config(data, out, **kw))
    shutil.rmtree(out / "online")
    with pytest.raises(TrainingError, match=r"online: holds no online episodes; the checkpoint "
                                            r"being resumed had played 2 online episodes"):
        finetune(config(data, out, resume=True, **kw))


def test_resume_refuses_other_settings_and_starts_fresh_without_a_checkpoint(data,
                                                                            tmp_path) -> None:
    out = tmp_path / "ft"
    fresh = finetune(config(data, out, resume=True))  # nothing there yet: a fresh run
    assert fresh["method"] == "task_q_from_am_aux"
    with pytest.raises(TrainingError, match=r"its method is 'task_q_from_am_aux', these "
                                            r"settings give 'task_q_from_scratch_aux'"):
        finetune(config(data, out, resume=True, init="none", aux_data=str(data["play"])))


# --- refusals, before anything is trained or written ---

def edited_meta(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(resolve_checkpoint(src), dst)
    meta = json.loads((dst / "meta.json").read_text())
    edit(meta)
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def test_state_mismatches_are_refused_by_name(data, tmp_path) -> None:
    from goalrl.data.storage import DatasetWriter

    out = tmp_path / "ft"
    # a state-dim mismatch between the init checkpoint and the data
    width = state_vectors(EpisodeDataset(data["grasp"])).shape[1]
    wide = edited_meta(data["am"], tmp_path / "wide",
                       lambda m: m["agent_config"]["encoder"].update(state_dim=99))
    with pytest.raises(TrainingError, match=r"wide/meta.json: field 'agent_config.encoder."
                                            r"state_dim' is 99 but the labeled dataset .*grasp "
                                            rf"has {width}-d states"):
        finetune(config(data, out, init=str(wide)))
    # a state init on data that records no state (images only)
    src = EpisodeDataset(data["grasp"])
    with DatasetWriter(tmp_path / "images", image_shape=src.image_shape,
                       action_dim=src.action_dim, env_id=src.meta["env_id"],
                       has_rewards=True) as writer:
        for i in range(src.num_episodes):
            episode = src.episode(i)
            episode.proprio = episode.achieved_goal = episode.state = None
            writer.append(episode)
    for init in (str(data["am"]), str(data["gcbc"])):
        with pytest.raises(TrainingError, match=r"meta.json: field 'agent_config.encoder.kind' "
                                                r"is 'state' but the labeled dataset .*images "
                                                r"records no state"):
            finetune(config(data, out, init=init, data=str(tmp_path / "images"),
                            method="q" if init.endswith("am") else "bc"))
    # the goal given as an image to a network that reads states
    goal = TaskQConfig(num_negatives=4, am=tiny_am(), task_input="goal_image")
    with pytest.raises(TrainingError, match=r"agent.task_input=goal_image .* field "
                                            r"'agent_config.encoder.kind' is 'state'"):
        finetune(config(data, out, agent=goal))
    assert not out.exists()


# --- the task given only by its reward ---

MARK = 7.0  # every value of the scene's goal state, made recognisable below


@pytest.mark.parametrize("method", ["q", "bc"])
def test_reward_only_state_task_never_feeds_a_goal_to_the_network(data, tmp_path, monkeypatch,
                                                                  method, task_batch_keys) -> None:
    """The env's goal state (``desired_goal_state``) is replaced by a constant vector; every
    state the network's encoder sees (fine-tuning batches, online episodes, evaluation) is
    checked for it, and no task batch carries a goal key. The auxiliary goal-reaching loss
    reads goals of the play data only (its own relabeled goals, never the task scene's)."""
    from goalrl.agents import networks
    from goalrl.envs.goal_env import TabletopGoalEnv

    observation = TabletopGoalEnv._observation

    def marked(self):
        obs = observation(self)
        obs["desired_goal_state"] = np.full_like(obs["desired_goal_state"], MARK)
        return obs

    monkeypatch.setattr(TabletopGoalEnv, "_observation", marked)
    seen = {"goals": 0, "states": 0}
    encode = networks.StateEncoder.forward

    def probe(self, states):
        seen["goals"] += int((states == MARK).all(dim=1).sum())
        seen["states"] += states.shape[0]
        return encode(self, states)

    monkeypatch.setattr(networks.StateEncoder, "forward", probe)
    batch_keys = task_batch_keys
    init = str(data["am"] if method == "q" else data["gcbc"])
    summary = finetune(config(data, tmp_path / "ft", init=init, method=method, online_steps=2,
                              updates_per_episode=2, eval_episodes=1))
    assert summary["online_episodes"] == 1 and seen["states"] > 0
    assert seen["goals"] == 0
    assert not batch_keys & {K.GOAL_STATE, K.GOAL_IMAGE, K.OBS_IMAGE}
    assert K.OBS_STATE in batch_keys
