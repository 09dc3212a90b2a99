"""bench/finetune.py: the plan's fair budgets, the table and targets from store rows, and a
resumable run into the results store (with the goalrl commands faked; the real smoke profile
end to end is the slow test)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench_modules import load_bench

from goalrl.results import ROW_VERSION, append_rows, read_rows

bench = load_bench("finetune")
GRASP = "goalrl/Grasp-v0"


def arg(stage: dict, name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in stage["args"] if a.startswith(name + "=")]
    return values[-1] if values else None


@pytest.mark.parametrize("task", list(bench.TASKS))
def test_plan_gives_every_method_the_same_data_and_total_updates(tmp_path, task) -> None:
    p = bench.PROFILES["gpu"]
    env, policy, noise = bench.TASKS[task]
    plan = bench.stages("gpu", tmp_path, task=task)
    work = tmp_path / task
    labeled = next(s for s in plan if s["name"] == f"{task}/collect_labeled")
    assert (arg(labeled, "env"), arg(labeled, "policy")) == (env, policy)
    assert arg(labeled, "waypoint_noise") == str(noise)
    runs = [s for s in plan if s["kind"] == "finetune"]
    assert len(runs) == len(bench.METHODS) * len(p["seeds"])
    for run in runs:
        assert arg(run, "data") == str(work / "labeled") and arg(run, "task") == env
        assert arg(run, "online_steps") == str(p["online"])
        assert arg(run, "agent.task_input") is None  # the default: reward only, no goal image
        method, init = run["method"], arg(run, "init")
        from_scratch = init is None
        # pretrained runs: pretraining + fine-tuning; scratch runs the sum, all offline
        total = int(arg(run, "steps")) + (0 if from_scratch else p["pretrain"])
        assert total == p["pretrain"] + p["steps"], method
        if method == "task_q_from_scratch_aux":
            assert arg(run, "aux_data") == str(work / "play")  # the play data, as AM had
        if from_scratch:
            assert method.endswith(("scratch", "scratch_aux"))
        else:
            kind = "gcbc" if "gcbc" in method else "am"
            assert init == str(work / f"seed{run['seed']}" / f"pretrain_{kind}")
        assert (arg(run, "agent.calibration") == "calql") == ("calql" in method)
    pretrains = [s for s in plan if s["kind"] == "pretrain"]
    assert {arg(s, "data") for s in pretrains} == {str(work / "play")}
    assert {arg(s, "steps") for s in pretrains} == {str(p["pretrain"])}
    assert [s["seed"] for s in runs][:: len(bench.METHODS)] == list(p["seeds"])


@pytest.mark.parametrize("task", list(bench.TASKS))
def test_state_cpu_plan_reads_states_everywhere_and_fits_about_three_cpu_hours_a_seed(
    tmp_path, task
) -> None:
    """state-cpu: the data at 8 px, a state encoder in every network (pretraining, the task Q,
    behaviour cloning), the same methods, 3 seeds, 100 test rollouts; from the measured speeds
    one seed of one task (all its methods) costs about 3 CPU hours."""
    p = bench.PROFILES["state-cpu"]
    assert p["seeds"] == (0, 1, 2) and p["test_episodes"] == 100
    plan = bench.stages("state-cpu", tmp_path, task=task)
    assert {arg(s, "image_size") for s in plan if s["kind"] == "collect"} == {"8"}
    field = {"pretrain": "agent.encoder.kind", "q": "agent.am.encoder.kind",
             "bc": "bc.gcbc.encoder.kind"}
    for stage in plan:
        if stage["kind"] == "collect":
            continue
        which = stage["kind"] if stage["kind"] == "pretrain" else \
            "bc" if stage["method"].startswith("task_bc") else "q"
        assert arg(stage, field[which]) == "state", stage["name"]
    assert {s["method"] for s in plan if s["kind"] == "finetune"} == set(bench.METHODS)
    cpu = bench.estimate("state-cpu", task)
    one_seed = sum(v for k, v in cpu.items() if "/seed0/" in k)
    assert 2.0 * 3600 < one_seed < 3.5 * 3600
    assert set(cpu) == {s["name"] for s in plan}
    assert "no time estimate" in bench.estimate_lines("cpu", [task], None)[0]


def test_speeds_come_from_the_measured_file_and_a_broken_file_is_named(tmp_path) -> None:
    plan = sys.modules["finetune_plan"]
    assert plan.load_speeds(tmp_path / "absent.json") == {}
    row = dict.fromkeys(plan.SPEED_FIELDS, 0.0) | {"task_q": 1.0}
    cost = plan.estimate("state-cpu", "grasp", (0,), speeds={"state-cpu": {"grasp": row}})
    p = plan.PROFILES["state-cpu"]
    assert cost["grasp/seed0/task_q_from_am_aux"] == p["steps"] + p["online"]  # 1 s an update
    broken = tmp_path / "speeds.json"
    broken.write_text(json.dumps({"state-cpu": {"tray": {"task_q": 0.2}}}))
    with pytest.raises(SystemExit, match=r"speeds.json: state-cpu/tray lacks collect_episode"):
        plan.load_speeds(broken)
    broken.write_text("{")
    with pytest.raises(SystemExit, match="speeds.json: not valid JSON"):
        plan.load_speeds(broken)


def test_the_plan_docstring_table_matches_the_profiles() -> None:
    """bench/finetune_plan.py's profile table (hand-written) says what PROFILES holds."""
    doc = sys.modules["finetune_plan"].__doc__
    for name, p in bench.PROFILES.items():
        row = next(line.split() for line in doc.splitlines() if line.split()[:1] == [name])
        assert f"{p['play']:,}/{p['labeled']}" in row, name
        assert row[-3:] == [f"{p['steps']:,}+{p['online']:,}", str(p["batch"]),
                            str(p["test_episodes"])], name
        assert f"{p['pretrain']:,}" in row, name


