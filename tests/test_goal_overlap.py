"""bench/goal_overlap.py: per-goal agreement counts and the paired test, by hand."""

from __future__ import annotations

import json

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


def test_report_lists_each_policy_and_pair(tmp_path) -> None:
    lines = overlap.report(["A", "B"], [{1: True, 2: False}, {1: True, 2: True}])
    text = "\n".join(lines)
    assert "| A | 1 / 2 |" in text and "| B | 2 / 2 |" in text
    assert "| A | B | 1 | 0 | 1 | 0 | 1.00 |" in text
    assert "every policy reaches 1, at least one 2, none 0" in text


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


def test_scripted_pusher_rolls_out_the_requested_seeds() -> None:
    env, out = overlap.outcomes_of(
        load_bench("pretrain").scripted_push_summary(2, first_seed=1_000_010), "pusher")
    assert env == "goalrl/Push-v0" and sorted(out) == [1_000_010, 1_000_011]
