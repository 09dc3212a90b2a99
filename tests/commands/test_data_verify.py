"""A flipped image byte through the real `goalrl` entry point: `data verify` names it, `data
show` and `pretrain` stop with one line naming it, `data repair` drops it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from fixtures import make_episodes, write_goalrl  # noqa: E402

FRAME_BYTES = 8 * 8 * 3


def goalrl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("goalrl")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "goalrl.cli"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=env)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The user-error report: one line (after any progress lines), no traceback."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("goalrl ")]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr[-2000:]
    return errors[0]


def test_verify_show_pretrain_and_repair_on_a_flipped_image_byte(tmp_path: Path) -> None:
    # env_id of no goalrl scene: pretrain trains without evaluating (nothing to compare with)
    root = write_goalrl(tmp_path / "ds", make_episodes(3, steps=4, size=8), env_id="other/Arm")
    ok = goalrl("data", "verify", f"path={root}", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    assert json.loads(ok.stdout)["ok"] is True

    images = root / "chunks" / "000000" / "images.u8"
    with open(images, "r+b") as f:
        f.seek(5 * FRAME_BYTES + 7)  # episode 1 (frames 5..9), its first frame
        f.write(b"\xab")

    line = one_error_line(goalrl("data", "verify", f"path={root}", cwd=tmp_path))
    assert "1 damaged episode(s) [1]" in line and str(images) in line
    assert "episode 1: field 'images' fails its checksum" in line
    assert f"goalrl data repair path={root}" in line

    line = one_error_line(goalrl("data", "show", f"path={root}", f"out={tmp_path / 's.png'}",
                                 cwd=tmp_path))
    assert str(images) in line and "episode 1: field 'images' fails its checksum" in line

    line = one_error_line(goalrl(
        "pretrain", f"data={root}", f"out={tmp_path / 'run'}", "steps=3", "batch_size=8",
        "eval_episodes=0", "videos=0", "device=cpu", "threads=1", "prefetch=1",
        "agent.encoder.conv_channels=[8,8]", "agent.encoder.embed_dim=16",
        "agent.encoder.fusion_dim=32", "agent.head_hidden_dim=16", cwd=tmp_path))
    assert str(images) in line and "episode 1: field 'images' fails its checksum" in line

    repaired = goalrl("data", "repair", f"path={root}", cwd=tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    summary = json.loads(repaired.stdout)
    assert summary["dropped"] == 1 and summary["num_episodes"] == 2
    assert "episode 1" in summary["problems"][0]
    assert goalrl("data", "verify", f"path={root}", cwd=tmp_path).returncode == 0
