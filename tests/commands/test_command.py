"""``goalrl goal`` and ``goalrl command`` end to end, as a user runs them."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import last_json, run_goalrl
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))
from tiny_reacher import ENV, SIZE, relabelled_copy, tiny_checkpoint  # noqa: E402

from goalrl.goal_image import load_goal  # noqa: E402
from goalrl.reacher import capture_goal  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory)


def test_goal_capture_then_command_toward_it(ckpt, tmp_path) -> None:
    goal_png, start_png = tmp_path / "goal.png", tmp_path / "start.png"
    proc = run_goalrl(
        "goal", f"env={ENV}", "seed=1000002", "image_size=48", f"out={goal_png}",
        f"start={start_png}",
    )  # fmt: skip
    made = last_json(proc)
    assert made["goal"] == str(goal_png) and made["image_size"] == 48 and made["state_known"]
    assert Image.open(goal_png).size == (48, 48) and Image.open(start_png).size == (48, 48)
    goal = load_goal(goal_png, SIZE)
    assert goal.seed == 1000002 and goal.env_id == ENV and goal.layout is not None

    video = tmp_path / "run.mp4"
    proc = run_goalrl("command", f"ckpt={ckpt}", f"goal={goal_png}", f"out={video}",
                      "max_steps=4", "device=cpu")  # fmt: skip
    summary = last_json(proc)
    assert isinstance(summary["success"], bool) and summary["final_distance"] >= 0.0
    assert summary["seed"] == 1000002  # the goal's own episode, since no seed= was given
    assert 1 <= summary["steps"] <= 4 and len(summary["q_values"]) == summary["steps"]
    assert summary["video"] == str(video)
    with av.open(str(video)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == summary["steps"] + 1
    assert frames[0].width == 2 * SIZE * 4  # camera | goal side by side


def test_command_toward_a_plain_picture_writes_a_gif(ckpt, tmp_path) -> None:
    picture = tmp_path / "screenshot.jpg"  # a picture of the scene, of another size, no state
    Image.fromarray(capture_goal(ENV, 8, image_size=96).image).resize((120, 90)).save(picture)
    proc = run_goalrl("goal", f"ckpt={ckpt}", "seed=5", f"out={tmp_path / 'g.png'}")
    assert last_json(proc)["image_size"] == SIZE  # size and scene from the checkpoint
    gif = tmp_path / "run.gif"
    proc = run_goalrl("command", f"ckpt={ckpt}", f"goal={picture}", f"out={gif}",
                      "max_steps=3", "seed=7", "device=cpu")  # fmt: skip
    summary = last_json(proc)
    assert summary["success"] is None and summary["final_distance"] is None
    assert not summary["goal_state_known"] and 0.0 <= summary["image_distance"] <= 1.0
    assert summary["steps"] == 3 and summary["seed"] == 7
    assert any("resized from 120x90" in n for n in summary["notes"])
    assert Image.open(gif).n_frames == 4


def test_bad_inputs_fail_with_clear_messages(ckpt, tmp_path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    proc = run_goalrl("command", f"ckpt={ckpt}", f"goal={text}", f"out={tmp_path / 'r.mp4'}",
                      check=False)  # fmt: skip
    assert proc.returncode != 0 and "not an image" in proc.stderr
    proc = run_goalrl("command", f"ckpt={tmp_path / 'missing'}", f"goal={text}",
                      f"out={tmp_path / 'r.mp4'}", check=False)  # fmt: skip
    assert proc.returncode != 0 and "does not exist" in proc.stderr
    reach = relabelled_copy(ckpt, tmp_path / "reach_ckpt", env_id="goalrl/Reach-v0")
    proc = run_goalrl("command", f"ckpt={reach}", f"goal={text}", f"env={ENV}",
                      f"out={tmp_path / 'r.mp4'}", check=False)  # fmt: skip
    assert proc.returncode != 0 and f"trained for goalrl/Reach-v0, not {ENV}" in proc.stderr
    assert not list(tmp_path.glob("r.*"))


def test_video_suffix_is_checked_before_any_work(ckpt, tmp_path) -> None:
    from goalrl.commands.command import CommandConfig, run

    with pytest.raises(ValueError, match=r"must end in \.mp4, \.gif, \.webm"):
        run(CommandConfig(ckpt=str(ckpt), goal="whatever.png", out=str(tmp_path / "x.avi")))


def test_help_lists_the_commands() -> None:
    out = run_goalrl("--help").stdout
    for name in ("command", "goal", "serve"):
        assert f"  {name} " in out


def test_goals_the_camera_cannot_show_are_refused_unless_forced(ckpt, tmp_path) -> None:
    """The rule of the Python API and the web page (goal_match): one stderr line, exit 2."""
    gray = tmp_path / "gray.png"
    Image.fromarray(capture_goal(ENV, 9, image_size=SIZE).image).convert("L").save(gray)
    photo = tmp_path / "photo.png"
    blocks = np.random.default_rng(3).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(np.kron(blocks, np.ones((16, 16, 1), np.uint8))).save(photo)
    video = tmp_path / "r.gif"
    for path, words in ((gray, "grayscale"), (photo, "from the scene's camera view")):
        proc = run_goalrl("command", f"ckpt={ckpt}", f"goal={path}", f"out={video}",
                          "max_steps=2", "device=cpu", check=False)  # fmt: skip
        assert proc.returncode == 2 and words in proc.stderr and str(path) in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not video.exists()
    proc = run_goalrl("command", f"ckpt={ckpt}", f"goal={photo}", f"out={video}",
                      "max_steps=2", "device=cpu", "force=true")  # fmt: skip
    assert "WARNING (force)" in proc.stderr and "from the scene's camera view" in proc.stderr
    assert any(n.startswith("WARNING (force)") for n in last_json(proc)["notes"])


@pytest.mark.parametrize("field, value", [("max_steps", 0), ("max_steps", -3), ("seed", -1)])
def test_bad_counts_are_refused_naming_the_field(ckpt, tmp_path, field, value) -> None:
    from goalrl.commands.command import CommandConfig, run
    from goalrl.errors import UserError

    cfg = CommandConfig(ckpt=str(ckpt), goal="g.png", out=str(tmp_path / "r.mp4"), device="cpu")
    with pytest.raises(UserError, match=f"{field} must be >= "):
        run(CommandConfig(**{**cfg.__dict__, field: value}))
