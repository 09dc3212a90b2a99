"""bench/ogbench_reference.py (goalrl's GCIVL/GCIQL against OGBench's reference agents): the
fixed batches, goalrl's side of the metric logging on a tiny generated dataset, the page, and
the runner's data layout. The reference side runs only where a JAX Python and OGBench's impls
are on this machine (never in CI)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_modules import load_bench

bench = load_bench("ogbench_reference")
runner = bench.load_runner()
JAX_PYTHON = Path("/tmp/jaxvenv/bin/python")
REFERENCE = Path("/tmp/ogbench-ref/impls")


def test_fixed_batch_goals_rewards_and_sources(tiny: dict) -> None:
    batch = tiny["fixed"]["train"]
    with np.load(tiny["data"]) as f:
        obs, terminals = f["observations"], f["terminals"]
    t, goal = batch["frame_index"], batch["goal_index"]
    np.testing.assert_array_equal(batch["observations"], obs[t])
    np.testing.assert_array_equal(batch["next_observations"], obs[t + 1])
    assert not terminals[t].any()  # o_t always has a next frame in its episode
    at_goal = goal == t
    np.testing.assert_array_equal(batch["rewards"], at_goal - 1.0)
    np.testing.assert_array_equal(batch["masks"], 1.0 - at_goal)
    source, offset = batch["goal_source"], batch["goal_offset"]
    np.testing.assert_array_equal(source == 0, at_goal)
    assert set(np.unique(source)) == {0, 1, 2}  # 64 draws of 0.2 / 0.5 / 0.3
    np.testing.assert_array_equal(offset[source == 1], (goal - t)[source == 1])
    assert (offset[source == 1] >= 1).all() and (offset[source != 1] == 0).all()
    assert (batch["actor_goal_index"] > t).all()  # actor goals: later frames only


def test_episode_layout_refuses_an_open_last_episode() -> None:
    starts, lengths = bench.episode_layout(np.array([0, 0, 1, 0, 1]))
    assert starts.tolist() == [0, 3] and lengths.tolist() == [3, 2]
    with pytest.raises(ValueError, match="last frame"):
        bench.episode_layout(np.array([0, 1, 0]))


def test_imported_frames_are_the_raw_observations(tiny: dict, tmp_path: Path) -> None:
    bench.check_same_frames(tiny["dataset_dir"], tiny["data"])  # returns quietly
    shifted = tmp_path / "shifted.npz"
    with np.load(tiny["data"]) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["observations"] = arrays["observations"] + 1.0
    np.savez(shifted, **arrays)
    with pytest.raises(SystemExit, match="differ"):
        bench.check_same_frames(tiny["dataset_dir"], shifted)


@pytest.mark.parametrize("kind", ["gcivl", "gciql"])
def test_goalrl_side_logs_every_metric_on_both_batches(tiny: dict, kind: str) -> None:
    result = bench.train_goalrl(kind, tiny["dataset_dir"], tiny["fixed"], updates=5,
                                batch_size=16, log_every=2, seed=0)
    assert [row["step"] for row in result["log"]] == [0, 2, 4, 5]
    for row in result["log"]:
        for split in ("train", "val"):
            assert set(row[split]) == set(bench.METRICS[kind])
            # v_random etc. may be nan only where the batch has no such goal; 64 draws have all
            assert all(math.isfinite(v) for v in row[split].values()), row[split]
    first, last = result["log"][0]["train"], result["log"][-1]["train"]
    assert first["v_mean"] != last["v_mean"]  # the updates moved the value
    assert result["updates_per_s"] > 0
    assert result["config"]["alpha"] == {"gcivl": 10.0, "gciql": 1.0}[kind]


def test_goalrl_actor_std_is_fixed_at_one_like_ogbench(tiny: dict) -> None:
    import torch

    from goalrl.agents.registry import build_agent

    cfg = bench.goalrl_config("gciql", 28)
    agent = build_agent("gciql", cfg, (8, 8, 3), 5, None, "cpu", seed=0)
    obs = torch.as_tensor(tiny["fixed"]["train"]["observations"])
    _, log_std = agent.policy(obs, obs)
    assert torch.equal(log_std, torch.zeros_like(log_std))


def test_value_summary_correlation_ranks_goal_distance() -> None:
    offset = np.array([0, 5, 10, 50, 100, 0])
    source = np.array([0, 1, 1, 1, 1, 2])
    ideal = -(1 - 0.99 ** offset) / 0.01
    out = runner.value_summary(ideal.astype(np.float32), {"goal_source": source,
                                                         "goal_offset": offset})
    assert out["v_future_corr"] == pytest.approx(1.0)
    assert out["v_current"] == 0.0 and out["v_random"] == 0.0
    flipped = runner.value_summary(-ideal, {"goal_source": source, "goal_offset": offset})
    assert flipped["v_future_corr"] == pytest.approx(-1.0)


def test_runner_layout_is_ogbench_load_dataset(tiny: dict) -> None:
    ogbench_utils = pytest.importorskip("ogbench.utils")
    ours = runner.regular_dataset(tiny["data"])
    theirs = ogbench_utils.load_dataset(str(tiny["data"]), compact_dataset=False)
    for key in ("observations", "next_observations", "actions", "terminals"):
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_page_puts_both_sides_in_each_cell() -> None:
    row = {"step": 0, "train": {"v_mean": -1.5}, "val": {"v_mean": -2.0}}
    ref = {"step": 0, "train": {"v_mean": -3.25}, "val": {"v_mean": float("nan")}}
    side = {"updates_per_s": 9.5, "log": [row]}
    report = {"command": "python bench/ogbench_reference.py", "date": "d", "machine": "m",
              "data": {"train": "a.npz", "val": "a-val.npz", "train_file_sha256": "0" * 64,
                       "val_file_sha256": "1" * 64,
                       "generator": {"files": {"train": {"content_sha256": "2" * 64}}}},
              "reference": "fork@commit", "reference_versions": "jax x", "updates": 1,
              "batch": 2, "seed": 0, "eval_batch": 3,
              "agents": {"gcivl": {"goalrl": side,
                                   "ogbench": {"updates_per_s": 15.0, "log": [ref]}}}}
    page = bench.render(report, "## Findings\n\nhand-written")
    assert "| -1.5 / -3.25 |" in page and "| -2 / - |" in page
    assert "| gcivl | 9.5 | 15 |" in page and "train `2222222222222222...`" in page
    assert page.rstrip().endswith("hand-written")


def saved_report(command: str, agents: dict, **settings: object) -> dict:
    """A report as main writes it, with only the fields the merge reads."""
    base = {"data": {"train_file_sha256": "0" * 64}, "reference": "fork@commit",
            "reference_versions": "jax x", "goalrl_alpha": None, "updates": 4000, "batch": 256,
            "seed": 0, "eval_batch": 1024}
    return {"command": command, "date": f"{command} date", "machine": "m", **base, **settings,
            "agents": agents}


def test_merge_keeps_the_agents_not_rerun_and_says_which_run_each_came_from() -> None:
    old = saved_report("first", {"gcivl": {"goalrl": "old gcivl"},
                                 "gciql": {"goalrl": "old gciql"}})
    new = saved_report("second", {"gcivl": {"goalrl": "new gcivl"}, "crl": {"goalrl": "crl"}})
    merged = bench.merge_reports(old, new)
    assert list(merged["agents"]) == ["gcivl", "gciql", "crl"]  # rerun in place, new last
    assert merged["agents"]["gcivl"]["goalrl"] == "new gcivl"
    assert merged["agents"]["gciql"]["goalrl"] == "old gciql"
    assert merged["agents"]["gcivl"]["run"]["command"] == "second"
    assert merged["agents"]["gciql"]["run"] == {"command": "first", "date": "first date",
                                                "machine": "m"}
    assert merged["command"] == "second"  # the page's header names the latest run
    # merging again keeps each kept agent's own run, not the saved report's header
    again = bench.merge_reports(merged, saved_report("third", {"gcivl": {"goalrl": "3rd"}}))
    assert again["agents"]["gciql"]["run"]["command"] == "first"
    assert again["agents"]["gcivl"]["run"]["command"] == "third"


@pytest.mark.parametrize("change", [{"updates": 3000}, {"seed": 1}, {"goalrl_alpha": 0.0},
                                    {"data": {"train_file_sha256": "f" * 64}}])
def test_merge_refuses_a_run_on_other_data_or_settings(change: dict) -> None:
    old = saved_report("first", {"gciql": {"goalrl": "old"}})
    new = saved_report("second", {"gcivl": {"goalrl": "new"}}, **change)
    assert bench.merge_conflicts(old, new) == list(change)
    with pytest.raises(ValueError, match=f"differs in {next(iter(change))}"):
        bench.merge_reports(old, new)


def test_merged_page_names_each_agents_run() -> None:
    row = {"step": 0, "train": {}, "val": {}}
    side = {"updates_per_s": 1.0, "log": [row]}
    old = saved_report("cmd-one", {"gciql": {"goalrl": side}}, updates=0,
                       data={"train": "a", "val": "b", "train_file_sha256": "0" * 64,
                             "val_file_sha256": "1" * 64})
    new = {**old, "command": "cmd-two", "date": "cmd-two date",
           "agents": {"gcivl": {"goalrl": side}}}
    page = bench.render(bench.merge_reports(old, new))
    assert "- gcivl from `cmd-two` on cmd-two date (m)" in page
    assert "- gciql from `cmd-one` on cmd-one date (m)" in page
    assert "from `" not in bench.render(new)  # one run: the header alone


def test_merge_refuses_before_training(generated: dict, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    data = Path(generated["path"])
    args = ["--reference", str(tmp_path), "--jax-python", sys.executable, "--data", str(data),
            "--out", str(tmp_path / "page"), "--workdir", str(tmp_path / "work"), "--merge"]
    with pytest.raises(SystemExit):  # no saved report to merge into
        bench.main(args)
    assert "page.json does not exist" in capsys.readouterr().err
    settings = {"data": bench.data_record(data), "reference": str(tmp_path),
                "updates": 3000, "batch": 256, "seed": 0, "eval_batch": 1024}
    (tmp_path / "page.json").write_text(json.dumps(saved_report("x", {}, **settings)))
    with pytest.raises(SystemExit):  # saved at 3000 updates, asked for 10
        bench.main([*args, "--updates", "10"])
    assert "differs in updates" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()  # refused before any work


@pytest.mark.skipif(not (JAX_PYTHON.is_file() and (REFERENCE / "agents").is_dir()),
                    reason="needs /tmp/jaxvenv and OGBench's impls in /tmp/ogbench-ref")
def test_reference_side_logs_the_same_metrics(tiny: dict, tmp_path: Path) -> None:
    fixed_path = tmp_path / "fixed.npz"
    np.savez(fixed_path, **{f"{s}/{k}": v for s, b in tiny["fixed"].items() for k, v in b.items()})
    out = tmp_path / "ref.json"
    subprocess.run([str(JAX_PYTHON), str(bench.RUNNER), "--reference", str(REFERENCE),
                    "--agent", "gciql", "--data", str(tiny["data"]), "--fixed", str(fixed_path),
                    "--updates", "2", "--batch", "8", "--log-every", "1", "--out", str(out)],
                   check=True, env={**bench.ONE_THREAD_ENV, "PATH": "/usr/bin:/bin"},
                   stdout=sys.stderr)
    result = json.loads(out.read_text())
    assert [row["step"] for row in result["log"]] == [0, 1, 2]
    assert set(result["log"][-1]["val"]) == set(bench.METRICS["gciql"])
    assert result["config"]["alpha"] == 1.0 and result["config"]["batch_size"] == 8
