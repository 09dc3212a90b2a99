"""bench/goal_overlap.py: per-goal agreement counts and the paired test, by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bench_modules import load_bench

overlap = load_bench("goal_overlap")


def summary(successes: dict[int, bool]) -> dict:
    return {"env": "goalrl/Push-v0",
            "rollouts": [{"seed": s, "success": ok} for s, ok in successes.items()]}


def test_pair_counts_and_coverage_over_shared_seeds() -> None:
    a = {1: True, 2: True, 3: False, 4: False, 5: True}
    b = {1: True, 2: False, 3: True, 4: False}  # seed 5 not evaluated: left out
    assert overlap.pair_counts(a, b) == (1, 1, 1, 1)
    assert overlap.coverage([a, b]) == {"goals": 4, "all": 1, "any": 3, "none": 1}


def test_mcnemar_exact_matches_the_binomial_tail() -> None:
    assert overlap.mcnemar_exact_p(0, 0) == 1.0
    assert overlap.mcnemar_exact_p(3, 3) == 1.0
    # 0 of 5 discordant goals for one side: 2 * (1/2)^5
    assert overlap.mcnemar_exact_p(5, 0) == pytest.approx(2 / 32)
    # 1 vs 9: 2 * (C(10,0) + C(10,1)) / 2^10
    assert overlap.mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert overlap.mcnemar_exact_p(9, 1) == overlap.mcnemar_exact_p(1, 9)


def test_small_p_values_are_not_printed_as_zero() -> None:
    assert overlap.format_p(overlap.mcnemar_exact_p(20, 5)) == "< 0.01"  # p = 0.0041
    assert overlap.format_p(0.0051) == "0.01"
    assert overlap.format_p(1.0) == "1.00"


def test_report_lists_each_policy_and_pair(tmp_path) -> None:
    lines = overlap.report(["A", "B"], [{1: True, 2: False}, {1: True, 2: True}])
    text = "\n".join(lines)
    assert "| A | 1 / 2 |" in text and "| B | 2 / 2 |" in text
    assert "| A | B | 1 | 0 | 1 | 0 | 1.00 |" in text
    assert "every policy reaches 1, at least one 2, none 0" in text
    short = "\n".join(overlap.report(["A", "B"], [{1: True}, {1: True}], pairs=False))
    assert "McNemar" not in short and "| B | 1 / 1 |" in short


def test_bad_summaries_are_refused_by_name(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="summary.json"):
        overlap.load_outcomes(tmp_path)
    bad = tmp_path / "summary.json"
    bad.write_text(json.dumps({"env": "goalrl/Push-v0", "success_rate": 0.5}))
    with pytest.raises(ValueError, match=f"{bad}.*rollouts"):
        overlap.load_outcomes(tmp_path)
    twice = summary({1: True})
    twice["rollouts"] *= 2
    bad.write_text(json.dumps(twice))
    with pytest.raises(ValueError, match="seed 1 appears twice"):
        overlap.load_outcomes(bad)


def test_any_step_counts_goals_met_before_the_last_step(tmp_path) -> None:
    rows = [{"seed": 1, "success": True, "first_success_step": 9},
            {"seed": 2, "success": False, "first_success_step": 12},  # met, then left
            {"seed": 3, "success": False, "first_success_step": None}]
    s = {"env": "goalrl/Push-v0", "rollouts": rows}
    assert overlap.outcomes_of(s, "x")[1] == {1: True, 2: False, 3: False}
    assert overlap.outcomes_of(s, "x", any_step=True)[1] == {1: True, 2: True, 3: False}
    old = tmp_path / "summary.json"  # written before goalrl eval kept first_success_step
    old.write_text(json.dumps(summary({1: True})))
    with pytest.raises(ValueError, match=f"{old}.*first_success_step"):
        overlap.load_outcomes(old, any_step=True)


def test_scripted_pusher_rolls_out_the_requested_seeds() -> None:
    env, out = overlap.outcomes_of(
        load_bench("pretrain").scripted_push_summary(2, first_seed=1_000_010), "pusher")
    assert env == "goalrl/Push-v0" and sorted(out) == [1_000_010, 1_000_011]


def test_scene_names_carry_the_env_options_both_ways() -> None:
    kwargs = {"skills_per_goal": 2, "max_episode_steps": 100}
    name = overlap.scene_name("goalrl/Push-v0", kwargs)
    assert name == "goalrl/Push-v0 max_episode_steps=100 skills_per_goal=2"
    assert overlap.parse_scene(name) == ("goalrl/Push-v0", kwargs)
    assert overlap.parse_scene("goalrl/Push-v0") == ("goalrl/Push-v0", {})
    # summaries of the same seeds under other options are other goals: not paired
    env, _ = overlap.outcomes_of({"env": "goalrl/Push-v0", "env_kwargs": kwargs,
                                  "rollouts": [{"seed": 1, "success": True}]}, "x")
    assert env == name


def layout(objects: dict, tray=None):
    from goalrl.envs.tasks import Layout

    return Layout(tcp=np.zeros(3), objects={k: np.array(v, float) for k, v in objects.items()},
                  tray=None if tray is None else np.array(tray, float))


def test_goal_kind_judges_the_object_moved_most() -> None:
    start = layout({"a": [0.0, 0.0, 0.02], "b": [0.1, 0.1, 0.02]}, tray=[-0.1, 0.1, 0.0])
    near = layout({"a": [0.1, 0.0, 0.02], "b": [0.1, 0.1, 0.02]}, tray=[-0.1, 0.1, 0.0])
    far = layout({"a": [0.0, 0.0, 0.02], "b": [0.1, -0.1, 0.02]}, tray=[-0.1, 0.1, 0.0])
    tray = layout({"a": [-0.09, 0.12, 0.024], "b": [0.1, 0.1, 0.02]}, tray=[-0.1, 0.1, 0.0])
    assert overlap.goal_kind(start, near) == overlap.GOAL_KINDS[2]  # 10 cm
    assert overlap.goal_kind(start, far) == overlap.GOAL_KINDS[1]  # b: 20 cm
    assert overlap.goal_kind(start, tray) == overlap.GOAL_KINDS[0]
    # no tray in the scene: a far move stays a far move
    assert overlap.goal_kind(layout({"a": [0, 0, 0.02]}), layout({"a": [0.2, 0, 0.02]})) \
        == overlap.GOAL_KINDS[1]


def test_kind_report_counts_each_kind_per_policy() -> None:
    kinds = {1: overlap.GOAL_KINDS[0], 2: overlap.GOAL_KINDS[0], 3: overlap.GOAL_KINDS[2]}
    lines = overlap.kind_report(["A", "B"], [{1: True, 2: False, 3: True},
                                             {1: False, 2: False, 3: False}], kinds)
    assert lines[0] == f"| policy | {overlap.GOAL_KINDS[0]} | {overlap.GOAL_KINDS[2]} |"
    assert lines[2] == "| A | 1 / 2 | 1 / 1 |"
    assert lines[3] == "| B | 0 / 2 | 0 / 1 |"


def test_goal_kinds_come_from_the_real_scene_resets() -> None:
    seeds = {1_000_000, 1_000_001, 1_000_002}
    kinds = overlap.goal_kinds("goalrl/Rearrange-v0", seeds)
    assert sorted(kinds) == sorted(seeds) and set(kinds.values()) <= set(overlap.GOAL_KINDS)
    assert kinds == overlap.goal_kinds("goalrl/Rearrange-v0", seeds)  # seeded: same goals


def test_per_goal_rates_average_over_evaluations() -> None:
    outs = [{1: True, 2: False, 3: True}, {1: True, 2: True, 3: False}]
    assert overlap.per_goal_rates(outs, [1, 2, 3]).tolist() == [1.0, 0.5, 0.5]


def test_goal_bootstrap_interval_brackets_the_mean_and_narrows_with_goals() -> None:
    rng = np.random.default_rng(0)
    few = np.array([1.0, 0.0] * 10)  # 20 goals at 50%
    many = np.array([1.0, 0.0] * 500)  # 1,000 goals at 50%
    lo_few, hi_few = overlap.goal_bootstrap_interval(few, rng)
    lo_many, hi_many = overlap.goal_bootstrap_interval(many, rng)
    assert lo_few < 0.5 < hi_few and lo_many < 0.5 < hi_many
    assert hi_many - lo_many < (hi_few - lo_few) / 4  # width shrinks as 1/sqrt(goals)
    # binomial standard error for 1,000 goals: 0.0158, so about +-0.031
    assert hi_many - lo_many == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(1000), rel=0.1)
    # every goal reached: no spread at all
    assert overlap.goal_bootstrap_interval(np.ones(30), rng) == (1.0, 1.0)


def test_pool_report_pools_by_label_and_pairs_the_difference() -> None:
    labels = ["AM s0 30k", "AM s1 30k", "GCBC s0 30k"]
    outs = [{1: True, 2: True, 3: False, 4: True},
            {1: True, 2: False, 3: False, 4: True, 5: True},  # seed 5 not shared: left out
            {1: False, 2: False, 3: False, 4: True}]
    pools = overlap.pools_of(["AM=AM ", "GCBC=GCBC"], labels, outs)
    assert [len(v) for v in pools.values()] == [2, 1]
    text = "\n".join(overlap.pool_report(pools))
    assert "4 shared goals" in text
    assert "| AM | 2 | 5 / 8 | 62.5% (" in text and "| GCBC | 1 | 1 / 4 | 25.0% (" in text
    assert "| AM | GCBC | +37.5 |" in text
    with pytest.raises(SystemExit, match="no evaluation label contains 'CQL'"):
        overlap.pools_of(["CQL=CQL"], labels, outs)
    with pytest.raises(SystemExit, match="expected NAME=TEXT"):
        overlap.pools_of(["AM"], labels, outs)


def test_point_differences_carry_a_sign_and_no_negative_zero() -> None:
    assert overlap.points(0.056) == "+5.6"
    assert overlap.points(-0.1234) == "-12.3"
    assert overlap.points(-0.0001) == "+0.0"


def test_one_policy_joins_evaluations_on_disjoint_seeds_only() -> None:
    assert overlap.merge_goals({1: True}, {2: False}, "AM") == {1: True, 2: False}
    with pytest.raises(SystemExit, match="'AM': seed 2 is in two"):
        overlap.merge_goals({1: True, 2: True}, {2: False}, "AM")


def test_command_line_joins_repeated_labels_pools_and_writes_the_report(
        tmp_path, monkeypatch, capsys) -> None:
    files = {}
    for name, rows in {"am_a": {1: True, 2: True}, "am_b": {3: False, 4: True},
                       "bc_a": {1: False, 2: True}, "bc_b": {3: False, 4: False}}.items():
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(summary(rows)))
    out = tmp_path / "report.md"
    monkeypatch.setattr("sys.argv", [
        "goal_overlap.py", f"AM={files['am_a']}", f"AM={files['am_b']}",
        f"GCBC={files['bc_a']}", f"GCBC={files['bc_b']}",
        "--pool", "am=AM", "--pool", "bc=GCBC", "--no-pairs", "--out", str(out)])
    overlap.main()
    text = out.read_text()
    assert "| AM | 3 / 4 |" in text and "| GCBC | 1 / 4 |" in text  # 4 goals each
    assert "McNemar" not in text and "| am | bc | +50.0 |" in text
    assert text.count("\n") > capsys.readouterr().out.count("\n")  # title and command added