def test_a_profiles_table_reads_its_own_rows_only() -> None:
    rows = [{**r, "bench_profile": "state-cpu"}
            for r in rows_of("task_q_from_am_aux", "final", 0, 1.0)]
    rows += [{**r, "bench_profile": "cpu"} for r in rows_of("task_q_from_am_aux", "final", 0, 0.0)]
    assert bench.cells(rows, GRASP, "state-cpu")[("task_q_from_am_aux", "final")][0]["rate"] == 1
    assert bench.cells(rows, GRASP, "cpu")[("task_q_from_am_aux", "final")][0]["rate"] == 0
    assert bench.cells(rows, GRASP)[("task_q_from_am_aux", "final")][0]["n"] == 20


def row(method: str, point: str, seed: int, success: bool, dip: float | None = None,
        rule: str = "cem_on_q") -> dict:
    extra = {} if dip is None else {"run_dip_after_switch": dip}
    return {"v": ROW_VERSION, "method": method, "act_rule": rule, "dataset": "labeled",
            "train_seed": seed, "step": 1, "env": GRASP, "goal_split": "env_seed",
            "task": "random", "env_seed": 1_000_000, "success": success,
            "bench_point": point, **extra}


def rows_of(method: str, point: str, seed: int, rate: float, n: int = 10, **kw) -> list[dict]:
    return [row(method, point, seed, i < round(rate * n), **kw) for i in range(n)]


