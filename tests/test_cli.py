"""The ``goalrl`` entry point as a user meets it: one-line errors, help with descriptions,
and nothing on stdout/stderr but what the command means to say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from goalrl import cli
from goalrl.cli_help import field_comments
from goalrl.errors import UserError


def goalrl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "goalrl.cli", *args], capture_output=True, text=True,
        timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip


# ---- user errors ------------------------------------------------------------------------
def test_command_without_arguments_names_the_missing_fields_on_one_line() -> None:
    proc = goalrl("command")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("goalrl command: missing required fields ckpt, goal")


def test_misspelled_override_is_one_line_and_full_error_keeps_the_traceback() -> None:
    proc = goalrl("collect", "episdes=2", "out=/nonexistent/never")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "goalrl collect: Could not override 'episdes'" in proc.stderr
    assert "did you mean 'episodes'" in proc.stderr
    proc = goalrl("collect", "episdes=2", "out=/nonexistent/never", env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "episdes" in proc.stderr


def test_bad_value_and_unknown_group_option_are_one_line() -> None:
    proc = goalrl("collect", "episodes=many")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "episodes=many" in proc.stderr
    proc = goalrl("command", "ckpt=x", "agent=am")  # command takes no agent group
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "'agent'" in proc.stderr


@dataclass
class FailingConfig:
    path: str = "???"  # what the fake command is told


def failing_command(cfg: FailingConfig) -> dict:
    if cfg.path == "bug":
        raise RuntimeError("a bug, not the user's fault")
    raise UserError(f"{cfg.path}: no such thing\n(second line of the message)")


@pytest.fixture
def fake_command(monkeypatch: pytest.MonkeyPatch) -> str:
    """`goalrl data info` rerouted to ``failing_command`` (its yaml composes any schema)."""
    fake = cli.Command(__name__, "FailingConfig", "failing_command", "fails")
    monkeypatch.setitem(cli.COMMANDS, "data info", fake)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return "data info"


def test_user_error_is_reported_on_one_line_with_exit_2(fake_command, capfd) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.run_command(fake_command, ["path=/data/x"])
    assert exit_info.value.code == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert err == "goalrl data info: /data/x: no such thing (second line of the message)\n"
    assert "HYDRA_FULL_ERROR" not in os.environ  # set only for the call


def test_a_bug_keeps_its_traceback(fake_command) -> None:
    with pytest.raises(RuntimeError, match="a bug"):
        cli.run_command(fake_command, ["path=bug"])


def test_full_error_reraises_user_errors(fake_command, monkeypatch, capfd) -> None:
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(UserError, match="no such thing"):
        cli.run_command(fake_command, ["path=/data/x"])
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


# ---- help -------------------------------------------------------------------------------
@dataclass
class Base:
    # a comment above a field
    # in two lines
    above: int = 1
    beside: str = "x"  # the comment beside it


@dataclass
class Derived(Base):
    beside: str = "y"  # the subclass's own words win
    # ---- a section header is no description ----
    plain: bool = False
    spread: list[int] = field(default_factory=list)  # beside a field written over several lines


def test_field_comments_are_read_from_the_source() -> None:
    assert field_comments(Derived) == {
        "above": "a comment above a field in two lines",
        "beside": "the subclass's own words win",
        "plain": "",
        "spread": "beside a field written over several lines",
    }


def test_help_lists_fields_with_their_descriptions_and_values() -> None:
    proc = goalrl("collect", "episodes=7", "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == "goalrl collect: scripted play data from a scene"
    episodes = next(line for line in lines if line.strip().startswith("episodes="))
    assert episodes.split()[0] == "episodes=7"  # the value as composed, overrides included
    assert "total episodes the dataset should hold" in episodes
    # collect's only group is its dataset presets (W4's dc65b8e); no agent group
    assert not any(line.strip().startswith("agent") for line in lines)


def test_help_shows_only_the_groups_a_command_uses() -> None:
    proc = goalrl("pretrain", "agent=gcbc", "--help")
    assert proc.returncode == 0, proc.stderr
    agent_line = next(line for line in proc.stdout.splitlines() if line.startswith("  agent: "))
    assert agent_line.endswith("(now: gcbc)")  # the choices grow with the agents registered
    assert {"am", "gcbc"} <= set(
        agent_line.split("(now")[0].split(":")[1].replace("|", " ").split()
    )
    assert "data=???" in proc.stdout and "(required) dataset folder" in proc.stdout
    for command in ("command", "serve"):
        proc = goalrl(command, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "config groups" not in proc.stdout and "ckpt=???" in proc.stdout
        assert not any(line.strip().startswith("agent") for line in proc.stdout.splitlines())


# ---- no noise -----------------------------------------------------------------------------
def test_collect_prints_its_summary_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "reach"
    proc = goalrl("collect", "env=goalrl/Reach-v0", "episodes=1", "image_size=16", f"out={out}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no pybullet banner, no gymnasium-robotics notice
    assert len(proc.stdout.splitlines()) == 1  # no "argv[0]=" from pybullet's connect
    assert json.loads(proc.stdout)["episodes_total"] == 1


def schema_classes() -> set[type]:
    """Every dataclass a command's config is built from, nested ones and agent groups included."""
    import dataclasses
    import importlib
    import typing

    from goalrl.agents import AMConfig, GCBCConfig

    todo = [getattr(importlib.import_module(c.module), c.schema) for c in cli.COMMANDS.values()]
    todo += [AMConfig, GCBCConfig]  # the agent=am|gcbc group of pretrain
    seen: set[type] = set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        todo += [hints[f.name] for f in dataclasses.fields(cls)
                 if dataclasses.is_dataclass(hints[f.name])]  # fmt: skip
    return seen


