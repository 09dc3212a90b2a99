"""bench/agent_speed.py: every agent row builds and updates through pretraining's sampler; the
report's table, profiles and merged reruns."""

from __future__ import annotations

import numpy as np
import pytest
from bench_modules import load_bench

from goalrl.data.storage import EpisodeDataset

agent_speed = load_bench("agent_speed")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = agent_speed.write_dataset(tmp_path_factory.mktemp("d") / "ds", episodes=3, length=12)
    with EpisodeDataset(root) as ds:
        yield ds


@pytest.mark.parametrize("name", list(agent_speed.AGENTS))
def test_every_agent_row_updates_on_state_batches(name, dataset) -> None:
    row = agent_speed.measure(name, "state", dataset, batch=8, rounds=2, round_seconds=0.0)
    assert row["agent"] == name and len(row["ups_rounds"]) == 2
    assert row["updates_per_round"] == 2  # the floor of a round
    assert all(np.isfinite(v) and v > 0 for v in row["ups_rounds"] + row["cpu_ups_rounds"])
    assert row["gflop"] > 0 and row["floor_ms"] > 0


def test_image_rows_read_image_batches(dataset) -> None:
    agent, sampler = agent_speed.agent_and_sampler("gcivl", "image", dataset, 4)
    batch = sampler.sample()
    assert batch["obs_image"].shape == (4, 64, 64, 3) and "obs_state" not in batch
    assert "actor_goal_image" in batch  # gcivl's goal mixtures, as pretraining samples them
    assert np.isfinite(float(next(iter(agent.update(batch).values()))))


def test_state_profile_splits_matmuls_from_other_ops(dataset) -> None:
    prof = agent_speed.profile_state_update("gcbc", dataset, batch=8, updates=4)
    assert 0 < prof["matmul_ms"] <= prof["aten_ms"]
    assert prof["top_ops"] and prof["top_functions"]
    text = "\n".join(agent_speed.profile_section(prof))
    assert "### gcbc on state, batch 8 (4 updates)" in text


def _row(agent, observation, ups):
    return {"agent": agent, "observation": observation, "ups": ups, "ups_rounds": [ups - 1, ups],
            "cpu_ups": ups, "sample_ms": 0.1, "load_before": 1.0, "load_after": 1.5}


def test_report_table_and_merge_replace_only_rerun_rows() -> None:
    old = {"date": "d", "batch": 256, "rounds": 2, "round_seconds": 1.0, "peak_gflops": 90.0,
           "machine": {"cpus": 2, "torch": "t", "threads": 1},
           "rows": [_row("am", "image", 4.0), {**_row("gcbc", "state", 40.0), "gflop": 0.5,
                                                "floor_ms": 5.0}],
           "profiles": [{"agent": "gcbc"}]}
    new = {"rows": [_row("am", "image", 6.0), _row("crl", "image", 3.0)], "profiles": []}
    res = agent_speed.merged(old, new)
    # a new image row joins the image rows, ahead of the state rows
    assert [(r["agent"], r["ups"]) for r in res["rows"]] == [("am", 6.0), ("crl", 3.0),
                                                               ("gcbc", 40.0)]
    assert res["profiles"] == [{"agent": "gcbc"}] and res["date"] == "d"
    res["profiles"] = []
    lines = agent_speed.report(res, "Finding: X.")
    table = [ln for ln in lines if ln.startswith("|")]
    assert len({ln.count("|") for ln in table}) == 1  # every row has the header's cells
    assert "| gcbc | state | 40.0 | 39.0–40.0 | 40.0 | 25.0 | 0.10 | 0.50 | 20 | 5.0 |" in lines[
        lines.index(table[4])]
    assert "Finding: X." in lines
