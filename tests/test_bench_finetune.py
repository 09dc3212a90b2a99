"""bench/finetune.py: recorded commands are shown with the workdir as a placeholder."""

from __future__ import annotations

from bench_modules import load_bench

bench_finetune = load_bench("finetune")

COMMANDS = [
    "goalrl collect env=goalrl/Grasp-v0 policy=play episodes=3 out=/tmp/w1/play",
    "goalrl pretrain data=/tmp/w1/play out=/tmp/w1/pretrain steps=10",
]


def test_workdir_is_recorded_or_read_from_the_play_data_path() -> None:
    assert bench_finetune.workdir_of({"workdir": "/data/ft", "commands": COMMANDS}) == "/data/ft"
    assert bench_finetune.workdir_of({"commands": COMMANDS}) == "/tmp/w1"


def test_commands_are_shown_with_a_workdir_placeholder() -> None:
    shown = [bench_finetune.portable(c, "/tmp/w1") for c in COMMANDS]
    assert shown[1] == "goalrl pretrain data=<workdir>/play out=<workdir>/pretrain steps=10"
    assert "/tmp/w1" not in " ".join(shown)
    # a folder that merely starts with the workdir's name is left alone
    assert bench_finetune.portable("out=/tmp/w10/play", "/tmp/w1") == "out=/tmp/w10/play"


def run(task_input: str | None) -> dict:
    curve = [{"step": 0, "success_rate": 0.1, "phase": "init"}]
    row = dict(success_init=0.1, success_offline=0.2, success_final=0.3, steps=10,
               online_steps=0, curve=curve, online_episodes=0, online_episode_success_rate=None)
    return {**row, "task_input": task_input} if task_input else row


def test_table_names_each_runs_task_input_and_older_results_read_as_embedding() -> None:
    result = {"runs": {"pretrained, calibrated": run("goal_image"),
                       "scratch, calibrated, task embedding": run("embedding"),
                       "scratch, uncalibrated": run(None)}}
    rows = bench_finetune.table(result)[2:]
    assert rows[0].startswith("| pretrained | calibrated | goal image | 10% | 20% | 30% |")
    assert rows[1].startswith("| scratch | calibrated | embedding |")
    assert rows[2].startswith("| scratch | uncalibrated | embedding |")