def test_value_inits_add_each_agents_pretraining_and_the_gcbc_encoder_runs_settings(
        tmp_path) -> None:
    plain = bench.stages("state-cpu", tmp_path, seeds=(1,))
    plan = bench.stages("state-cpu", tmp_path, seeds=(1,), value_inits=True)
    assert len(plan) == len(plain) + 8  # four pretrainings, four fine-tunings
    assert [s for s in plan if s in plain] == plain  # the other stages unchanged, in order
    stage = {s["name"]: s for s in plan}
    gcbc_pre = stage["grasp/seed1/pretrain_gcbc"]
    gcbc_run = stage["grasp/seed1/task_q_from_gcbc_encoder_aux"]
    for agent in ("gcivl", "gciql", "crl", "hiql"):
        pre = stage[f"grasp/seed1/pretrain_{agent}"]
        assert arg(pre, "agent") == agent
        # the same data, updates, batch, seed and encoder as GCBC's pretraining
        assert [a for a in pre["args"] if not a.startswith(("agent=", "out="))] == [
            a for a in gcbc_pre["args"] if not a.startswith(("agent=", "out="))]
        run = stage[f"grasp/seed1/task_q_from_{agent}_encoder_aux"]
        assert arg(run, "init") == str(pre["out"])
        assert [a for a in run["args"] if not a.startswith(("init=", "out="))] == [
            a for a in gcbc_run["args"] if not a.startswith(("init=", "out="))]
    # a row of theirs joins the table only once it has run
    assert not any("crl" in line for line in bench.table({}))
    cells = bench.cells(rows_of("task_q_from_crl_encoder_aux", "offline_end", 0, 0.5), GRASP)
    assert any(line.startswith("| task_q_from_crl_encoder_aux | cem_on_q | 1 |")
               for line in bench.table(cells))


def test_table_and_targets_come_from_the_store_rows() -> None:
    rows = []
    for seed, (pre, scratch, final, dip) in enumerate([(0.6, 0.3, 0.8, 0.1), (0.8, 0.4, 0.7, 0.0)]):
        rows += rows_of("task_q_from_am_aux", "offline_end", seed, pre)
        rows += rows_of("task_q_from_am_aux", "final", seed, final, dip=dip)
        rows += rows_of("task_q_calql_from_am_aux", "offline_end", seed, pre)
        rows += rows_of("task_q_calql_from_am_aux", "final", seed, 0.5, dip=dip)
        rows += rows_of("task_q_from_scratch_aux", "offline_end", seed, scratch)
        rows += rows_of(bench.ZERO_SHOT, "zero_shot", seed, 0.6)
    cells = bench.cells(rows, GRASP)
    assert bench.cells(rows, "goalrl/RearrangeTray-v0") == {}  # rows of another scene
    lines = bench.table(cells)
    assert "| task_q_from_am_aux | cem_on_q | 2 | 10 | 70% (60, 80) | 75% (80, 70) | 5% (10, 0) |" \
        in lines
    assert "| task_bc_success_from_gcbc | – | 0 | – | not run | not run | – |" in lines
    assert "| am_zero_shot_goal_image | cem_on_q | 2 | 10 | 60% (60, 60) | – | – |" in lines
    text = "\n".join(bench.verdicts(cells))
    assert "70% vs 35% on seeds 0, 1 (target: at least 20 points above): **met**" in text
    assert "after the online phase (best of task_q_from_am_aux, task_q_calql_from_am_aux): 75% " \
           "(target >= 70%): **met**" in text
    assert "with calibration (task_q_calql_from_am_aux): 5 points (target <= 10 points): **met**" \
        in text
    assert "75% vs 60% on seeds 0, 1 (target: at least 15 points above): **met**" in text
    empty = "\n".join(bench.verdicts({}))
    assert empty.count("**not run**") == 4
    tray = "\n".join(bench.verdicts(cells, "goalrl/RearrangeTray-v0"))
    assert "75% (no target on this scene)" in tray  # the 70% target is Grasp-v0's


def test_targets_compare_two_rows_on_the_seeds_both_have() -> None:
    rows = rows_of("task_q_from_am_aux", "offline_end", 0, 0.3)  # scratch has seed 0 only
    rows += rows_of("task_q_from_am_aux", "offline_end", 1, 0.9)
    rows += rows_of("task_q_from_scratch_aux", "offline_end", 0, 0.2)
    rows += rows_of("task_q_from_am_aux", "final", 0, 0.3)
    rows += rows_of("task_q_from_am_aux", "final", 1, 0.9)
    rows += rows_of(bench.ZERO_SHOT, "zero_shot", 1, 0.5)  # zero-shot has seed 1 only
    text = "\n".join(bench.verdicts(bench.cells(rows, GRASP)))
    # seed 1's 90% would make it 60% vs 20%, met; on the shared seed 0 it is 30% vs 20%
    assert "30% vs 20% on seed 0 (target: at least 20 points above): **not met**" in text
    assert "fine-tuned vs zero-shot goal reaching: 90% vs 50% on seed 1" in text
    assert "after the online phase (best of task_q_from_am_aux, task_q_calql_from_am_aux): 60% " \
        in text  # the absolute target reads every seed


