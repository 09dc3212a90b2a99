"""Runs that cannot work are refused with one line naming the field, file or tensor, before
anything is trained or written (issue 39, defects 1, 6 and 7, training side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pretrain import TINY, config, reach_data  # noqa: F401  (reach_data: a fixture)

from goalrl.agents import AMConfig
from goalrl.agents.config import AgentConfigError
from goalrl.checkpoint import CheckpointError
from goalrl.data.storage import DatasetWriter, EpisodeData
from goalrl.errors import UserError
from goalrl.training import FinetuneConfig, TrainingError, finetune, pretrain


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [("save_every", 0, ">= 1"), ("log_every", 0, ">= 1"), ("eval_every", -1, ">= 0"),
     ("steps", 0, ">= 1"), ("steps", -5, ">= 1"), ("batch_size", 0, ">= 1"),
     ("progress_every", -1.0, "0 or more"), ("keep_last", -1, ">= 0"),
     ("eval_episodes", -2, ">= 0"), ("p_chain", 1.5, "between 0 and 1"),
     ("max_loss", float("nan"), "above 0")],
)
def test_bad_run_settings_are_refused_naming_the_field(
    reach_data, tmp_path, field, value, rule  # noqa: F811
) -> None:
    with pytest.raises(TrainingError, match=rf"^{field}={value!r}: must be .*{rule}"):
        pretrain(config(reach_data, tmp_path / "run", **{field: value}))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("save_every", 0), ("log_every", 0), ("updates_per_episode", 0), ("online_steps", -1),
     ("online_ratio", 2.0)],
)
def test_bad_finetune_settings_are_refused_naming_the_field(tmp_path, field, value) -> None:
    cfg = FinetuneConfig(init="none", data=str(tmp_path / "none"), out=str(tmp_path / "ft"),
                         **{field: value})
    with pytest.raises(TrainingError, match=rf"^{field}={value!r}: must be"):
        finetune(cfg)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"num_q_heads": 0}, r"agent.num_q_heads=0: must be a whole number >= 1"),
     ({"cem_elites": 65}, r"agent.cem_elites=65 is more than agent.cem_samples=64"),
     ({"act_cem_elites": 0}, r"agent.act_cem_elites=0: must be")],
)
def test_bad_agent_counts_are_one_line_not_an_index_error(
    reach_data, tmp_path, changes, message  # noqa: F811
) -> None:
    with pytest.raises(AgentConfigError, match=message) as caught:
        pretrain(config(reach_data, tmp_path / "run", agent=AMConfig(**TINY, **changes)))
    assert isinstance(caught.value, UserError)
    assert not (tmp_path / "run" / "checkpoints").exists()


def synthetic_dataset(path: Path, env_id: str, bound: float = 1.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with DatasetWriter(path, image_shape=(16, 16, 3), action_dim=4, env_id=env_id,
                       action_low=-bound, action_high=bound) as w:
        for _ in range(2):
            w.append(EpisodeData(images=rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8),
                                 actions=rng.uniform(-bound, bound, (4, 4)).astype(np.float32)))
    return path


def test_actions_outside_the_scene_box_are_refused_when_evaluating(tmp_path) -> None:
    data = synthetic_dataset(tmp_path / "push50", "goalrl/Push-v0", bound=50.0)
    with pytest.raises(TrainingError, match=r"push50/meta.json: field 'action_low'\[0\] is -50.0 "
                                            r"but scene goalrl/Push-v0 takes actions in \[-1.0, "
                                            r"1.0\]"):
        pretrain(config(data, tmp_path / "run", eval_episodes=1))
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.warns(UserWarning, match="field 'action_low'.*this run does not evaluate"):
        assert pretrain(config(data, tmp_path / "run", steps=2))["steps"] == 2


def test_resume_on_another_dataset_is_refused_naming_both(reach_data, tmp_path) -> None:  # noqa: F811
    pretrain(config(reach_data, tmp_path / "run", steps=3))
    other = synthetic_dataset(tmp_path / "other", "goalrl/Reach-v0")
    with pytest.raises(TrainingError, match=rf"trained on dataset {reach_data} \(fingerprint "
                                            rf"\w+\); data={other} is another dataset"):
        pretrain(config(other, tmp_path / "run", steps=6, resume=True))


def test_resume_from_a_crafted_optimiser_tensor_is_refused_by_name(
    reach_data, tmp_path  # noqa: F811
) -> None:
    from test_checkpoint import rewrite_tensor  # tests/test_checkpoint.py

    pretrain(config(reach_data, tmp_path / "run", steps=3))
    step_dir = tmp_path / "run" / "checkpoints" / "step_0000003"
    key = "agent/optimizer/state/0/exp_avg"
    rewrite_tensor(step_dir, key, lambda t: t.flatten()[:-1])  # the fused kernel would overrun
    with pytest.raises(CheckpointError, match=rf"{step_dir}: {key}: expected shape \[8, 3, 3, 3\] "
                                              r"dtype float32, found shape \[215\]"):
        pretrain(config(reach_data, tmp_path / "run", steps=6, resume=True))


@pytest.mark.parametrize("part", ["q", "z"])
def test_init_weights_that_do_not_fit_the_task_agent_are_refused_by_name(part) -> None:
    import torch

    from goalrl.agents.registry import build_agent
    from goalrl.agents.task_q import TaskQConfig
    from goalrl.training.finetune import Init, load_init_weights

    agent = build_agent("task", TaskQConfig(am=AMConfig(**TINY)), (16, 16, 3), 4, None, "cpu")
    state = {"q": {k: v.clone() for k, v in agent.q.state_dict().items()},
             "z": agent.z.detach().clone()}
    if part == "q":  # torch would cast a float64 weight silently
        key = next(iter(state["q"]))
        state["q"][key] = state["q"][key].double()
        found = rf"agent/q/{key}: expected shape .* dtype float32, found .* dtype float64"
    else:
        d = len(state["z"])
        state["z"] = torch.zeros(d + 1)
        found = rf"agent/z: expected shape \[{d}\] .*, found shape \[{d + 1}\]"
    with pytest.raises(CheckpointError, match=rf"^init checkpoint ckpt/step_1: {found}"):
        load_init_weights(agent, Init(agent.cfg, state, {}, "ckpt/step_1"))
