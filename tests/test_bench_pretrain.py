"""bench/pretrain.py: synthetic batches train the default agents; report tables; the train-only
and evaluate parts; the privileged-state reference learner."""

from __future__ import annotations

import numpy as np
from bench_modules import load_bench

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig

bench_pretrain = load_bench("pretrain")


def test_synthetic_batch_updates_default_am_and_gcbc() -> None:
    batch = bench_pretrain.synthetic_batch(np.random.default_rng(0), 4, 16)
    tiny = {"encoder": {"conv_channels": [8, 8], "embed_dim": 8, "fusion_dim": 16}}
    am = AMAgent(AMConfig.from_dict({**tiny, "head_hidden_dim": 8, "cem_samples": 8,
                                     "cem_elites": 2}), (16, 16, 3), bench_pretrain.ACTION_DIM)
    assert np.isfinite(am.update(batch)["critic/loss"])  # default AM: mc_floor reads offsets
    gcbc = GCBCAgent(GCBCConfig.from_dict(tiny), (16, 16, 3), bench_pretrain.ACTION_DIM)
    assert all(np.isfinite(v) for v in gcbc.update(batch).values())


def test_success_table_shows_the_median_only_when_runs_recorded_it() -> None:
    import copy
    import json

    res = json.loads((bench_pretrain.DOCS / "pretrain_success_cpu.json").read_text())
    for r in res["runs"]:
        r.pop("median_final_distance", None)

    def table(result: dict) -> list[str]:
        lines = bench_pretrain.success_section("pretrain_success_cpu", result)
        return [ln for ln in lines if ln.startswith("| scene") or ln.startswith("|-")
                or ln.startswith("| push") or ln.startswith("| rearrange")]

    old = table(res)
    assert "median" not in old[0]
    with_median = copy.deepcopy(res)
    with_median["runs"][0]["median_final_distance"] = 0.0625
    new = table(with_median)
    assert "median (m)" in new[0] and "| 0.062 |" in new[2]
    for rows in (old, new):  # every row has as many cells as the header
        assert len({row.count("|") for row in rows}) == 1


def test_train_only_then_evaluate_elsewhere(tmp_path) -> None:
    """The GPU-node path: train without evaluating, then evaluate the shared checkpoint step."""
    import json
    import subprocess
    import sys

    from goalrl.commands.collect import CollectConfig, collect

    data = tmp_path / "push"
    collect(CollectConfig(env="goalrl/Push-v0", episodes=3, out=str(data), image_size=64,
                          sheet=False))
    script = str(bench_pretrain.REPO / "bench" / "pretrain.py")
    common = ["--profile", "smoke", "--scenes", "push", "--methods", "AM;GCBC",
              "--data", f"push={data}", "--workdir", str(tmp_path / "work"), "--jobs", "1"]
    subprocess.run([sys.executable, script, "success", "--train-only", *common], check=True)
    trained = json.loads((tmp_path / "work" / "trained_smoke.json").read_text())
    assert [r["method"] for r in trained["runs"]] == ["AM", "GCBC"]
    assert all(r["steps"] == 20 for r in trained["runs"])
    assert trained["config"]["episodes"] == {"push": 3}
    out = subprocess.run([sys.executable, script, "evaluate", "--no-save", *common],
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith('{"scene"')]
    assert [(r["method"], r["steps"]) for r in rows] == [("AM", 20), ("GCBC", 20)]
    assert all(0.0 <= r["success_rate"] <= 1.0 for r in rows)


def test_given_data_names_the_bad_item(tmp_path) -> None:
    import pytest

    with pytest.raises(SystemExit, match="'push=/no/such/dataset' is not SCENE=DATASET_DIR"):
        bench_pretrain.given_data("push=/no/such/dataset")
    with pytest.raises(SystemExit, match="'kitchen=.*' is not"):
        bench_pretrain.given_data(f"kitchen={tmp_path}")


