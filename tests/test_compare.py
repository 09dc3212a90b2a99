"""goalrl compare: IQM and intervals against hand-computed values, paired differences on
toy tables with known answers, step selection, and the command's files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from goalrl.commands.compare import CompareConfig, run
from goalrl.compare import (
    CompareError,
    cell_lines,
    cell_table,
    filter_rows,
    iqm_and_mean,
    paired_difference,
    paired_table,
    score_matrix,
    select_step,
    task_lines,
    val_best_rows,
    wide_lines,
)
from goalrl.results import append_rows

REPS = 1000


def row(method="am", seed=0, step=100, task="task1", env_seed=0, success=True, **fields):
    return {"v": 1, "method": method, "act_rule": "cem_on_q" if method == "am" else "policy_mean",
            "dataset": "play", "train_seed": seed, "step": step, "env": "goalrl/Reach-v0",
            "goal_split": "test", "task": task, "env_seed": env_seed, "success": bool(success),
            } | fields


# ---- IQM and intervals ------------------------------------------------------------------------
def test_iqm_of_a_known_matrix() -> None:
    # 8 scores; the IQM drops the lowest 2 (0, 0) and the highest 2 (0.9, 1.0)
    matrix = np.array([[0.0, 0.1, 0.9, 0.3], [1.0, 0.2, 0.0, 0.5]])
    est = iqm_and_mean(matrix, REPS, seed=0)
    assert est["iqm"].point == pytest.approx((0.1 + 0.2 + 0.3 + 0.5) / 4)
    assert est["mean"].point == pytest.approx(3.0 / 8)
    assert est["iqm"].low <= est["iqm"].point <= est["iqm"].high


def test_equal_scores_collapse_the_interval() -> None:
    est = iqm_and_mean(np.full((3, 5), 0.4), REPS, seed=0)
    for name in ("iqm", "mean"):
        assert (est[name].point, est[name].low, est[name].high) == pytest.approx((0.4,) * 3)


def test_interval_over_two_goals_by_hand() -> None:
    # one seed, goals scored 0 and 1: resamples of the goals have means 0, 1/2, 1 with
    # chances 1/4, 1/2, 1/4, so the 2.5% and 97.5% percentiles are 0 and 1
    est = iqm_and_mean(np.array([[0.0, 1.0]]), REPS, seed=0)
    assert (est["mean"].point, est["mean"].low, est["mean"].high) == pytest.approx((0.5, 0, 1))


def test_seeds_are_resampled_within_a_goal() -> None:
    # one goal, seeds scoring 0 and 1: an interval from seeds alone, [0, 1] by the same count
    est = iqm_and_mean(np.array([[0.0], [1.0]]), REPS, seed=0)
    assert (est["mean"].low, est["mean"].high) == pytest.approx((0, 1))


def test_interval_near_the_binomial_one_and_reproducible() -> None:
    # 40 goals, 30 reached: normal approximation 0.75 +- 1.96 * sqrt(.75 * .25 / 40)
    matrix = np.array([[1.0] * 30 + [0.0] * 10])
    state = np.random.get_state()[1].copy()
    est = iqm_and_mean(matrix, REPS, seed=1)
    half = 1.96 * np.sqrt(0.75 * 0.25 / 40)
    assert est["mean"].low == pytest.approx(0.75 - half, abs=0.03)
    assert est["mean"].high == pytest.approx(0.75 + half, abs=0.03)
    assert iqm_and_mean(matrix, REPS, seed=1) == est
    assert (np.random.get_state()[1] == state).all()  # numpy's global generator put back


# ---- score matrix, steps ----------------------------------------------------------------------
def test_score_matrix_by_task_and_by_goal() -> None:
    rows = [row(seed=s, task=t, env_seed=g, success=(s + g) % 2 == 0)
            for s in (0, 1) for t in ("task1", "task2") for g in (0, 1)]
    by_task, seeds, tasks = score_matrix(rows, "task")
    assert seeds == [0, 1] and [t[1] for t in tasks] == ["task1", "task2"]
    assert by_task.tolist() == [[0.5, 0.5], [0.5, 0.5]]
    by_goal, _, goals = score_matrix(rows, "goal")
    assert by_goal.shape == (2, 4)
    assert by_goal[0].tolist() == [1, 0, 1, 0] and by_goal[1].tolist() == [0, 1, 0, 1]


def test_goals_not_evaluated_for_every_seed_are_left_out_with_a_warning() -> None:
    rows = [row(seed=0, env_seed=0), row(seed=0, env_seed=1, success=False),
            row(seed=1, env_seed=0)]
    with pytest.warns(UserWarning, match="1 of 2 goals were not evaluated for every seed"):
        matrix, _, goals = score_matrix(rows, "goal")
    assert matrix.tolist() == [[1.0], [1.0]]


def test_step_last_is_per_seed_and_a_fixed_step_is_exact() -> None:
    rows = [row(seed=0, step=100), row(seed=0, step=200), row(seed=1, step=100)]
    assert [(r["train_seed"], r["step"]) for r in select_step(rows, "last")] == [(0, 200),
                                                                                 (1, 100)]
    assert [r["train_seed"] for r in select_step(rows, 100)] == [0, 1]
    with pytest.raises(CompareError, match="step='best': expected last, val_best"):
        select_step(rows, "best")


def test_val_best_reports_test_goals_at_the_step_best_on_validation_goals() -> None:
    def split_rows(seed, step, split, success):
        return [row(seed=seed, step=step, goal_split=split, env_seed=g, success=success)
                for g in range(2)]
    rows = [*split_rows(0, 100, "val", True), *split_rows(0, 200, "val", False),
            *split_rows(0, 100, "test", False), *split_rows(0, 200, "test", True),
            # seed 1: a tie on validation goals picks the earlier step
            *split_rows(1, 100, "val", True), *split_rows(1, 200, "val", True),
            *split_rows(1, 100, "test", True), *split_rows(1, 200, "test", False)]
    fields = ["method", "act_rule", "dataset", "goal_split"]
    chosen = val_best_rows(rows, fields)
    assert {(r["train_seed"], r["step"], r["goal_split"]) for r in chosen} == {
        (0, 100, "test"), (1, 100, "test")}
    table = cell_table(chosen, fields, "goal", "chosen", REPS, 0)
    assert [(t["goal_split"], t["mean"]["point"]) for t in table] == [("test", 0.5)]
    with pytest.warns(UserWarning, match="1 \\(cell, seed\\) with no validation rows"):
        val_best_rows([*rows, *split_rows(2, 100, "test", True)], fields)
    with pytest.raises(CompareError, match="no rows of goal_split=val"):
        val_best_rows(split_rows(0, 100, "test", True), fields)


def test_val_best_by_task_keeps_the_step_chosen_on_all_validation_goals() -> None:
    val = {("task1", 100): True, ("task1", 200): False, ("task2", 100): False,
           ("task2", 200): True, ("task3", 100): True, ("task3", 200): False}
    rows = [row(seed=0, step=step, goal_split="val", task=task, success=ok)
            for (task, step), ok in val.items()]
    rows += [row(seed=0, step=step, goal_split="test", task=task)
             for task in ("task1", "task2", "task3") for step in (100, 200)]
    chosen = val_best_rows(rows, ["method", "act_rule", "dataset", "goal_split", "task"])
    # 100 is best on all validation goals (2 of 3); task2 alone would have chosen 200
    assert {(r["task"], r["step"]) for r in chosen} == {("task1", 100), ("task2", 100),
                                                        ("task3", 100)}



def test_cell_table_groups_and_picks_the_step() -> None:
    rows = [row(method=m, seed=s, step=st, env_seed=g, success=m == "am" or st == 100)
            for m in ("am", "gcbc") for s in (0, 1) for st in (100, 200) for g in range(4)]
    table = cell_table(rows, ["method"], "goal", "last", REPS, 0)
    assert [(line["method"], line["seeds"], line["units"], line["rollouts"], line["steps"])
            for line in table] == [("am", 2, 4, 8, [200]), ("gcbc", 2, 4, 8, [200])]
    assert [line["mean"]["point"] for line in table] == [1.0, 0.0]
    early = cell_table(rows, ["method"], "goal", "100", REPS, 0)
    assert [line["mean"]["point"] for line in early] == [1.0, 1.0]
    with pytest.raises(CompareError, match="group_by: field 'algo' is in no row"):
        cell_table(rows, ["algo"], "goal", "last", REPS, 0)


def test_wide_lines_put_one_field_in_columns_and_name_the_constant_ones() -> None:
    # am reaches every play goal and none of the noisy ones; gcbc has one seed on noisy
    rows = [row(method=m, seed=s, env_seed=g, dataset=d, task=t,
                success=m == "am" and d == "play")
            for m in ("am", "gcbc") for d in ("play", "noisy") for s in (0, 1, 2)
            for g in range(2) for t in ("task1", "task2") if not (m == "gcbc" and d == "noisy"
                                                                 and s > 0)]
    fields = ["method", "act_rule", "dataset", "goal_split"]
    table = cell_table(rows, fields, "task", "last", REPS, 0)
    header, body, constant = wide_lines(table, fields, "dataset", "task")
    assert header == ["method", "act_rule", "noisy", "play"]
    assert constant == {"goal_split": "test"}
    assert body == [["am", "cem_on_q", "0.0 [0, 0] · 0.0", "100.0 [100, 100] · 100.0"],
                    ["gcbc", "policy_mean", "0.0 [0, 0] · 0.0 (1 seed)",
                     "0.0 [0, 0] · 0.0"]]
    with pytest.raises(CompareError, match="readme_columns=env: not one of group_by"):
        wide_lines(table, fields, "env", "task")


def test_task_lines_give_each_cells_success_per_task_at_its_step() -> None:
    rows = [row(m, seed=s, step=st, task=t, env_seed=g,
                success=(m == "am" and t == "task5" and g < s + 1) or st == 100)
            for m in ("am", "gcbc") for s in (0, 1) for st in (100, 200)
            for t in ("random", "task1", "task5") for g in range(4)]
    header, body = task_lines(rows, ["method"], "last")
    assert header == ["method", "seeds", "task1", "task5", "random"]  # random last
    # at step 200 only AM's task5 succeeds: seed 0 on 1 of 4 goals, seed 1 on 2 of 4
    assert body == [["am", "2", "0.0", "37.5", "0.0"], ["gcbc", "2", "0.0", "0.0", "0.0"]]
    assert task_lines(rows, ["method", "task"], "last") == ([], [])  # split by task already
    assert task_lines([r for r in rows if r["task"] == "task1"], ["method"], "last") == ([], [])


# ---- paired differences -----------------------------------------------------------------------
def test_paired_difference_on_shared_goals_only() -> None:
    # A reaches goals 0-3 with both seeds; B reaches 0-1, and goal 9 only B was given
    a = [row(seed=s, env_seed=g) for s in (0, 1) for g in range(4)]
    b = [row("gcbc", env_seed=g, success=g < 2) for g in [*range(4), 9]]
    result = paired_difference(a, b, REPS, seed=0)
    assert result["goals"] == 4
    assert (result["a_seeds"], result["b_seeds"]) == (2, 1)
    assert (result["a_success"], result["b_success"]) == (1.0, 0.5)
    diff = result["difference"]
    # per-goal differences [0, 0, 1, 1]: a resample of 4 is all 0 (or all 1) with chance
    # 1/16 > 2.5%, so the percentile interval spans [0, 1]
    assert (diff.point, diff.low, diff.high) == pytest.approx((0.5, 0.0, 1.0))


def test_paired_difference_averages_seeds_per_goal() -> None:
    a = [row(seed=0, env_seed=0, success=True), row(seed=1, env_seed=0, success=False)]
    b = [row("gcbc", env_seed=0, success=False)]
    diff = paired_difference(a, b, REPS, seed=0)["difference"]
    assert (diff.point, diff.low, diff.high) == pytest.approx((0.5, 0.5, 0.5))


def test_goals_pair_by_task_and_scene_options_too() -> None:
    a = [row(env_seed=0, task="task1"), row(env_seed=0, env_kwargs={"skills_per_goal": 2})]
    b = [row("gcbc", env_seed=0, task="task2")]
    assert paired_difference(a, b, REPS, seed=0) is None


def test_paired_table_compares_methods_within_a_dataset() -> None:
    rows = [row(m, env_seed=g, success=m == "am", dataset=d)
            for m in ("am", "gcbc") for g in range(3) for d in ("noisy", "play")]
    pairs = paired_table(rows, ["method", "act_rule", "dataset"], ["method", "act_rule"],
                         "last", REPS, 0)
    assert [(p["dataset"], p["a"], p["b"], p["goals"]) for p in pairs] == [
        ("noisy", "am/cem_on_q", "gcbc/policy_mean", 3), ("play", "am/cem_on_q",
                                                           "gcbc/policy_mean", 3)]
    assert [p["difference"]["point"] for p in pairs] == [1.0, 1.0]
    with pytest.raises(CompareError, match="every contrast field must be in group_by"):
        paired_table(rows, ["dataset"], ["method"], "last", REPS, 0)


# ---- the command ------------------------------------------------------------------------------
def test_compare_writes_tables_plot_and_a_generated_page(tmp_path: Path, capsys) -> None:
    store = tmp_path / "results.jsonl"
    append_rows(store, [row(m, seed=s, step=st, env_seed=g, success=(g + s) % 3 != 0 or m == "am")
                        for m in ("am", "gcbc") for s in range(3) for st in (50, 100)
                        for g in range(6)])
    page = tmp_path / "docs" / "results.md"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a full table: no column left out
        summary = run(CompareConfig(results=str(store), unit="goal", reps=500,
                                    out=str(tmp_path / "out"), markdown=str(page),
                                    note="Toy rows."))
    printed = capsys.readouterr().out
    assert "paired differences on shared goals" in printed
    assert [line["method"] for line in summary["table"]] == ["am", "gcbc"]
    assert summary["table"][0]["mean"]["point"] == 1.0
    assert Path(summary["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert text.startswith("<!-- generated by `goalrl compare")
    assert f"from the results store `{store}` (72 rollouts)" in text
    assert f"goalrl compare results={store} unit=goal reps=500" in text
    assert "Toy rows." in text and "](../out/success_vs_updates.png)" in text
    assert "| am | cem_on_q | play | test | 3 | 6 | 18 | 100 | 100.0 [100.0, 100.0] |" in text
    assert "IQM %" not in text  # unit=goal: 0/1 scores, the mean only
    assert "IQM % [95% CI]" in cell_lines(summary["table"], ["method"], "task")[0]


def test_compare_refuses_a_where_that_keeps_nothing(tmp_path: Path) -> None:
    store = tmp_path / "results.jsonl"
    append_rows(store, [row()])
    with pytest.raises(CompareError, match="no rows of .* match where"):
        run(CompareConfig(results=str(store), where={"dataset": "noisy"}))
    with pytest.raises(CompareError, match="step=val_best: the store has no rows of goal_split"):
        run(CompareConfig(results=str(store), step="val_best"))
    with pytest.raises(CompareError, match="markdown= needs out="):
        run(CompareConfig(results=str(store), markdown=str(tmp_path / "r.md")))


def test_the_cli_prints_tables_then_its_summary_and_reports_a_bad_store_on_one_line(
        tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    store = tmp_path / "results.jsonl"
    append_rows(store, [row(m, step=st, env_seed=g) for m in ("am", "gcbc") for st in (50, 100)
                        for g in range(3)])

    def goalrl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "goalrl.cli", "compare", *args],
                              capture_output=True, text=True, timeout=300)

    # seed 1 of am: goals 0-3, where seed 0 has 0-2
    append_rows(store, [row("am", step=50, env_seed=g, seed=1) for g in range(4)])
    proc = goalrl(f"results={store}", "unit=goal", "step=50", "reps=100", "+where.task=task1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("goalrl compare: warning: 1 of 4 goals were not evaluated for every "
                           "seed ([0, 1]); left out\n")
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["method", "act_rule"]
    summary = json.loads(lines[-1])
    assert [line["steps"] for line in summary["table"]] == [[50], [50]]
    with open(store, "a") as file:
        file.write("{not json\n")
    proc = goalrl(f"results={store}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"results store {store} line 17: not JSON" in proc.stderr


def test_compare_puts_its_success_table_between_the_readme_markers_only(tmp_path: Path) -> None:
    store = tmp_path / "results.jsonl"
    append_rows(store, [row(m, seed=s, env_seed=g, success=m == "am")
                        for m in ("am", "gcbc") for s in range(3) for g in range(4)])
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- results:start -->\nold table\n<!-- results:end -->\n"
                      "\nAfter.\n")
    summary = run(CompareConfig(results=str(store), unit="goal", reps=200, readme=str(readme)))
    text = readme.read_text()
    assert text.startswith("# Title\n\n<!-- results:start -->\nGenerated by `goalrl compare")
    assert text.endswith("<!-- results:end -->\n\nAfter.\n") and "old table" not in text
    assert summary["success_table"] in text
    assert "| am | cem_on_q |" in text and "| gcbc |" in text
    run(CompareConfig(results=str(store), unit="goal", reps=200, readme=str(readme)))
    assert readme.read_text() == text  # regenerating replaces, never stacks
    run(CompareConfig(results=str(store), unit="goal", reps=200, readme=str(readme),
                      readme_columns="dataset"))
    wide = readme.read_text()
    assert "mean % [95% CI]; act_rule" not in wide  # act_rule differs between the lines
    assert "| method | act_rule | play |" in wide
    assert "| am | cem_on_q | 100.0 [100.0, 100.0] |" in wide


def test_compare_refuses_a_readme_without_markers_and_leaves_it_alone(tmp_path: Path) -> None:
    store = tmp_path / "results.jsonl"
    append_rows(store, [row()])
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n<!-- results:start -->\nno end marker\n")
    with pytest.raises(CompareError, match=f"readme={readme}: no `<!-- results:start -->`"):
        run(CompareConfig(results=str(store), readme=str(readme)))
    assert readme.read_text() == "# Title\n<!-- results:start -->\nno end marker\n"
    with pytest.raises(CompareError, match="readme=.*missing.md: cannot read it"):
        run(CompareConfig(results=str(store), readme=str(tmp_path / "missing.md")))


def test_where_keeps_either_of_two_values() -> None:
    rows = [row(goal_split="val"), row(goal_split="test"), row(goal_split="env_seed"),
            row(goal_split="test", phase="finetune")]
    kept = filter_rows(rows, {"goal_split": "val|test"})
    assert [r["goal_split"] for r in kept] == ["val", "test", "test"]
    assert filter_rows(rows, {"goal_split": "val|test", "phase": "None"}) == rows[:2]
    with pytest.raises(CompareError, match="field 'split' is in no row"):
        filter_rows(rows, {"split": "val|test"})