def test_every_config_field_has_a_description() -> None:
    import dataclasses

    undocumented = [
        f"{cls.__name__}.{f.name}"
        for cls in schema_classes()
        for f in dataclasses.fields(cls)
        if not field_comments(cls).get(f.name)
    ]
    assert undocumented == []


def test_goal_eval_and_command_print_their_summary_and_nothing_else(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tiny_reacher import ENV, SIZE, tiny_checkpoint

    run = tiny_checkpoint(tmp_path_factory)
    goal = tmp_path / "goal.png"
    runs = {
        "goal": ("goal", f"env={ENV}", f"image_size={SIZE}", f"out={goal}"),
        "eval": ("eval", f"ckpt={run}", "episodes=1", "videos=1", f"out={tmp_path / 'eval'}"),
        "command": ("command", f"ckpt={run}", f"goal={goal}", "max_steps=2",
                    f"out={tmp_path / 'command.gif'}"),
    }  # fmt: skip
    for name, args in runs.items():  # in this order: command reads the goal PNG
        proc = goalrl(*args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", f"{name}: {proc.stderr}"
        assert len(proc.stdout.splitlines()) == 1, f"{name}: {proc.stdout}"
        json.loads(proc.stdout)


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback() -> None:
    # `goalrl data info ... | head -c 200` on a large summary: the writer meets a closed pipe
    script = "from goalrl import cli; cli.print_out('x' * 200_000)"
    done = subprocess.run(f"{sys.executable} -c \"{script}\" | true", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""


def test_summary_skipped_while_another_run_holds_the_folder(tmp_path, capsys):
    from goalrl.cli import write_summary
    from goalrl.training.run_folder import RunFolderLock

    with RunFolderLock(tmp_path):  # the run that started after ours returned
        assert write_summary(tmp_path, {"success": 0.5}) is False
    assert not (tmp_path / "summary.json").exists()
    assert "another run took" in capsys.readouterr().err
    assert write_summary(tmp_path, {"success": 0.5}) is True  # free again: written
    assert json.loads((tmp_path / "summary.json").read_text()) == {"success": 0.5}


def test_summary_written_in_a_folder_without_a_lock(tmp_path):
    from goalrl.cli import write_summary

    assert write_summary(tmp_path, {"n": 1}) is True
    assert not (tmp_path / ".writer.lock").exists()  # no lock file left in an eval folder