def test_update_rate_is_read_off_tensorboard_wall_times(tmp_path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    for i, step in enumerate(range(100, 1100, 100)):  # 100 updates every 2 s: 50 updates/s
        writer.add_scalar("critic/loss", 1.0, step, walltime=1000.0 + 2.0 * i)
    writer.close()
    assert abs(bench_pretrain.tb_updates_per_s(tmp_path) - 50.0) < 1e-6


def test_shared_step_is_the_last_step_every_run_saved(tmp_path) -> None:
    for run, steps in {"a": (5000, 10000, 15000), "b": (5000, 10000), "c": (10000, 20000)}.items():
        for step in steps:
            (tmp_path / run / "checkpoints" / f"step_{step:07d}").mkdir(parents=True)
    runs = [tmp_path / r for r in "abc"]
    assert bench_pretrain.shared_step(runs) == 10000
    assert bench_pretrain.shared_step(runs[:1]) == 15000
    assert bench_pretrain.shared_step([tmp_path / "a", tmp_path / "missing"]) is None


def test_update_overhead_splits_an_update_into_its_phases() -> None:
    import torch

    overhead = load_bench("update_overhead")
    real_tolist = torch.Tensor.tolist
    for kind in ("am", "gcbc"):
        row = overhead.measure(kind, batch_size=2, image=16, updates=2)
        assert row["aten_ops"] > 100
        for phase in ("optimiser", "backward", "averaging", "clipping"):
            assert row[phase] > 0.0, (kind, phase)  # each phase was found in the profile
        assert row["rest"] >= 0.0  # no phase counted twice
        assert row["host_reads"] == 0  # stats stay on the device until read
        assert "| " + kind + " | cpu | 2 | 16 |" in "\n".join(overhead.table([row]))
    with overhead.host_reads_mode() as counter:
        torch.zeros(3).tolist()
        float(torch.ones(()))
        torch.ones(2) + 1  # stays a tensor: no read
    assert counter.reads == 2
    assert torch.Tensor.tolist is real_tolist  # the wrapper is removed on exit


def test_speed_report_shows_cuda_graph_rows_and_their_failures() -> None:
    import json

    res = json.loads((bench_pretrain.DOCS / "pretrain_speed_cuda_1threads.json").read_text())
    plain = "\n".join(bench_pretrain.speed_section("x", res))
    assert "CUDA graph" not in plain  # a result without graph rows renders as before
    res["rows"][1].update(am_graph_ups=250.0, gcbc_graph_error="RuntimeError: capture failed")
    text = "\n".join(bench_pretrain.speed_section("x", res))
    assert "| 256 | 250.0 | failed: RuntimeError: capture failed |" in text
    verdicts = "\n".join(bench_pretrain.speed_verdicts(res))
    assert "CUDA graph: 250 updates/s (target 200): **met**" in verdicts


def test_update_overhead_ab_section_lists_every_round() -> None:
    overhead = load_bench("update_overhead")
    ab = {"against": "abc", "head": "def", "rounds": 2, "batch": 2, "updates": 3, "date": "d",
          "times": {"before": {"am": [10.0, 12.0]}, "after": {"am": [8.0, 9.5]}}}
    text = "\n".join(overhead.report([ab]))
    assert "## A/B against abc" in text
    assert "| am | 11.0 ms | 8.8 ms | 10.0 / 8.0, 12.0 / 9.5 |" in text


def _push_dataset(root):
    """Two short random-action Push episodes with proprio and object positions."""
    import gymnasium as gym

    import goalrl  # noqa: F401  (registers the scenes)
    from goalrl.data.recording import record_rollout
    from goalrl.data.storage import DatasetWriter, EpisodeDataset

    env = gym.make("goalrl/Push-v0", image_size=16, max_episode_steps=6)
    rng = np.random.default_rng(0)
    with DatasetWriter(root, image_shape=(16, 16, 3), action_dim=4, proprio_dim=5, goal_dim=3,
                       env_id="goalrl/Push-v0", durable=False) as writer:
        for seed in range(2):
            episode, _ = record_rollout(
                env, lambda obs: rng.uniform(-1, 1, 4).astype(np.float32), seed
            )
            writer.append(episode)
    env.close()
    return EpisodeDataset(root)


def test_state_reference_reads_the_same_features_from_data_and_env(tmp_path) -> None:
    """The privileged-state GCBC row: features from a dataset match the simulator's."""
    import gymnasium as gym

    with _push_dataset(tmp_path / "push") as ds:
        states, goals = bench_pretrain.state_features(ds)
        net = bench_pretrain.train_state_gcbc(ds, steps=3, batch_size=8)
    assert states.shape == (ds.num_frames, 5 + 3) and goals.shape == (ds.num_frames, 3 + 3)
    env = gym.make("goalrl/Push-v0", image_size=16)
    u = env.unwrapped
    obs, _ = env.reset(seed=0)  # the dataset's first episode starts here
    np.testing.assert_allclose(states[0], np.concatenate([obs["observation"],
                                                          obs["achieved_goal"]]), atol=1e-6)
    # the env's goal is built like a goal frame: pictured tcp, then the objects
    np.testing.assert_allclose(bench_pretrain.goal_features(u)[:3], u.goal_layout.tcp, atol=1e-6)
    np.testing.assert_allclose(bench_pretrain.goal_features(u)[3:], obs["desired_goal"])
    action, _ = bench_pretrain.state_policy(net, u)(obs["image"], None, None)
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
    env.close()
    summary = bench_pretrain.evaluate_state_gcbc(net, "goalrl/Push-v0", episodes=1, image_size=16)
    assert summary["episodes"] == 1 and summary["seeds"] == [1_000_000, 1_000_000]


def test_state_reference_refuses_data_without_state(tmp_path) -> None:
    import pytest

    from goalrl.data.storage import DatasetWriter, EpisodeData, EpisodeDataset

    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "plain", image_shape=(16, 16, 3), action_dim=4,
                       durable=False) as writer:
        writer.append(EpisodeData(images=rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8),
                                  actions=rng.uniform(-1, 1, (3, 4)).astype(np.float32)))
    with EpisodeDataset(tmp_path / "plain") as ds, pytest.raises(ValueError, match="plain"):
        bench_pretrain.train_state_gcbc(ds, steps=1, batch_size=2)
