"""Fine-tuning through the shared loop: lineage, task embedding init, offline-to-online switch,
refusals."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from goalrl.agents import AMConfig, EncoderConfig, GCBCConfig
from goalrl.agents.registry import agent_policy, load_agent
from goalrl.agents.task_bc import TaskBCConfig
from goalrl.agents.task_q import TaskQAgent, TaskQConfig
from goalrl.checkpoint import checkpoint_hash, load_checkpoint, resolve_checkpoint
from goalrl.commands.collect import CollectConfig, collect
from goalrl.data.storage import DatasetError, EpisodeDataset
from goalrl.training import PretrainConfig, TrainingError, pretrain
from goalrl.training.finetune import FinetuneConfig, finetune, success_frame_indices

TINY_ENCODER = EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32)
TINY = dict(
    encoder=TINY_ENCODER, head_hidden_dim=16, cem_samples=16,
    cem_elites=4, act_cem_iterations=2, act_cem_samples=32, act_cem_elites=4, num_negatives=4,
    pad=2,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ft")
    paths = {"play": root / "play", "grasp": root / "grasp", "pre": root / "pre"}
    common = dict(env="goalrl/Grasp-v0", image_size=16, sheet=False)
    collect(CollectConfig(episodes=3, out=str(paths["play"]), **common))
    # some of the 4 labeled attempts succeed (seeds 0-3: 2 of 4 at this noise)
    collect(CollectConfig(episodes=4, out=str(paths["grasp"]), policy="grasp",
                          waypoint_noise=0.02, **common))
    pretrain(PretrainConfig(data=str(paths["play"]), out=str(paths["pre"]),
                            agent=AMConfig(**TINY), steps=3, batch_size=16, eval_episodes=0,
                            videos=0, prefetch=2))
    return paths


def config(paths: dict[str, Path], out: Path, **kw) -> FinetuneConfig:
    defaults = dict(
        init=str(paths["pre"]),
        data=str(paths["grasp"]),
        out=str(out),
        steps=3,
        batch_size=16,
        eval_episodes=0,
        videos=0,
        log_every=1,
        prefetch=2,
        agent=TaskQConfig(num_negatives=4, am=AMConfig(**TINY)),
    )
    defaults.update(kw)
    return FinetuneConfig(**defaults)


def test_labeled_grasp_data_records_rewards_and_success(data) -> None:
    ds = EpisodeDataset(data["grasp"])
    assert ds.rewards is not None and ds.success is not None
    final = ds.success[ds.episode_ends]
    assert 0 < final.sum() < ds.num_episodes  # the scripted grasps succeed part of the time
    assert ds.meta["source"] == "goalrl collect policy=grasp"


def test_finetuned_checkpoint_records_parent_and_task_and_evaluates(data, tmp_path) -> None:
    summary = finetune(config(data, tmp_path / "ft", eval_episodes=1, videos=1))
    meta = json.loads((resolve_checkpoint(tmp_path / "ft") / "meta.json").read_text())
    assert meta["parent"] == checkpoint_hash(data["pre"]) == summary["parent"]
    assert meta["parent_checkpoint"] == str(resolve_checkpoint(data["pre"]))
    assert meta["task"] == meta["env_id"] == "goalrl/Grasp-v0" and meta["agent"] == "task"
    assert meta["aux_dataset"] == str(data["play"].resolve())
    assert [p["step"] for p in summary["curve"]] == [0, 3]
    assert Path(summary["eval"]["videos"][0]).stat().st_size > 0
    assert list((tmp_path / "ft" / "tb").glob("events.out.tfevents.*"))
    agent, meta = load_agent(tmp_path / "ft")
    assert isinstance(agent, TaskQAgent) and agent.cfg.am.encoder.embed_dim == 16
    obs = np.zeros((16, 16, 3), np.uint8)
    action, q = agent_policy(agent)(obs, obs, np.zeros(5, np.float32))
    assert action.shape == (4,) and 0 <= q <= 1
    # a fine-tuned checkpoint can itself be fine-tuned further: its hash is the next parent
    # ... here with the learned task embedding instead of the goal image: z comes from the parent
    embedding = TaskQConfig(task_input="embedding", num_negatives=4, am=AMConfig(**TINY))
    child = finetune(config(data, tmp_path / "ft2", init=str(tmp_path / "ft"), aux_data="none",
                            agent=embedding))
    assert child["parent"] == checkpoint_hash(tmp_path / "ft") != summary["parent"]
    assert child["task_embedding_init"] == "init checkpoint"


def test_task_embedding_starts_at_the_mean_embedding_of_success_frames(data, tmp_path) -> None:
    frozen = TaskQConfig(lr=0.0, z_lr=0.0, num_negatives=4, am=AMConfig(**TINY),
                         task_input="embedding")
    summary = finetune(config(data, tmp_path / "ft", steps=1, agent=frozen))
    assert summary["task_embedding_init"] == "success frames"
    state, _ = load_checkpoint(tmp_path / "ft")
    pre, _ = load_agent(data["pre"])
    ds = EpisodeDataset(data["grasp"])
    idx = ds.episode_ends[ds.success[ds.episode_ends]]  # final frames of successful episodes
    assert len(idx) == 2
    np.testing.assert_array_equal(success_frame_indices(ds), idx)
    with torch.no_grad():
        expected = pre.acting_q.encode_goal(torch.as_tensor(ds.images(idx))).mean(dim=0)
    torch.testing.assert_close(state["agent"]["z"], expected)


def test_offline_then_online_phase_collects_policy_episodes(data, tmp_path) -> None:
    out = tmp_path / "ft"
    summary = finetune(
        config(data, out, steps=2, online_steps=4, updates_per_episode=2, eval_episodes=1,
               eval_every=2, online_ratio=0.25, aux_data="none")
    )
    assert [(p["step"], p["phase"]) for p in summary["curve"]] == [
        (0, "init"), (2, "offline"), (4, "online"), (6, "online")
    ]
    assert summary["online_episodes"] == 2 and summary["aux_data"] is None
    online = EpisodeDataset(out / "online")
    assert online.num_episodes == 2 and online.rewards is not None
    assert online.success is not None and online.meta["env_id"] == "goalrl/Grasp-v0"
    assert min(online.seeds) >= 500_000 and max(online.seeds) < 1_000_000  # not eval seeds
    assert Path(summary["offline_checkpoint"]).name == "step_0000002"
    off_meta = json.loads((Path(summary["offline_checkpoint"]) / "meta.json").read_text())
    end_meta = json.loads((Path(summary["checkpoint"]) / "meta.json").read_text())
    assert (off_meta["phase"], end_meta["phase"]) == ("offline", "online")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    frac = {e.step: e.value for e in acc.Scalars("task/frac_online")}
    assert frac[1] == frac[2] == 0.0 and frac[3] == frac[6] == 0.25  # mixed after the switch
    assert "task/frac_floored" not in acc.Tags()["scalars"]  # calibration off by default


def test_scratch_run_uses_no_pretraining_data(data, tmp_path) -> None:
    summary = finetune(config(data, tmp_path / "ft", init="none"))
    assert summary["parent"] is None and summary["aux_data"] is None
    meta = json.loads((resolve_checkpoint(tmp_path / "ft") / "meta.json").read_text())
    assert meta["parent"] is None and meta["task"] == "goalrl/Grasp-v0"


def edited_checkpoint(src: Path, dst: Path, **changes) -> Path:
    step = resolve_checkpoint(src)
    shutil.copytree(step, dst)
    meta = json.loads((dst / "meta.json").read_text())
    meta.update(changes)
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def test_mismatched_checkpoints_are_refused_before_training(data, tmp_path) -> None:
    out = tmp_path / "ft"
    big = tmp_path / "grasp24"
    collect(CollectConfig(env="goalrl/Grasp-v0", episodes=1, out=str(big), image_size=24,
                          policy="grasp", sheet=False))
    with pytest.raises(TrainingError, match=r"meta.json: field 'image_shape' is \[16, 16, 3\] "
                                            r"but the labeled dataset .*grasp24 has \[24, 24, 3\]"):
        finetune(config(data, out, data=str(big)))
    five = edited_checkpoint(data["pre"], tmp_path / "five", action_dim=5)
    with pytest.raises(TrainingError, match=r"five/meta.json: field 'action_dim' is 5 but task "
                                            r"goalrl/Grasp-v0 takes 4-d actions"):
        finetune(config(data, out, init=str(five)))
    prop = edited_checkpoint(
        data["pre"], tmp_path / "prop", proprio_dim=7,
        agent_config={**asdict(AMConfig(**TINY)), "use_proprio": True},  # the old flat layout
    )
    with pytest.raises(TrainingError, match="field 'proprio_dim' is 7"):
        finetune(config(data, out, init=str(prop)))
    wide = TaskQConfig(am=AMConfig(**{**TINY, "encoder": replace(TINY_ENCODER, embed_dim=32)}))
    with pytest.raises(TrainingError, match=r"field 'agent_config.encoder.embed_dim' is 16 but "
                                            r"agent.am.encoder.embed_dim=32"):
        finetune(config(data, out, agent=wide))
    # an init of a kind the method cannot start from: test_finetune_baselines.py
    assert not out.exists()  # refused before anything was written


def test_unlabeled_data_is_refused(data, tmp_path) -> None:
    from goalrl.data.storage import DatasetError, DatasetWriter, EpisodeData

    with DatasetWriter(tmp_path / "plain", image_shape=(16, 16, 3), action_dim=4,
                       env_id="goalrl/Grasp-v0") as w:
        w.append(EpisodeData(images=np.zeros((3, 16, 16, 3), np.uint8),
                             actions=np.zeros((2, 4), np.float32)))
    with pytest.raises(DatasetError, match="neither per-step 'rewards' nor per-frame"):
        finetune(config(data, tmp_path / "ft", data=str(tmp_path / "plain")))


def test_existing_run_is_not_overwritten(data, tmp_path) -> None:
    finetune(config(data, tmp_path / "ft", steps=1, aux_data="none"))
    with pytest.raises(TrainingError, match="already holds a fine-tuning run"):
        finetune(config(data, tmp_path / "ft", steps=1, aux_data="none"))


def test_goal_image_task_input_trains_on_rerendered_goals_and_acts_on_them(data, tmp_path) -> None:
    goal_cfg = TaskQConfig(task_input="goal_image", num_negatives=4, am=AMConfig(**TINY))
    out = tmp_path / "ft"
    summary = finetune(config(data, out, steps=2, online_steps=2, updates_per_episode=2,
                              eval_episodes=1, agent=goal_cfg))
    assert summary["task_input"] == "goal_image" and summary["act_with_target"] is True
    assert summary["task_embedding_init"] == "not used (agent.task_input=goal_image)"
    assert summary["online_episodes"] == 1 and len(summary["curve"]) == 3
    agent, meta = load_agent(out)
    assert agent.uses_goal_image and meta["agent_config"]["task_input"] == "goal_image"
    obs, goal = np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 200, np.uint8)
    action, q = agent_policy(agent)(obs, goal, np.zeros(5, np.float32))
    assert action.shape == (4,) and 0 <= q <= 1
    with pytest.raises(ValueError, match="needs the scene's goal image"):
        agent.act(obs, None, np.zeros(5, np.float32))


def test_goal_image_input_refuses_episodes_whose_seed_does_not_replay(data, tmp_path) -> None:
    """Labeled episodes re-keyed to other seeds: their goals are unknown, refused up front."""
    from goalrl.data.storage import DatasetWriter

    src = EpisodeDataset(data["grasp"])
    with DatasetWriter(tmp_path / "reseeded", image_shape=src.image_shape,
                       action_dim=src.action_dim, proprio_dim=src.proprio_dim,
                       goal_dim=src.meta["goal_dim"], state_dim=src.state_dim,
                       env_id=src.meta["env_id"]) as writer:
        for i in range(src.num_episodes):
            episode = src.episode(i)
            episode.seed = int(src.seeds[i]) + 100
            writer.append(episode)
    goal_cfg = TaskQConfig(task_input="goal_image", num_negatives=4, am=AMConfig(**TINY))
    with pytest.raises(DatasetError, match=r"episode 0: .*seed 100 does not reproduce"):
        finetune(config(data, tmp_path / "ft", agent=goal_cfg, data=str(tmp_path / "reseeded")))
    assert not (tmp_path / "ft" / "checkpoints").exists()


# --- the task given only by its reward ---

MARK = 7  # every pixel of the scene's goal image, made recognisable below


@pytest.mark.parametrize("task_input", ["embedding", "bc", "goal_image"])
def test_reward_only_task_trains_and_is_tested_without_any_goal_image(
    data, tmp_path, monkeypatch, task_input, task_batch_keys
) -> None:
    """The scene's goal image is replaced by a constant picture; every image the network's
    encoder sees (fine-tuning batches, online episodes, evaluation) is checked for it. By
    default (the reward-only task) it never arrives, no goal renderer is built and no task
    batch has a goal key (the task Q's default input, and behaviour cloning, method=bc); with
    task_input=goal_image the same probe finds it (so it can)."""
    from goalrl.agents import networks
    from goalrl.data import keys as K
    from goalrl.envs.goal_env import TabletopGoalEnv

    observation = TabletopGoalEnv._observation

    def marked(self):
        obs = observation(self)
        obs["desired_goal_image"] = np.full_like(obs["desired_goal_image"], MARK)
        return obs

    monkeypatch.setattr(TabletopGoalEnv, "_observation", marked)
    seen = {"goal_images": 0, "images": 0}
    encode = networks.ImageEncoder.forward

    def probe(self, images):
        centre = images[:, 3:-3, 3:-3]  # (B, h, w, 3): a random shift keeps the centre
        seen["goal_images"] += int((centre == MARK).flatten(1).all(dim=1).sum())
        seen["images"] += images.shape[0]
        return encode(self, images)

    monkeypatch.setattr(networks.ImageEncoder, "forward", probe)
    batch_keys = task_batch_keys
    reward_only = task_input in ("embedding", "bc")
    if reward_only:
        from goalrl.data import episode_goals

        def refuse(*args, **kwargs):
            raise AssertionError("a goal renderer was built for a reward-only task")

        monkeypatch.setattr(episode_goals.GoalImageRenderer, "__init__", refuse)
        agent_cfg = TaskQConfig(num_negatives=4, am=AMConfig(**TINY))  # the default input
    else:
        agent_cfg = TaskQConfig(num_negatives=4, am=AMConfig(**TINY), task_input=task_input)
    method, init = ("bc", "none") if task_input == "bc" else ("q", str(data["pre"]))
    summary = finetune(config(data, tmp_path / "ft", steps=2, online_steps=2, method=method,
                              init=init,
                              updates_per_episode=2, eval_episodes=1, agent=agent_cfg,
                              bc=TaskBCConfig(gcbc=GCBCConfig(encoder=TINY_ENCODER, pad=2))))
    assert summary.get("task_input", "bc") == task_input and summary["online_episodes"] == 1
    assert seen["images"] > 0
    if reward_only:
        assert seen["goal_images"] == 0 and K.GOAL_IMAGE not in batch_keys
        assert summary["task_embedding_init"] == "success frames"
    else:
        assert seen["goal_images"] > 0 and K.GOAL_IMAGE in batch_keys
