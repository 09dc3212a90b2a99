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