def fake_goalrl(calls: list[list[str]]):
    """Stands in for the goalrl commands: each writes what the driver reads back."""

    def run(args: list[str], log: Path) -> None:
        calls.append(args)
        out = Path(next(a.split("=", 1)[1] for a in args if a.startswith(("out=",))))
        if args[0] == "eval":
            ckpt = next(a.split("=", 1)[1] for a in args if a.startswith("ckpt="))
            rows_file = next(a.split("=", 1)[1] for a in args if a.startswith("results="))
            base = row("task", "x", 0, True)
            del base["bench_point"]
            # the checkpoint's scene: its run sits under <work>/<task>/
            base["env"] = next(bench.TASKS[part][0] for part in Path(ckpt).parts
                               if part in bench.TASKS)
            append_rows(rows_file, [{**base, "checkpoint": ckpt, "method": "task"}] * 2)
            return
        out.mkdir(parents=True, exist_ok=True)
        summary = {}
        if args[0] == "finetune":
            summary = {"offline_checkpoint": str(out / "checkpoints" / "step_2"),
                       "checkpoint": str(out / "checkpoints" / "step_4"), "dip_after_switch": 0.25}
        (out / "summary.json").write_text(json.dumps(summary))

    return run


def test_a_run_fills_the_store_with_named_rows_and_a_second_run_does_nothing(
    tmp_path, monkeypatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(bench, "goalrl", fake_goalrl(calls))
    monkeypatch.setattr(bench, "latest_step", lambda run: run / "checkpoints" / "step_4")
    store = tmp_path / "store.jsonl"
    bench.run_pipeline("smoke", tmp_path, store, (0,), "tray")
    evals = [c for c in calls if c[0] == "eval"]
    assert len(evals) == 1 + 2 * len(bench.METHODS)  # zero-shot, then offline end and final
    rows = read_rows(store)
    names = {(r["method"], r["bench_point"]) for r in rows}
    assert (bench.ZERO_SHOT, "zero_shot") in names
    assert {m for m, point in names if point == "final"} == set(bench.METHODS)
    assert all(r["run_dip_after_switch"] == 0.25 for r in rows if r["bench_point"] == "final")
    assert not any("run_dip_after_switch" in r for r in rows if r["bench_point"] != "final")
    assert all(arg({"args": c}, "env") == "goalrl/RearrangeTray-v0"
               for c in calls if c[0] == "collect")
    calls.clear()
    bench.run_pipeline("smoke", tmp_path, store, (0,), "tray")
    assert calls == [] and len(read_rows(store)) == len(rows)
    # an unfinished fine-tuning (no summary.json, no rows) is resumed; nothing else runs
    unfinished = tmp_path / "tray" / "seed0" / "task_bc_success_from_gcbc"
    (unfinished / "summary.json").unlink()
    kept = [r for r in rows if r["method"] != "task_bc_success_from_gcbc"]
    store.unlink()
    append_rows(store, kept)
    bench.run_pipeline("smoke", tmp_path, store, (0,), "tray")
    assert [(c[0], c[-1]) for c in calls if c[0] != "eval"] == [("finetune", "resume=true")]
    assert len(read_rows(store)) == len(rows)
    # a clone with the store and no workdir reruns only what has no rows: the data, the
    # pretraining that row starts from, the row's fine-tuning and its evaluations
    shutil.rmtree(tmp_path / "tray")
    store.unlink()
    append_rows(store, kept)
    calls.clear()
    bench.run_pipeline("smoke", tmp_path, store, (0,), "tray")
    assert [c[0] for c in calls] == ["collect", "collect", "pretrain", "finetune", "eval", "eval"]
    assert "agent=gcbc" in calls[2] and "recipe=bc_gcbc_init" in calls[3]
    # AM's pretraining rerun for a row that starts from it: its zero-shot row is stored, so
    # only the fine-tuning's two points are evaluated
    shutil.rmtree(tmp_path / "tray")
    store.unlink()
    append_rows(store, [r for r in rows if r["method"] != "task_q_from_am_aux"])
    calls.clear()
    bench.run_pipeline("smoke", tmp_path, store, (0,), "tray")
    assert [c[0] for c in calls] == ["collect", "collect", "pretrain", "finetune", "eval", "eval"]
    assert "agent=am" in calls[2] and len(read_rows(store)) == len(rows)


def test_methods_run_only_those_rows_and_the_pretraining_they_start_from(
    tmp_path, monkeypatch
) -> None:
    only = frozenset({"task_bc_success_from_gcbc", "task_bc_success_from_scratch"})
    plan = bench.stages("state-cpu", tmp_path, seeds=(0,), only=only)
    assert [s["name"].split("/", 1)[1] for s in plan] == [
        "collect_play", "collect_labeled", "seed0/pretrain_gcbc",
        "seed0/task_bc_success_from_scratch", "seed0/task_bc_success_from_gcbc"]
    # the rows keep the full plan's command lines (the same runs as a full plan's)
    full = {s["name"]: s["args"] for s in bench.stages("state-cpu", tmp_path, seeds=(0,))}
    assert all(s["args"] == full[s["name"]] for s in plan)
    # the zero-shot row alone needs AM's pretraining and no fine-tuning
    zero = bench.stages("state-cpu", tmp_path, seeds=(0,), only=frozenset({bench.ZERO_SHOT}))
    assert [s["name"] for s in zero][2:] == ["grasp/seed0/pretrain_am"]
    with pytest.raises(ValueError, match="task_q_from_crl_encoder_aux.*--value-inits"):
        bench.stages("state-cpu", tmp_path, only=frozenset({"task_q_from_crl_encoder_aux"}))
    # a run evaluates those rows only: AM's pretraining is not run, so no zero-shot row
    calls: list[list[str]] = []
    monkeypatch.setattr(bench, "goalrl", fake_goalrl(calls))
    store = tmp_path / "store.jsonl"
    bench.run_pipeline("smoke", tmp_path, store, (0,), "grasp", only=only)
    assert {r["method"] for r in read_rows(store)} == only
    assert not any("agent=am" in c for c in calls)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["smoke", "smoke-state"])
