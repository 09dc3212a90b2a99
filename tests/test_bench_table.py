"""bench/table.py: the smoke profile end to end (train, val and test evaluations into a store,
the page), a rerun that does nothing new; the plan, its errors and the val-best choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench_modules import load_bench

from goalrl.results import read_rows

table = load_bench("table")
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def driver_args(tmp: Path) -> list[str]:
    return ["--profile", "smoke", "--methods", "am", "gcbc", "--datasets", "reach-play",
            "--seeds", "0", "--data-root", str(tmp / "data"), "--runs", str(tmp / "runs"),
            "--store", str(tmp / "store.jsonl"), "--markdown", str(tmp / "results.md"),
            "--plots", str(tmp / "plots"), "--readme", str(tmp / "README.md"), "--jobs", "2"]


def run_driver(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "table.py"), *driver_args(tmp),
                           *extra],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def test_smoke_profile_fills_the_store_and_page_then_a_rerun_does_nothing(tmp_path) -> None:
    collect = subprocess.run(
        [sys.executable, "-m", "goalrl.cli", "collect", "dataset=reach-play", "episodes=4",
         "image_size=8", f"out={tmp_path / 'data' / 'reach-play-state'}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert collect.returncode == 0, collect.stderr[-2000:]

    (tmp_path / "README.md").write_text("<!-- results:start -->\n<!-- results:end -->\n")
    # a GPU node without pybullet: training only, no evaluation, no page
    trained = run_driver(tmp_path, "--train-only")
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert len(list((tmp_path / "runs").rglob("step_0000004"))) == 2
    assert not (tmp_path / "store.jsonl").exists() and not (tmp_path / "results.md").exists()
    first = run_driver(tmp_path)  # evaluates the trained cells, trains nothing
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    rows = read_rows(tmp_path / "store.jsonl")
    cells = {(r["method"], r["act_rule"], r["goal_split"]) for r in rows}
    readouts = [("am", "cem_on_q"), ("am", "actor"), ("am", "model_lookahead_on_q"),
                ("gcbc", "policy_mean")]
    assert cells == {(m, a, s) for m, a in readouts for s in ("val", "test")}
    for method, readout in readouts:
        mine = [r for r in rows if (r["method"], r["act_rule"]) == (method, readout)]
        # every fixed checkpoint on val; the last step (and the val-best one) on test
        assert {r["step"] for r in mine if r["goal_split"] == "val"} == {2, 4}
        assert 4 in {r["step"] for r in mine if r["goal_split"] == "test"}
        runs = {(r["goal_split"], r["step"]) for r in mine}
        for split, step in runs:  # each evaluation ran once: 6 rollouts, no repeats
            assert sum((r["goal_split"], r["step"]) == (split, step) for r in mine) == 6
        for step in (2, 4):  # one rollout of each of the 5 named tasks and of a random goal
            tasks = [r["task"] for r in mine if r["goal_split"] == "val" and r["step"] == step]
            assert sorted(tasks) == ["random", "task1", "task2", "task3", "task4", "task5"]
        assert {r["dataset"] for r in mine} == {"reach-play-state"}
        assert {r["train_seed"] for r in mine} == {0}
    page = (tmp_path / "results.md").read_text()
    assert "step=val_best" in page and "cem_on_q" in page
    assert "bench/table.py --profile smoke" in page
    readme = (tmp_path / "README.md").read_text()
    assert "| method | act_rule | reach-play-state |" in readme and "| am | cem_on_q | " in readme
    logs = sorted((tmp_path / "runs").rglob("table.log"))
    assert len(logs) == 2 and all(p.read_text().count("goalrl.cli pretrain") == 1 for p in logs)

    sizes = {p: p.stat().st_size for p in [tmp_path / "store.jsonl", *logs]}
    page_time = (tmp_path / "results.md").stat().st_mtime_ns
    again = run_driver(tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 of 2 cells finished; running 0" in again.stdout
    assert {p: p.stat().st_size for p in sizes} == sizes  # no training, evaluation or row
    assert (tmp_path / "results.md").stat().st_mtime_ns == page_time

    (tmp_path / "results.md").unlink()  # stopped between cells: the page is rewritten alone
    report = run_driver(tmp_path, "--report-only")
    assert report.returncode == 0, report.stderr[-2000:]
    assert "cells finished" not in report.stdout
    assert {p: p.stat().st_size for p in sizes} == sizes
    assert "| am | cem_on_q | reach-play-state | test |" in (tmp_path / "results.md").read_text()


def test_unknown_method_or_dataset_is_one_line_naming_it(tmp_path, capsys) -> None:
    assert table.main(["--profile", "smoke", "--methods", "am", "sac", "--dry-run"]) == 2
    assert "unknown method sac; known: am," in capsys.readouterr().err
    assert table.main(["--profile", "smoke", "--datasets", "push-play", "push-huge",
                       "--dry-run"]) == 2
    assert "unknown dataset push-huge; known:" in capsys.readouterr().err
    # am_prior's rows carry their own method name, so both share one store
    assert table.main(["--profile", "smoke", "--methods", "am", "am_prior", "--dry-run"]) == 0
    capsys.readouterr()
    # a real run stops before any work when a dataset folder is missing
    code = table.main(["--profile", "smoke", "--methods", "gcbc", "--datasets", "reach-play",
                       "--data-root", str(tmp_path), "--runs", str(tmp_path / "runs"),
                       "--store", str(tmp_path / "s.jsonl"), "--markdown",
                       str(tmp_path / "r.md"), "--plots", str(tmp_path / "plots")])
    assert code == 2 and "reach-play-state does not exist" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_dry_run_plans_every_cell_with_its_time(tmp_path, capsys) -> None:
    args = ["--profile", "state-cpu", "--methods", "am", "gcbc", "--datasets", "push-play",
            "push-stitch", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
            "--store", str(tmp_path / "none.jsonl"), "--dry-run"]
    assert table.main(args) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("push-")]
    assert len(lines) == 8  # 2 datasets x 2 methods x 2 seeds
    # AM: 20,000 updates at its state speed; three read-outs x (4 val + last + val-best) evals
    am = next(ln for ln in lines if ln.startswith("push-play/am/seed0")).split()
    assert am[1:4] == ["0", f"{20_000 / table.METHODS['am'].state_speed / 60:.1f}", "18"]
    assert "CPU hours" in out and not (tmp_path / "runs").exists()


def test_the_plan_times_a_cell_by_its_methods_trained_cells_when_there_are_any(
        tmp_path) -> None:
    runs = tmp_path / "runs"
    cell = table.plan_cells("state-cpu", ["am"], ["push-stitch"], [0], tmp_path, runs)[0]
    planned = 20_000 / table.METHODS["am"].state_speed / 60
    assert table.estimate_minutes(cell, table.PROFILES["state-cpu"], {})[0] == pytest.approx(
        planned)
    # two trained AM cells on another dataset at 4 and 6 updates/s, a GCBC one, and a summary
    # without the field (a run stopped early): AM's median, 5, times the untrained cell
    for dataset, method, seed, text in [("push-play", "am", 0, '{"updates_per_s": 4.0}'),
                                        ("push-noisy", "am", 1, '{"updates_per_s": 6.0}'),
                                        ("push-play", "gcbc", 0, '{"updates_per_s": 80.0}'),
                                        ("push-play", "am", 2, "{}")]:
        folder = runs / "state-cpu" / dataset / method / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(text)
    assert table.measured_speed(cell, "am") == 5.0
    assert table.estimate_minutes(cell, table.PROFILES["state-cpu"], {})[0] == pytest.approx(
        20_000 / 5.0 / 60)
    # a method with no trained cell: its planned speed times how the machine ran the others
    # (AM at 5 of its planned speed, GCBC at 80 of its)
    hiql = table.plan_cells("state-cpu", ["hiql"], ["push-stitch"], [0], tmp_path, runs)[0]
    factor = (5.0 / table.METHODS["am"].state_speed + 80.0 / table.METHODS["gcbc"].state_speed) / 2
    assert table.estimate_minutes(hiql, table.PROFILES["state-cpu"], {})[0] == pytest.approx(
        20_000 / (table.METHODS["hiql"].state_speed * factor) / 60)


def test_gpu_profile_trains_and_evaluates_on_cuda_and_does_not_guess_its_time(
        tmp_path, capsys) -> None:
    profile = table.PROFILES["gpu"]
    cell = table.plan_cells("gpu", ["am"], ["push-noisy"], [0], tmp_path, tmp_path / "runs")[0]
    command = table.pretrain_command(cell, profile)
    assert "device=cuda" in command and "agent.encoder.kind=image" in command
    assert cell.data == tmp_path / "push-noisy"  # the image datasets, no -state suffix
    assert table.main(["--profile", "gpu", "--methods", "gcbc", "--datasets", "push-play",
                       "--seeds", "0", "--runs", str(tmp_path / "runs"), "--store",
                       str(tmp_path / "none.jsonl"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "GPU training time not estimated" in out and "CPU hours" not in out
    assert "one GPU" in table.protocol_note(["gpu"], [0])


@pytest.mark.parametrize(("val", "best"), [({2: [1, 0], 4: [1, 1]}, 4),
                                           ({2: [1, 0], 4: [0, 1]}, 2),  # tie: the earlier
                                           ({2: [1, 1]}, None)])  # step 4 not evaluated yet
def test_val_best_step(tmp_path, val, best) -> None:
    cell = table.Cell("reach-play", "gcbc", 0, tmp_path, tmp_path / "run")
    profile = table.PROFILES["smoke"]
    outcomes = {(table.cell_key(table.checkpoint_dir(cell.run, step)), "val", "policy"):
                [bool(x) for x in wins] for step, wins in val.items()}
    assert table.val_best_step(cell, profile, "policy", outcomes) == best
    pending = table.pending_evals(cell, profile, outcomes)
    tests = sorted(step for step, split, _ in pending if split == "test")
    assert tests == ([4] if best in (None, 4) else [2, 4])


def test_a_single_readout_method_matches_rows_whatever_act_rule_they_carry(tmp_path) -> None:
    from goalrl.results import append_rows

    cell = table.Cell("reach-play", "hiql", 0, tmp_path, tmp_path / "run")
    ckpt = str(table.checkpoint_dir(cell.run, 2))
    row = {"v": 1, "method": "hiql", "act_rule": "actor", "dataset": "d", "train_seed": 0,
           "step": 2, "env": "goalrl/Reach-v0", "goal_split": "val", "task": "task1",
           "env_seed": 2_100_000, "success": True, "checkpoint": ckpt}
    append_rows(tmp_path / "s.jsonl", [row])
    outcomes = table.store_outcomes(tmp_path / "s.jsonl")
    pending = table.pending_evals(cell, table.PROFILES["smoke"], outcomes)
    assert (2, "val", None) not in pending and (4, "val", None) in pending


def test_lookahead_rows_are_their_own_readout_with_a_model_per_profile_kind(tmp_path) -> None:
    from goalrl.results import append_rows

    cell = table.Cell("reach-play", "gcivl", 0, tmp_path, tmp_path / "run")
    ckpt = str(table.checkpoint_dir(cell.run, 2))
    row = {"v": 1, "method": "gcivl", "act_rule": "model_lookahead_on_v", "dataset": "d",
           "train_seed": 0, "step": 2, "env": "goalrl/Reach-v0", "goal_split": "val",
           "task": "task1", "env_seed": 2_100_000, "success": True, "checkpoint": ckpt}
    append_rows(tmp_path / "s.jsonl", [row])
    outcomes = table.store_outcomes(tmp_path / "s.jsonl")
    pending = table.pending_evals(cell, table.PROFILES["smoke"], outcomes)
    # the lookahead's rows do not stand in for the actor's
    assert (2, "val", table.LOOKAHEAD) not in pending and (2, "val", None) in pending
    assert table.METHODS["gcivl"].act_rules == (None, table.LOOKAHEAD)
    assert table.METHODS["crl"].act_rules == (None,)
    # one state model per state cell; on images one latent model per checkpoint
    assert table.lookahead_model(cell, table.PROFILES["state-cpu"], 2) == cell.run / "dynamics"
    assert table.lookahead_model(cell, table.PROFILES["images-cpu"], 2) != table.lookahead_model(
        cell, table.PROFILES["images-cpu"], 4)
    # AM looks ahead on its Q at its actor's action: its rows are named so
    assert table.METHODS["am"].act_rules[-1] == table.LOOKAHEAD
    assert table.readout(table.LOOKAHEAD, "am") == "model_lookahead_on_q"
    assert table.readout(table.LOOKAHEAD, "gcivl") == "model_lookahead_on_v"
    assert table.readout("cem", "am_prior") == "cem_on_q"


def store_row(checkpoint: str, split: str, step: int, success: bool) -> dict:
    return {"v": 1, "method": "gcbc", "act_rule": "policy_mean", "dataset": "reach-play-state",
            "train_seed": 0, "step": step, "env": "goalrl/Reach-v0", "goal_split": split,
            "task": "task1", "env_seed": 2_100_000, "success": success, "phase": "pretrain",
            "checkpoint": checkpoint}


def test_a_fresh_clone_finds_finished_cells_in_the_store_alone(tmp_path, capsys) -> None:
    """Rows written under another runs folder (another machine, an earlier clone) finish
    their cell: nothing is retrained and its dataset is not asked for; the page's protocol
    names every profile the rows came from."""
    from goalrl.results import append_rows

    elsewhere = "/elsewhere/runs/smoke/reach-play/gcbc/seed0/checkpoints/step_000000{}"
    store = tmp_path / "store.jsonl"  # driver_args' store
    append_rows(store, [store_row(elsewhere.format(2), "val", 2, False),
                        store_row(elsewhere.format(4), "val", 4, True),
                        store_row(elsewhere.format(4), "test", 4, True)])
    (tmp_path / "results.md").write_text("")  # an existing page: a no-op run leaves it alone
    args = driver_args(tmp_path)
    args[args.index("--methods") + 1: args.index("--datasets")] = ["gcbc"]
    assert table.main(args) == 0  # no dataset folder exists under tmp_path/data
    assert "1 of 1 cells finished; running 0" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()
    # a cell with a row missing still runs and so still needs its data
    args[args.index("--seeds") + 1] = "1"
    assert table.main(args) == 2
    assert "reach-play-state does not exist" in capsys.readouterr().err

    image_ckpt = "/a/runs/images-cpu/push-stitch/gcbc/seed0/checkpoints/step_0002500"
    append_rows(store, [store_row(image_ckpt, "val", 2500, False)])
    assert table.profiles_in_store("state-cpu", store) == ["state-cpu", "images-cpu"]
    assert table.profiles_in_store("gpu", store) == ["images-cpu", "gpu"]  # smoke: never added
