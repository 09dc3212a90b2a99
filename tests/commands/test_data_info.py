"""``goalrl data info`` as a script would use it: one JSON document on stdout, a quiet stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from fixtures import make_episodes, write_goalrl  # noqa: E402


def goalrl_data_info(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The installed ``goalrl`` entry point (the module when there is no script)."""
    script = Path(sys.executable).with_name("goalrl")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "goalrl.cli"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([*cmd, "data", "info", f"path={path}"], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def test_data_info_prints_only_json(tmp_path: Path) -> None:
    root = write_goalrl(tmp_path / "ds", make_episodes(2, steps=3, size=8))
    proc = goalrl_data_info(root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    info = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert info["num_episodes"] == 2 and info["num_frames"] == 8
    assert info["image_shape"] == [8, 8, 3]


def test_data_info_on_a_missing_dataset_is_one_line(tmp_path: Path) -> None:
    proc = goalrl_data_info(tmp_path / "nothing", tmp_path)
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "dataset folder does not exist" in lines[0], proc.stderr
