"""bench/ogbench_reference_agents.py (CRL, HIQL and QRL in the OGBench reference check): the
contrastive losses, the rows each agent's losses are read on, HIQL's subgoals in the fixed
batches, goalrl's configs and metric logging on a tiny generated file. The reference side runs
only where a JAX Python and OGBench's impls (with crl.py, hiql.py, qrl.py) are on this machine."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bench_modules import load_bench

bench = load_bench("ogbench_reference")
agents = bench.EXTRA
runner = bench.load_runner()
JAX_PYTHON = Path("/tmp/jaxvenv/bin/python")
REFERENCE = Path("/tmp/ogbench-ref/impls")


def test_contrastive_losses_of_known_logits() -> None:
    b = 4
    flat = agents.contrastive_summary(np.zeros((2, b, b)))
    assert flat["infonce"] == pytest.approx(math.log(b))  # uniform over the row
    assert flat["binary_nce"] == pytest.approx(math.log(2.0))  # sigmoid(0) = 1/2 everywhere
    sharp = np.stack([np.eye(b) * 40.0 - 20.0] * 2)  # positive +20, negatives -20
    right = agents.contrastive_summary(sharp)
    assert right["infonce"] < 1e-6 and right["binary_nce"] < 1e-6
    assert right["accuracy"] == 1.0
    # the positive ranked last in every row: accuracy 0, both losses large
    wrong = agents.contrastive_summary(-sharp)
    assert wrong["accuracy"] == 0.0 and wrong["infonce"] > 10 and wrong["binary_nce"] > 5


def test_binary_nce_is_the_mean_sigmoid_cross_entropy() -> None:
    logits = np.random.default_rng(0).normal(size=(2, 5, 5)) * 3
    labels = np.eye(5)
    p = 1 / (1 + np.exp(-logits))
    expected = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean()
    assert agents.contrastive_summary(logits)["binary_nce"] == pytest.approx(expected)


def test_losses_are_read_on_each_agents_training_goals() -> None:
    batch = {"goal_source": np.array([0, 1, 2, 1, 2, 0])}
    assert agents.training_rows("crl", batch).tolist() == [1, 3]  # future goals
    assert agents.training_rows("qrl", batch).tolist() == [2, 4]  # random goals
    assert agents.training_rows("hiql", batch).tolist() == list(range(6))  # the mixture


def test_subgoals_are_ten_steps_ahead_capped_at_the_actor_goal(tiny: dict) -> None:
    batch = tiny["fixed"]["train"]
    with np.load(tiny["data"]) as f:
        obs, terminals = f["observations"], f["terminals"]
    t, actor_goal, sub = batch["frame_index"], batch["actor_goal_index"], batch["subgoal_index"]
    np.testing.assert_array_equal(sub, np.minimum(t + agents.SUBGOAL_STEPS, actor_goal))
    np.testing.assert_array_equal(batch["subgoals"], obs[sub])
    ends = np.flatnonzero(terminals > 0)
    assert (np.searchsorted(ends, sub) == np.searchsorted(ends, t)).all()  # same episode


def test_goalrl_configs_carry_ogbenchs_cube_single_settings() -> None:
    crl, hiql, qrl = (bench.goalrl_config(kind, 28) for kind in agents.AGENTS)
    assert (crl.alpha, crl.rep_dim, crl.num_heads, crl.head_hidden_dim) == (3.0, 512, 2, 512)
    assert (crl.value_goals.p_future, crl.actor_goals.future) == (1.0, "uniform")
    assert (hiql.alpha, hiql.high_alpha, hiql.subgoal_steps) == (3.0, 3.0, 10)
    assert (hiql.expectile, hiql.tau, hiql.value_goals.p_random) == (0.7, 0.005, 0.3)
    assert (qrl.alpha, qrl.actor_loss, qrl.latent_dim, qrl.iqe_dim) == (0.3, "ddpgbc", 512, 8)
    assert (qrl.push_offset, qrl.push_scale, qrl.epsilon) == (500.0, 100.0, 0.05)
    assert qrl.value_goals.p_random == 1.0
    for cfg in (crl, hiql, qrl):  # the settings every agent shares with the reference
        assert (cfg.lr, cfg.gamma, cfg.log_std_min, cfg.log_std_max) == (3e-4, 0.99, 0.0, 0.0)
        assert (cfg.encoder.embed_dim, cfg.augment) == (512, False)
    assert agents.REFERENCE_OVERRIDES == {
        "crl": {"alpha": 3.0}, "hiql": {"low_alpha": 3.0, "high_alpha": 3.0, "subgoal_steps": 10},
        "qrl": {"alpha": 0.3}}


@pytest.mark.parametrize("kind", agents.AGENTS)
def test_goalrl_side_logs_every_metric_on_both_batches(tiny: dict, kind: str) -> None:
    result = bench.train_goalrl(kind, tiny["dataset_dir"], tiny["fixed"], updates=3,
                                batch_size=16, log_every=3, seed=0)
    assert [row["step"] for row in result["log"]] == [0, 3]
    for row in result["log"]:
        for split in ("train", "val"):
            assert set(row[split]) == set(agents.METRICS[kind])
            assert all(math.isfinite(v) for v in row[split].values()), row[split]
    assert result["log"][0]["train"]["v_mean"] != result["log"][-1]["train"]["v_mean"]
    if kind == "crl":  # goalrl's critic loss is binary NCE summed over its two heads
        first = result["log"][0]["train"]
        assert first["critic_loss"] == pytest.approx(2 * first["binary_nce"], rel=1e-4)
    if kind == "qrl":  # V = -d: 0 at the goal itself
        assert result["log"][-1]["train"]["v_current"] == 0.0


def test_page_has_each_agents_settings_sections() -> None:
    lines = agents.render_sections(["crl", "qrl"])
    text = "\n".join(lines)
    assert "### crl: settings mapped" in text and "### qrl: what goalrl cannot" in text
    assert "### hiql" not in text and "- HIQL:" not in text  # only the agents on the page
    assert agents.render_sections([]) == []


@pytest.mark.skipif(not (JAX_PYTHON.is_file() and (REFERENCE / "agents" / "qrl.py").is_file()),
                    reason="needs /tmp/jaxvenv and OGBench's impls with crl/hiql/qrl")
@pytest.mark.parametrize("kind", agents.AGENTS)
def test_reference_side_logs_the_same_metrics(tiny: dict, kind: str) -> None:
    fixed_path = tiny["work"] / "fixed.npz"
    np.savez(fixed_path, **{f"{s}/{k}": v for s, b in tiny["fixed"].items() for k, v in b.items()})
    out = tiny["work"] / f"ref_{kind}.json"
    subprocess.run([str(JAX_PYTHON), str(bench.RUNNER), "--reference", str(REFERENCE),
                    "--agent", kind, "--data", str(tiny["data"]), "--fixed", str(fixed_path),
                    "--updates", "2", "--batch", "16", "--log-every", "2", "--out", str(out)],
                   check=True, env={**bench.ONE_THREAD_ENV, "PATH": "/usr/bin:/bin"})
    result = json.loads(out.read_text())
    for name, value in agents.REFERENCE_OVERRIDES[kind].items():  # the command line's values
        assert result["config"][name] == value
    for row in result["log"]:
        assert set(row["train"]) == set(agents.METRICS[kind])
        assert all(math.isfinite(v) for v in row["train"].values()), row["train"]
    if kind == "crl":  # OGBench's critic loss is binary NCE, as recomputed here from its logits
        first = result["log"][0]["train"]
        assert first["critic_loss"] == pytest.approx(first["binary_nce"], rel=1e-4)
