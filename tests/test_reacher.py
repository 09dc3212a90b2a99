"""Goal images in any layout, goal PNGs with their state, and GoalReacher on a tiny checkpoint."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import av
import cv2
import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from tiny_reacher import ENV, SIZE, TINY_AGENT, relabelled_copy, tiny_checkpoint  # noqa: E402

from goalrl.checkpoint import CheckpointError  # noqa: E402
from goalrl.data.sheets import write_browser_video  # noqa: E402
from goalrl.goal_image import (  # noqa: E402
    Goal,
    GoalImageError,
    ImageTooLargeError,
    NotAnImageError,
    load_goal,
    load_goal_converted,
    save_goal_png,
    to_rgb_uint8,
)
from goalrl.goal_match import (  # noqa: E402
    MAX_VIEW_DISTANCE,
    GoalMismatchError,
    GoalMismatchWarning,
)
from goalrl.reacher import (  # noqa: E402
    GoalReacher,
    SceneMismatchError,
    capture_goal,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8)  # (H, W, 3)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def arm(ckpt):
    with GoalReacher(ckpt, device="cpu", max_steps=5) as reacher:
        yield reacher


# ---- conversion -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, note",
    [
        (lambda: RGB, None),
        (lambda: RGB.transpose(2, 0, 1), "channels-first"),  # (3, H, W)
        (lambda: RGB[None], None),  # (1, H, W, 3) batch of one
        (lambda: RGB.astype(np.float32) / 255.0, "float [0, 1]"),
        (lambda: RGB.astype(np.uint16) * 257, "16-bit"),
        (lambda: np.concatenate([RGB, np.full((20, 20, 1), 255, np.uint8)], -1), "opaque alpha"),
    ],
)
def test_array_layouts_convert_to_the_same_rgb(make, note) -> None:
    rgb, conv = to_rgb_uint8(make())
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 20, 3)
    np.testing.assert_array_equal(rgb, RGB)
    assert not conv.grayscale and not conv.transparent
    assert note is None or any(note in n for n in conv.notes)


def test_grayscale_repeats_its_channel() -> None:
    gray = RGB[..., 0]
    for array in (gray, gray[..., None]):
        rgb, conv = to_rgb_uint8(array)
        assert conv.grayscale and rgb.shape == (20, 20, 3)
        np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=-1))


def test_rgba_is_composited_over_white() -> None:
    alpha = np.zeros((20, 20, 1), np.uint8)
    alpha[:10] = 255  # top half opaque, bottom half fully transparent
    rgb, conv = to_rgb_uint8(np.concatenate([RGB, alpha], -1))
    assert conv.alpha and conv.transparent
    np.testing.assert_array_equal(rgb[:10], RGB[:10])
    assert (rgb[10:] == 255).all()


def test_rgba_compositing_takes_bounded_memory() -> None:
    """A 62 KB PNG of 16 megapixels took 850 MB to composite in one float32 piece."""
    import tracemalloc

    rgba = np.zeros((2000, 2000, 4), np.uint8)  # 16 MB, fully transparent
    tracemalloc.start()
    try:
        rgb, conv = to_rgb_uint8(rgba)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert conv.transparent and (rgb == 255).all()
    assert peak < rgb.nbytes + 4_000_000  # the (2000, 2000, 3) result plus ~1 MB blocks


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.full((4, 4, 3), 200.0), "[0, 1]"),
        (np.zeros((5, 5, 2), np.uint8), "axis of size 1, 3 or 4"),
        (np.zeros((2, 2, 4, 4, 3), np.uint8), "must be (H, W)"),
        (np.full((4, 4, 3), -5, np.int32), "integer values"),
    ],
)
def test_bad_arrays_name_the_problem(bad, words) -> None:
    with pytest.raises(GoalImageError) as err:
        to_rgb_uint8(bad)
    assert words in str(err.value)


def png_bytes(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(array)
    (img.convert(mode) if mode else img).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "P", "CMYK", "I;16", "RGBA"])
def test_files_of_every_common_mode_load_at_the_checkpoint_size(mode, tmp_path) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    data = png_bytes(RGB, mode, fmt)
    goal, conv = load_goal_converted(data, 8)
    assert goal.image.shape == (8, 8, 3) and goal.image.dtype == np.uint8
    assert conv.grayscale == (mode in ("L", "LA", "I;16"))
    path = tmp_path / f"goal.{fmt.lower()}"
    path.write_bytes(data)
    np.testing.assert_array_equal(load_goal(path, 8).image, goal.image)
    np.testing.assert_array_equal(load_goal(Image.open(path), 8).image, goal.image)


def test_shrinking_averages_pixels_and_odd_shapes_are_stretched() -> None:
    checker = (np.indices((32, 48)).sum(0) % 2 * 255).astype(np.uint8)  # (32, 48) 1-px checks
    goal = load_goal(np.repeat(checker[..., None], 3, -1), 16)
    assert goal.image.shape == (16, 16, 3)
    assert np.abs(goal.image.astype(int) - 128).max() <= 2  # INTER_AREA: no aliasing
    assert any("stretched" in n for n in goal.notes)
    assert load_goal(RGB[:4, :4], 16).image.shape == (16, 16, 3)  # enlarged


def test_bad_files_raise_clear_errors(tmp_path) -> None:
    with pytest.raises(NotAnImageError, match="not an image"):
        load_goal(b"this is text, not a picture", 16)
    with pytest.raises(GoalImageError, match="does not exist"):
        load_goal(tmp_path / "missing.png", 16)
    big = png_bytes(np.zeros((1200, 1000, 3), np.uint8))
    with pytest.raises(ImageTooLargeError, match="1000x1200 = 1,200,000 pixels"):
        load_goal(big, 16, max_pixels=1_000_000)
    truncated = png_bytes(RGB)[:60]
    with pytest.raises(NotAnImageError):
        load_goal(truncated, 16)
    with pytest.raises(GoalImageError, match="path, bytes, a PIL image or a numpy array"):
        load_goal(3.5, 16)


def test_goal_png_round_trips_its_scene_state(tmp_path) -> None:
    goal = capture_goal(ENV, 1_000_007, image_size=24)
    path = save_goal_png(tmp_path / "goal.png", goal)
    back = load_goal(path, 24)
    np.testing.assert_array_equal(back.image, goal.image)
    assert back.env_id == ENV and back.seed == 1_000_007 and back.source == "capture"
    np.testing.assert_allclose(back.layout.tcp, goal.layout.tcp)
    for name, pose in goal.layout.objects.items():
        np.testing.assert_allclose(back.layout.objects[name], pose)
    smaller = load_goal(path, 16)  # resized, state kept
    assert smaller.image.shape == (16, 16, 3) and smaller.layout is not None
    with pytest.raises(ValueError, match=r"\.png"):
        save_goal_png(tmp_path / "goal.jpg", goal)


def test_malformed_goal_metadata_is_refused(tmp_path) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("goalrl-goal", json.dumps({"format": "goalrl-goal", "layout": {"tcp": [1]}}))
    Image.fromarray(RGB).save(tmp_path / "bad.png", pnginfo=info)
    with pytest.raises(GoalImageError, match="goal metadata"):
        load_goal(tmp_path / "bad.png", 16)
    info = PngInfo()
    info.add_text("goalrl-goal", "{not json")
    Image.fromarray(RGB).save(tmp_path / "bad2.png", pnginfo=info)
    with pytest.raises(GoalImageError, match="is not JSON"):
        load_goal(tmp_path / "bad2.png", 16)


# ---- the arm ----------------------------------------------------------------------------------
def test_reach_a_captured_goal_round_trip(arm) -> None:
    seed = 1_000_003
    goal = arm.capture(seed)
    assert goal.image.shape == (SIZE, SIZE, 3) and goal.state_known
    first = arm.reset(seed)
    result = arm.reach(goal)
    assert 1 <= result.steps <= 5 and len(result.frames) == result.steps + 1
    np.testing.assert_array_equal(result.frames[0], first)
    assert len(result.q_values) == result.steps
    assert all(0.0 <= q <= 1.0 for q in result.q_values)
    assert isinstance(result.success, bool) and result.final_distance >= 0.0
    assert result.seed == seed and len(result.action_ms) == result.steps
    # the goal's state is the env's own goal for that seed: same start distance
    env = gym.make(ENV, image_size=SIZE)
    _, info = env.reset(seed=seed)
    env.close()
    assert result.start_distance == pytest.approx(info["distance"], abs=1e-6)
    assert result.start_arm_distance == pytest.approx(info["arm_distance"], abs=1e-6)
    tcp = arm.core.arm.tcp_position()
    assert result.final_arm_distance == pytest.approx(
        float(np.linalg.norm(tcp - goal.layout.tcp)), abs=1e-6
    )
    json.dumps(result.summary())  # JSON-able as it is


def test_chained_commands_continue_from_where_the_last_ended(arm) -> None:
    arm.reset(1_000_004)
    first = arm.reach(arm.capture(1_000_005), max_steps=3)
    # a picture of the scene as float CHW of another size (converted), with no state
    view = cv2.resize(arm.capture(1_000_006, image_size=48).image, (30, 40))  # (40, 30, 3)
    picture = view.transpose(2, 0, 1) / 255.0  # (3, 40, 30) float in [0, 1]
    second = arm.reach(picture, max_steps=2)
    np.testing.assert_array_equal(second.frames[0], first.frames[-1])
    assert second.seed is None and second.steps == 2
    assert second.success is None and second.final_distance is None  # state unknown
    assert second.final_arm_distance is None and second.start_arm_distance is None
    assert 0.0 <= second.image_distance <= 1.0
    assert any("resized from 30x40" in n for n in second.notes)


def test_a_goal_already_met_takes_no_step(arm) -> None:
    arm.reset(1_000_006)
    core = arm.core
    here = Goal(image=arm.frame, layout=core.current_layout(), env_id=ENV, source="capture")
    result = arm.reach(here)
    assert result.success is True and result.reached_at == 0 and result.steps == 0


def test_progress_callback_and_stop(arm) -> None:
    arm.reset(1_000_003)
    seen = []
    result = arm.reach(
        arm.capture(1_000_008), on_step=seen.append, should_stop=lambda: len(seen) >= 2
    )
    assert result.stopped and result.steps == 2 and [s.step for s in seen] == [1, 2]
    assert seen[0].max_steps == 5 and seen[0].frame.shape == (SIZE, SIZE, 3)


def test_result_videos(arm, tmp_path) -> None:
    arm.reset(1_000_003)
    result = arm.reach(arm.capture(1_000_003), max_steps=3)
    for suffix in (".mp4", ".gif", ".webm"):
        path = result.write_video(tmp_path / f"run{suffix}")
        assert path.stat().st_size > 0
    with av.open(str(tmp_path / "run.webm")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == result.steps + 1
    assert frames[0].width == 2 * SIZE * 4  # camera | goal, 4x
    with pytest.raises(ValueError, match=r"\.mp4, \.gif, \.webm"):
        result.write_video(tmp_path / "run.avi")
    page_video = write_browser_video(tmp_path / "page", result.panels())
    with av.open(str(page_video)) as container:
        codec = container.streams.video[0].codec_context.name
        assert (page_video.suffix, codec) in ((".mp4", "h264"), (".webm", "vp8"))
        assert len(list(container.decode(video=0))) == result.steps + 1
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_wrong_checkpoints_and_goals_of_other_scenes(ckpt, arm, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        GoalReacher(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a goalrl checkpoint"):
        GoalReacher(tmp_path / "empty")
    with pytest.raises(SceneMismatchError, match="trained for goalrl/Push-v0, not goalrl/Reach"):
        GoalReacher(ckpt, env="goalrl/Reach-v0")
    reach_goal = capture_goal("goalrl/Reach-v0", 3, image_size=SIZE)
    with pytest.raises(SceneMismatchError, match="captured in goalrl/Reach-v0"):
        arm.reach(reach_goal)
    other = relabelled_copy(ckpt, tmp_path / "reach_ckpt", env_id="goalrl/Reach-v0")
    with pytest.raises(SceneMismatchError, match="this arm is in goalrl/Push-v0"):
        arm.load_checkpoint(other)
    arm.load_checkpoint(ckpt)  # the same scene swaps in


def test_fine_tuned_checkpoints_drive_goal_images(ckpt, tmp_path) -> None:
    """A task (fine-tuned) agent carries the goal-conditioned agent that goal images drive;
    its checkpoint may command its task scene or the scene its parent was pretrained in."""
    task_q = pytest.importorskip("goalrl.agents.task_q")
    from dataclasses import asdict

    from goalrl.agents import AMConfig
    from goalrl.checkpoint import load_checkpoint, read_meta, resolve_checkpoint, save_checkpoint

    cfg = task_q.TaskQConfig(am=AMConfig.from_dict(TINY_AGENT))
    agent = task_q.TaskQAgent(cfg, (SIZE, SIZE, 3), 4)
    state, meta = load_checkpoint(ckpt)
    agent.load_pretrained(state["agent"])
    parent = str(resolve_checkpoint(ckpt))
    run = tmp_path / "ft"
    save_checkpoint(
        run,
        1,
        {"agent": agent.state_dict()},
        {
            **{k: v for k, v in read_meta(ckpt).items() if k not in ("format", "version", "step")},
            "agent": "task",
            "agent_config": asdict(cfg),
            "env_id": "goalrl/Grasp-v0",
            "task": "goalrl/Grasp-v0",
            "parent_checkpoint": parent,
        },
    )
    with GoalReacher(run, device="cpu", max_steps=2) as ft:
        assert ft.env_id == "goalrl/Grasp-v0"
        ft.reset(1_000_000)
        assert ft.reach(ft.capture(1_000_000)).steps >= 1
    with GoalReacher(run, env=ENV, device="cpu", max_steps=2) as ft:  # the parent's scene
        ft.reset(1_000_000)
        result = ft.reach(ft.capture(1_000_000))
        assert len(result.q_values) == result.steps


# ---- pictures the camera cannot show: one rule (goal_match), here through the Python API -----
def blocks_of_colour(size: int) -> np.ndarray:
    """A photo-like picture: big blocks of saturated colour, far from any view of the scene."""
    blocks = np.random.default_rng(3).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((size // 4, size // 4, 1), np.uint8))  # (size, size, 3)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda arm: arm.frame.mean(-1).astype(np.uint8), "grayscale"),  # (S, S) one channel
        (lambda arm: np.repeat(arm.frame.mean(-1, keepdims=True), 3, -1).astype(np.uint8),
         "grayscale"),  # colourless RGB
        (lambda arm: blocks_of_colour(64), "from the scene's camera view"),
        (lambda arm: np.concatenate([arm.frame, np.full((SIZE, SIZE, 1), 100, np.uint8)], -1),
         "transparent"),
    ],
    ids=["gray", "colourless-rgb", "photo-like", "see-through"],
)  # fmt: skip
def test_api_refuses_goals_the_camera_cannot_show_unless_forced(arm, make, words) -> None:
    arm.reset(1_000_010)
    picture = make(arm)
    with pytest.raises(GoalMismatchError, match=words) as err:
        arm.reach(picture, max_steps=1)
    assert "image distance" in str(err.value) or "from the scene's camera view" in str(err.value)
    assert "force=true" in str(err.value)
    with pytest.warns(GoalMismatchWarning, match=words):
        result = arm.reach(picture, max_steps=1, force=True)
    assert result.steps == 1 and any(n.startswith("WARNING (force)") for n in result.notes)


def test_api_accepts_pictures_of_the_scene(arm) -> None:
    """A plain picture of the scene (no state: a screenshot, a JPEG) is within the limit."""
    arm.reset(1_000_011)
    screenshot = Image.open(io.BytesIO(png_bytes(arm.capture(1_000_012, 48).image, fmt="JPEG")))
    goal = arm.goal(screenshot)
    assert goal.layout is None
    assert np.abs(goal.image.astype(int) - arm.frame).mean() / 255 < MAX_VIEW_DISTANCE
