"""``goalrl collect policy=grasp``, ``goalrl finetune`` and ``goalrl eval`` on its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import last_json, run_goalrl

from goalrl.data.storage import DatasetWriter, EpisodeData, EpisodeDataset

TINY = [
    "agent.am.encoder.conv_channels=[8,8]",
    "agent.am.encoder.embed_dim=16",
    "agent.am.encoder.fusion_dim=32",
    "agent.am.head_hidden_dim=16",
    "agent.am.act_cem_samples=32",
    "agent.am.act_cem_elites=4",
    "agent.num_negatives=4",
]


def test_collect_grasp_finetune_from_scratch_and_eval(tmp_path: Path) -> None:
    data = tmp_path / "grasp"
    collected = last_json(run_goalrl(
        "collect", "env=goalrl/Grasp-v0", "policy=grasp", "episodes=2", "image_size=16",
        f"out={data}",
    ))
    assert collected["skills"]["pick_place"]["attempts"] == 2  # one grasp attempt per episode
    ds = EpisodeDataset(data)
    assert ds.rewards is not None and ds.success is not None

    out = tmp_path / "ft"
    summary = last_json(run_goalrl(
        "finetune", "init=none", "task=goalrl/Grasp-v0", f"data={data}", f"out={out}",
        "steps=2", "online_steps=2", "updates_per_episode=2", "batch_size=8",
        "eval_episodes=1", "videos=0", "agent.calibration=calql", *TINY,
    ))
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["parent"] is None and summary["calibration"] == "calql"
    assert summary["online_episodes"] == 1 and summary["success_final"] is not None

    result = last_json(run_goalrl(
        "eval", f"ckpt={out}", "episodes=1", "videos=0", f"out={tmp_path / 'eval'}",
    ))
    assert result["env"] == "goalrl/Grasp-v0" and result["step"] == 4
    # summary.json is written without videos too (videos=0 used to leave no folder for it)
    assert json.loads((tmp_path / "eval" / "summary.json").read_text()) == result
    assert 0.0 <= result["success_rate"] <= 1.0


def test_finetune_help_and_refusals(tmp_path: Path) -> None:
    fields = run_goalrl("finetune", "--help").stdout
    for name in ("init", "online_steps", "online_ratio", "aux_weight", "calibration"):
        assert name in fields
    data = tmp_path / "labeled"
    with DatasetWriter(data, image_shape=(16, 16, 3), action_dim=4,
                       env_id="goalrl/Grasp-v0") as w:
        w.append(EpisodeData(images=np.zeros((3, 16, 16, 3), np.uint8),
                             actions=np.zeros((2, 4), np.float32),
                             rewards=np.array([0, 1], np.float32)))
    proc = run_goalrl(
        "finetune", f"init={tmp_path / 'nope'}", f"data={data}", f"out={tmp_path / 'o'}",
        check=False,
    )
    assert proc.returncode != 0
    assert f"checkpoint {tmp_path / 'nope'} does not exist" in proc.stderr
    assert not (tmp_path / "o").exists()
    # the removed rule's switch is refused by name, pointing at its replacement
    proc = run_goalrl("finetune", "init=none", f"data={data}", f"out={tmp_path / 'o'}",
                      "agent.calibrate=true", check=False)
    assert proc.returncode == 2 and "'calibrate'" in proc.stderr and "calibration" in proc.stderr


def test_recipes_set_the_method_and_the_scratch_baseline_needs_the_play_data(
    tmp_path: Path,
) -> None:
    help_text = run_goalrl("finetune", "--help").stdout
    assert "recipe: bc_gcbc_init | bc_success | gcbc_init | pretrained | scratch_play" in help_text
    job = run_goalrl("finetune", "recipe=bc_success", "data=x", "--cfg", "job").stdout
    assert "method: bc" in job and "init: none" in job and "recipe: bc_success" in job
    data = tmp_path / "labeled"
    with DatasetWriter(data, image_shape=(16, 16, 3), action_dim=4,
                       env_id="goalrl/Grasp-v0") as w:
        w.append(EpisodeData(images=np.zeros((3, 16, 16, 3), np.uint8),
                             actions=np.zeros((2, 4), np.float32),
                             rewards=np.array([0, 1], np.float32)))
    proc = run_goalrl("finetune", "recipe=scratch_play", f"data={data}",
                      f"out={tmp_path / 'o'}", check=False)
    assert proc.returncode == 2 and "recipe=scratch_play" in proc.stderr
    assert "aux_data=<dataset folder>" in proc.stderr and not (tmp_path / "o").exists()
