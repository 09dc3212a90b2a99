"""goalrl eval env=ogbench:<name>: OGBench's evaluation tasks by its protocol."""

from __future__ import annotations

import numpy as np
import pytest

from goalrl.errors import UserError
from goalrl.evaluate import Rollout


def pretrain_gcbc(data, out, kind: str) -> str:
    """A tiny GCBC trained 3 updates on ``data``; its run folder."""
    from goalrl.agents import EncoderConfig, GCBCConfig
    from goalrl.training import PretrainConfig, pretrain

    encoder = (EncoderConfig(kind="state", state_hidden=[16, 16], embed_dim=8, fusion_dim=16)
               if kind == "state" else EncoderConfig(conv_channels=[4, 4], embed_dim=8,
                                                     fusion_dim=16))
    pretrain(PretrainConfig(
        data=str(data), out=str(out), agent=GCBCConfig(encoder=encoder), steps=3,
        batch_size=8, eval_episodes=0, eval_every=0, videos=0, save_every=3, log_every=1,
        prefetch=1, device="cpu", threads=1))
    return str(out)


def test_one_task_end_to_end_into_the_results_store(generated, tmp_path) -> None:
    from goalrl.commands.evaluate import EvalConfig, run
    from goalrl.data.importers import import_dataset
    from goalrl.results import read_rows

    import_dataset(generated["path"], "ogbench", tmp_path / "data")
    run_dir = pretrain_gcbc(tmp_path / "data", tmp_path / "run", "state")
    store = tmp_path / "results.jsonl"
    # env unset: the checkpoint's dataset names ogbench:cube-single-v0
    summary = run(EvalConfig(ckpt=run_dir, goals="task1", episodes=2, videos=0, seed=5,
                             out=str(tmp_path / "eval"), results=str(store),
                             env_kwargs={"max_episode_steps": 15}))
    assert summary["env"] == "ogbench:cube-single-v0" and summary["protocol"] == "ogbench"
    assert list(summary["by_task"]) == ["task1"]
    task = summary["by_task"]["task1"]
    assert task["name"] == "task1_horizontal" and task["episodes"] == 2
    assert summary["success_rate"] == task["success_rate"]
    assert [r["seed"] for r in summary["rollouts"]] == [5, 6]
    assert all(r["steps"] <= 15 for r in summary["rollouts"])
    rows = read_rows(store)
    assert [(r["task"], r["goal_split"], r["env"], r["method"]) for r in rows] == [
        ("task1", "ogbench", "ogbench:cube-single-v0", "gcbc")] * 2


def test_goal_is_the_task_goal_observation_and_actions_are_clipped(monkeypatch) -> None:
    pytest.importorskip("ogbench")
    from goalrl.ogbench.evaluate import evaluate_ogbench

    seen = []

    def policy(obs, goal, proprio):
        seen.append((obs.copy(), goal.copy()))
        return np.full(5, 7.0), None  # far outside the box: must reach the env as 1.0

    summary = evaluate_ogbench("cube-single-v0", policy, 1, observation="state", image_size=8,
                               goals="task1", env_kwargs={"max_episode_steps": 3},
                               progress=False)
    assert summary["rollouts"][0]["steps"] == 3 and len(seen) == 3
    goal = seen[0][1]
    assert goal.shape == (28,) and all(np.array_equal(g, goal) for _, g in seen)
    # OGBench's state: cube xyz at [19:22], centred on (0.425, 0, 0) and scaled by 10; task1
    # puts the goal cube at (0.425, -0.1, 0.02), the start cube near (0.425, 0.1, 0.02)
    np.testing.assert_allclose(goal[19:22] / 10 + [0.425, 0, 0], [0.425, -0.1, 0.02], atol=0.01)
    assert abs(seen[0][0][20] / 10 - 0.1) < 0.02
    # the arm moved by +1 actions (clipped): the effector's x rose between the first steps
    assert seen[2][0][12] > seen[0][0][12]


def test_overall_success_is_the_mean_of_task_rates() -> None:
    from goalrl.ogbench.evaluate import summarize_tasks

    rollouts = [Rollout(seed=i, success=s, final_distance=0.0, steps=1, task=t,
                        goal_split="ogbench")
                for i, (t, s) in enumerate([("task1", True), ("task1", False),
                                            ("task2", False), ("task2", False)])]
    infos = [{"task_name": "a"}, {"task_name": "b"}]
    summary = summarize_tasks("cube-single-v0", rollouts, infos)
    assert summary["success_rate"] == 0.25
    assert summary["by_task"]["task1"] == {"successes": 1, "episodes": 2, "name": "a",
                                           "success_rate": 0.5}


def test_mismatches_are_refused_by_name() -> None:
    from goalrl.ogbench.evaluate import check_observation, ogbench_env_of, task_ids

    assert task_ids(None, 5) == [1, 2, 3, 4, 5] and task_ids("task3", 5) == [3]
    with pytest.raises(UserError, match="task1..task5"):
        task_ids("val", 5)
    with pytest.raises(UserError, match="observes pixels"):
        check_observation("visual-cube-single-v0", np.zeros((64, 64, 3), np.uint8), "state",
                          28, "ck")
    with pytest.raises(UserError, match="reads 40-d states.*observes 28-d"):
        check_observation("cube-single-v0", np.zeros(28), "state", 40, "ck")
    meta = {"env_id": "ogbench:cube-single-v0"}
    assert ogbench_env_of(None, meta, "ck") == "cube-single-v0"
    assert ogbench_env_of("ogbench:visual-cube-single-v0", meta, "ck") == "visual-cube-single-v0"
    with pytest.raises(UserError, match="cube-double-v0"):
        ogbench_env_of("ogbench:cube-double-v0", meta, "ck")


def test_pixel_env_generate_import_train_eval(tmp_path) -> None:
    """visual-cube-single end to end, where this machine renders off-screen (MUJOCO_GL)."""
    pytest.importorskip("ogbench")
    from goalrl.commands.evaluate import EvalConfig, run
    from goalrl.data.importers import import_dataset
    from goalrl.ogbench import make_env, quiet_reset
    from goalrl.ogbench.evaluate import renderer_error
    from goalrl.ogbench.generate import GenerateSettings, generate_dataset

    env = make_env("cube-single-v0")
    quiet_reset(env, seed=0)
    reason = renderer_error(env)
    env.close()
    if reason:
        pytest.skip(f"no off-screen renderer here: {reason}")
    src = tmp_path / "visual-cube-single-play-v0.npz"
    generate_dataset(src, GenerateSettings(env="visual-cube-single-v0", episodes=1,
                                           val_episodes=0, max_episode_steps=8), progress=False)
    assert np.load(src)["observations"].shape == (8, 64, 64, 3)
    imported = import_dataset(src, "ogbench", tmp_path / "data", image_size=16)
    assert imported["observation"] == "pixels" and imported["image_size"] == 16
    run_dir = pretrain_gcbc(tmp_path / "data", tmp_path / "run", "image")
    summary = run(EvalConfig(ckpt=run_dir, goals="task2", episodes=1, videos=1,
                             out=str(tmp_path / "eval"), env_kwargs={"max_episode_steps": 3}))
    assert summary["env"] == "ogbench:visual-cube-single-v0"
    assert summary["rollouts"][0]["steps"] == 3 and len(summary["videos"]) == 1