def test_smoke_profile_end_to_end(tmp_path, profile) -> None:
    """The real commands at the smoke size, one training seed, Grasp-v0: every method's rows
    in the store, the page written; a second run adds nothing. smoke-state: the same on state
    vectors (state checkpoints, state fine-tuning, evaluation on the env's state)."""
    cmd = [sys.executable, str(bench.REPO / "bench" / "finetune.py"), "--profile", profile,
           "--seeds", "0", "--task", "grasp", "--workdir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    rows = read_rows(tmp_path / "results.jsonl")
    assert {r["method"] for r in rows} == {*bench.METHODS, bench.ZERO_SHOT}
    assert {r["act_rule"] for r in rows if r["method"].startswith("task_bc")} == \
        {"task_bc_policy"}
    page = (tmp_path / ("finetune_state.md" if profile == "smoke-state" else "finetune.md")
            ).read_text()
    assert "| task_q_from_scratch_aux | cem_on_q | 1 | 2 |" in page
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    assert len(read_rows(tmp_path / "results.jsonl")) == len(rows)


@pytest.mark.parametrize("kind", ["pretrain", "finetune", "collect"])
def test_an_unfinished_stage_resumes_training_and_recollects_data(tmp_path, monkeypatch,
                                                                  kind) -> None:
    out = tmp_path / "stage"
    (out / "checkpoints").mkdir(parents=True)
    calls = []
    monkeypatch.setattr(bench, "goalrl", lambda args, log: calls.append(list(args)))
    bench.run_stage(dict(name="grasp/x", kind=kind, out=out, args=[kind, f"out={out}"]),
                    tmp_path)
    resumed = calls[0][-1] == "resume=true"
    assert resumed == (kind != "collect")
    assert out.exists() == resumed  # a half-collected dataset is removed and collected again
