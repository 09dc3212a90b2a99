"""The fine-tuning baselines of docs/benchmarks/finetune.md: the fair scratch run with the play
data, behaviour cloning on the successful labeled episodes, a GCBC checkpoint as the init, the
dip at the switch, and the method names that say what acts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from goalrl.agents import AMConfig, EncoderConfig, GCBCConfig
from goalrl.agents.registry import agent_policy, load_agent
from goalrl.agents.task_bc import TaskBCAgent, TaskBCConfig
from goalrl.agents.task_q import TaskQAgent, TaskQConfig
from goalrl.checkpoint import load_checkpoint, resolve_checkpoint
from goalrl.commands.collect import CollectConfig, collect
from goalrl.data import keys as K
from goalrl.data.storage import DatasetError, EpisodeDataset
from goalrl.data.task import successful_episodes
from goalrl.training import PretrainConfig, TrainingError, pretrain
from goalrl.training.finetune import FinetuneConfig, finetune, switch_dip

TINY_ENCODER = EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32)
TINY_AM = AMConfig(encoder=TINY_ENCODER, head_hidden_dim=16, cem_samples=16, cem_elites=4,
                   act_cem_iterations=2, act_cem_samples=32, act_cem_elites=4,
                   num_negatives=4, pad=2)
TINY_GCBC = GCBCConfig(encoder=TINY_ENCODER, pad=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("baselines")
    paths = {name: root / name for name in ("play", "grasp", "am", "gcbc")}
    common = dict(env="goalrl/Grasp-v0", image_size=16, sheet=False)
    collect(CollectConfig(episodes=3, out=str(paths["play"]), **common))
    collect(CollectConfig(episodes=4, out=str(paths["grasp"]), policy="grasp",
                          waypoint_noise=0.02, **common))  # 2 of 4 succeed
    for name, agent in (("am", TINY_AM), ("gcbc", TINY_GCBC)):
        pretrain(PretrainConfig(data=str(paths["play"]), out=str(paths[name]), agent=agent,
                                steps=2, batch_size=8, eval_episodes=0, videos=0, prefetch=1))
    return paths


def config(paths: dict[str, Path], out: Path, **kw) -> FinetuneConfig:
    defaults = dict(init="none", data=str(paths["grasp"]), out=str(out), steps=3, batch_size=8,
                    eval_episodes=0, videos=0, log_every=1, prefetch=1,
                    agent=TaskQConfig(num_negatives=4, am=TINY_AM),
                    bc=TaskBCConfig(gcbc=TINY_GCBC))
    defaults.update(kw)
    return FinetuneConfig(**defaults)


def test_fair_scratch_run_samples_the_play_data_every_update(data, tmp_path, monkeypatch) -> None:
    """init=none with aux_data=<play>: every update gets a relabeled batch whose images are
    frames of the play data (checked against the dataset at the batch's frame indices)."""
    play = EpisodeDataset(data["play"])
    seen: list[int] = []
    update = TaskQAgent.update

    def spy(self, batch, aux_batch=None):
        assert aux_batch is not None, "the scratch run got no play-data batch"
        np.testing.assert_array_equal(aux_batch[K.OBS_IMAGE],
                                      play.images(aux_batch[K.FRAME_INDEX]))
        seen.append(len(aux_batch[K.FRAME_INDEX]))
        return update(self, batch, aux_batch)

    monkeypatch.setattr(TaskQAgent, "update", spy)
    summary = finetune(config(data, tmp_path / "ft", aux_data=str(data["play"])))
    assert seen == [8, 8, 8]
    assert summary["aux_data"] == str(data["play"].resolve()) and summary["parent"] is None
    assert summary["method"] == "task_q_from_scratch_aux"
    assert summary["init_weights"] == "nothing"
    # without aux_data a scratch run has no play data, and its name says so
    monkeypatch.setattr(TaskQAgent, "update", update)
    bare = finetune(config(data, tmp_path / "bare"))
    assert bare["aux_data"] is None and bare["method"] == "task_q_from_scratch"


def test_behaviour_cloning_learns_only_from_successful_episodes(data, tmp_path,
                                                                monkeypatch) -> None:
    grasp = EpisodeDataset(data["grasp"])
    good = successful_episodes(grasp)
    assert 0 < len(good) < grasp.num_episodes
    frames: list[np.ndarray] = []
    update = TaskBCAgent.update

    def spy(self, batch, aux_batch=None):
        assert aux_batch is None  # no unlabeled data: BC has no value to keep
        frames.append(batch[K.FRAME_INDEX])
        return update(self, batch, aux_batch)

    monkeypatch.setattr(TaskBCAgent, "update", spy)
    out = tmp_path / "bc"
    summary = finetune(config(data, out, method="bc", online_steps=2, updates_per_episode=2,
                              eval_episodes=1))
    assert summary["method"] == "task_bc_success_from_scratch"
    assert "calibration" not in summary and summary["online_episodes"] == 1
    episodes = grasp.episode_of(np.concatenate(frames))
    assert set(episodes.tolist()) <= set(good.tolist())
    agent, meta = load_agent(out)
    assert isinstance(agent, TaskBCAgent) and meta["agent"] == "task_bc"
    obs = np.zeros((16, 16, 3), np.uint8)
    action, q = agent_policy(agent)(obs, obs, np.zeros(5, np.float32))
    assert action.shape == (4,) and q is None


def test_behaviour_cloning_refuses_data_without_a_success(data, tmp_path) -> None:
    from goalrl.data.storage import DatasetWriter

    src = EpisodeDataset(data["grasp"])
    failed = [i for i in range(src.num_episodes) if i not in successful_episodes(src)]
    with DatasetWriter(tmp_path / "failed", image_shape=src.image_shape,
                       action_dim=src.action_dim, proprio_dim=src.proprio_dim,
                       goal_dim=src.meta["goal_dim"], state_dim=src.state_dim,
                       env_id=src.meta["env_id"]) as writer:
        for i in failed:
            writer.append(src.episode(i))
    with pytest.raises(DatasetError, match="no successful episodes' transitions"):
        finetune(config(data, tmp_path / "bc", method="bc", data=str(tmp_path / "failed")))


def test_gcbc_checkpoint_gives_the_task_q_its_encoder_and_bc_every_weight(data,
                                                                          tmp_path) -> None:
    gcbc_state, _ = load_checkpoint(data["gcbc"])
    policy = gcbc_state["agent"].get("policy_ema", gcbc_state["agent"]["policy"])
    frozen = TaskQConfig(num_negatives=4, am=AMConfig(), lr=0.0, z_lr=0.0)  # shape: from ckpt
    summary = finetune(config(data, tmp_path / "q", init=str(data["gcbc"]), steps=1,
                              agent=frozen))
    assert summary["init_agent"] == "gcbc" and summary["init_weights"] == "encoder"
    assert summary["method"] == "task_q_from_gcbc_encoder_aux"  # the GCBC run's play data
    q_state, meta = load_checkpoint(tmp_path / "q")
    assert meta["agent_config"]["am"]["encoder"]["embed_dim"] == 16
    for name, value in policy.items():
        if name.startswith("encoder."):
            torch.testing.assert_close(q_state["agent"]["q"][name], value, msg=name)
    # the Q heads are those of a fresh agent of the same seed (GCBC has none to give)
    fresh = TaskQAgent(TaskQConfig(am=AMConfig(encoder=TINY_ENCODER)), (16, 16, 3), 4, seed=0)
    heads = {k: v for k, v in fresh.q.state_dict().items() if k.startswith("q_head.")}
    assert heads
    for name, value in heads.items():
        torch.testing.assert_close(q_state["agent"]["q"][name], value, msg=name)
    frozen_bc = TaskBCConfig(lr=0.0, z_lr=0.0)
    summary = finetune(config(data, tmp_path / "bc", method="bc", init=str(data["gcbc"]),
                              steps=1, bc=frozen_bc))
    assert summary["method"] == "task_bc_success_from_gcbc"
    assert summary["init_weights"] == "all weights"
    assert summary["task_embedding_init"] == "success frames"
    bc_state, _ = load_checkpoint(tmp_path / "bc")
    for name, value in policy.items():
        torch.testing.assert_close(bc_state["agent"]["policy"][name], value, msg=name)


def test_inits_a_method_cannot_use_are_refused_by_name(data, tmp_path) -> None:
    with pytest.raises(TrainingError, match=r"meta.json: field 'agent' is 'am'; method=bc "
                                            r"fine-tunes from a Gaussian policy network"):
        finetune(config(data, tmp_path / "o", method="bc", init=str(data["am"])))
    wide = TaskQConfig(am=AMConfig(encoder=EncoderConfig(embed_dim=32)))
    with pytest.raises(TrainingError, match=r"'agent_config.encoder.embed_dim' is 16 but "
                                            r"agent.am.encoder.embed_dim=32"):
        finetune(config(data, tmp_path / "o", init=str(data["gcbc"]), agent=wide))
    with pytest.raises(TrainingError, match="method='dagger'"):
        finetune(config(data, tmp_path / "o", method="dagger"))
    assert not (tmp_path / "o").exists()


def test_the_dip_is_the_drop_below_the_switch_in_the_first_half_of_online() -> None:
    def curve(*points):
        return [{"step": s, "success_rate": r, "phase": p} for s, r, p in points]

    run = curve((0, 0.1, "init"), (10, 0.6, "offline"), (12, 0.5, "online"),
                (14, 0.3, "online"), (16, 0.1, "online"), (20, 0.7, "online"))
    assert switch_dip(run, 10, 10) == pytest.approx(0.3)  # step 16 is past the first half
    rise = curve((10, 0.2, "offline"), (12, 0.4, "online"))
    assert switch_dip(rise, 10, 10) == 0.0
    assert switch_dip(run, 10, 0) is None and switch_dip(run, 0, 20) is None


def test_summary_and_checkpoint_report_the_dip_and_the_method(data, tmp_path) -> None:
    summary = finetune(config(data, tmp_path / "ft", init=str(data["am"]), steps=2,
                              online_steps=2, updates_per_episode=2, eval_episodes=1,
                              eval_every=1))
    assert summary["dip_after_switch"] == switch_dip(summary["curve"], 2, 2)
    assert summary["dip_after_switch"] is not None
    meta = json.loads((resolve_checkpoint(tmp_path / "ft") / "meta.json").read_text())
    assert meta["method"] == summary["method"] == "task_q_from_am_aux"


@pytest.mark.parametrize("kind", ["gcivl", "gciql", "crl", "hiql", "qrl"])
def test_value_agents_give_the_task_q_their_policys_encoder(data, tmp_path, kind) -> None:
    """Fine-tuning from every value-based agent where it applies: its acting policy's encoder
    carries over (the value networks have no action head the task Q could reuse)."""
    from goalrl.agents.registry import CONFIG_CLASSES

    pre = tmp_path / kind
    pretrain(PretrainConfig(data=str(data["play"]), out=str(pre), steps=1, batch_size=8,
                            agent=CONFIG_CLASSES[kind](encoder=TINY_ENCODER, pad=2),
                            eval_episodes=0, videos=0, prefetch=1))
    state, _ = load_checkpoint(pre)
    policy = state["agent"].get("policy_ema", state["agent"]["policy"])
    frozen = TaskQConfig(num_negatives=4, lr=0.0, z_lr=0.0)
    summary = finetune(config(data, tmp_path / "ft", init=str(pre), steps=1, agent=frozen,
                              aux_data="none"))
    assert summary["method"] == f"task_q_from_{kind}_encoder"
    q_state, _ = load_checkpoint(tmp_path / "ft")
    for name, value in policy.items():
        if name.startswith("encoder."):
            torch.testing.assert_close(q_state["agent"]["q"][name], value, msg=name)
