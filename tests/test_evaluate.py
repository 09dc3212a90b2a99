"""Evaluation summaries: success, object distance and the arm's distance to the pictured arm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from goalrl.data.sheets import image_grid
from goalrl.evaluate import (
    TRACE_AXIS_W,
    TRACE_MARGIN,
    Rollout,
    evaluate_policy,
    mean_or_none,
    q_trace,
    rollout_panels,
)

IMAGE = 32


def still(obs_image: np.ndarray, goal_image: np.ndarray, proprio: np.ndarray):
    return np.zeros(4, dtype=np.float32), None


def toward(point: np.ndarray):
    """A policy that servos the tcp (proprio[:3]) to a fixed point."""

    def policy(obs_image, goal_image, proprio):
        step = np.clip((point - proprio[:3]) / 0.02, -1.0, 1.0)
        return np.array([*step, 1.0], dtype=np.float32), None

    return policy


def test_arm_distance_on_reach_is_the_goal_distance() -> None:
    res = evaluate_policy("goalrl/Reach-v0", still, 3, image_size=IMAGE, progress=False)
    # Reach's goal is the tcp position itself
    assert res["mean_final_arm_distance"] == pytest.approx(res["mean_final_distance"], abs=1e-6)
    for row in res["rollouts"]:  # the closest approach bounds the start and the end
        assert row["min_distance"] <= min(row["start_distance"], row["final_distance"])
    assert res["success_any_step_rate"] >= res["success_rate"]


def test_arm_distance_tells_arm_motion_from_object_motion() -> None:
    import gymnasium as gym

    import goalrl  # noqa: F401

    env = gym.make("goalrl/Push-v0", image_size=IMAGE)
    env.reset(seed=1_000_000)
    goal_tcp = env.unwrapped.goal_layout.tcp.copy()
    env.close()
    still_res = evaluate_policy("goalrl/Push-v0", still, 1, image_size=IMAGE, progress=False)
    moved = evaluate_policy("goalrl/Push-v0", toward(goal_tcp), 1, image_size=IMAGE, progress=False)
    assert moved["mean_final_arm_distance"] < 0.03 < still_res["mean_final_arm_distance"]


def test_mean_or_none() -> None:
    assert mean_or_none([0.1, 0.3]) == pytest.approx(0.2)
    assert mean_or_none([0.1, None]) is None and mean_or_none([]) is None


def test_summary_has_a_median_and_one_row_per_rollout() -> None:
    from goalrl.evaluate import Rollout, summarize_rollouts

    rollouts = [
        Rollout(seed=10 + i, success=i == 0, final_distance=d, steps=5)
        for i, d in enumerate([0.02, 0.06, 0.07])
    ]
    rollouts.append(
        Rollout(seed=13, success=False, final_distance=15.0, steps=5, objects_off_table=1)
    )
    res = summarize_rollouts("goalrl/Push-v0", rollouts)
    # one object fallen off the table sets the mean; the median stays with the other three
    assert res["mean_final_distance"] > 3.0
    assert res["median_final_distance"] == pytest.approx(0.065)
    assert res["episodes_object_off_table"] == 1
    assert [r["seed"] for r in res["rollouts"]] == [10, 11, 12, 13]
    assert res["rollouts"][3]["objects_off_table"] == 1 and res["rollouts"][0]["success"]
    import json

    json.dumps(res)  # plain JSON values: goalrl eval writes it to summary.json


def test_env_counts_objects_that_fell_off_the_table() -> None:
    import gymnasium as gym

    import goalrl  # noqa: F401

    env = gym.make("goalrl/Push-v0", image_size=IMAGE)
    try:
        _, info = env.reset(seed=3)
        assert info["objects_off_table"] == 0
        u = env.unwrapped
        name = u.task.objects[0].name
        u.scene.set_pose(name, np.array([1.5, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0]))
        for _ in range(5):  # beyond the table's edge: it falls
            _, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
        assert info["objects_off_table"] == 1
        assert info["distance"] > 0.3
    finally:
        env.close()


class ScriptedDistanceEnv:
    """A stand-in env whose goal distance follows a fixed script, one value per step."""

    def __init__(self, distances: list[float], threshold: float = 0.05) -> None:
        self.distances, self.threshold, self.t = distances, threshold, 0

    def observe(self):
        d = self.distances[self.t]
        obs = {
            "image": np.zeros((8, 8, 3), np.uint8),
            "desired_goal_image": None,
            "observation": np.zeros(5, np.float32),
        }
        return obs, {"distance": d, "is_success": d < self.threshold}

    def reset(self, seed: int):
        self.t = 0
        return self.observe()

    def step(self, action):
        self.t += 1
        obs, info = self.observe()
        return obs, 0.0, False, self.t == len(self.distances) - 1, info


@pytest.mark.parametrize(
    ("distances", "success", "first", "closest"),
    [
        ([0.10, 0.04, 0.08], False, 1, 0.04),  # reached, then pushed away again
        ([0.10, 0.08, 0.03], True, 2, 0.03),  # reached at the last step
        ([0.10, 0.06, 0.07], False, None, 0.06),  # a near miss, never reached
        ([0.02, 0.09, 0.04], True, 0, 0.02),  # met at reset already
    ],
)
def test_rollout_records_the_first_success_and_the_closest_approach(
    distances, success, first, closest
) -> None:
    from goalrl.evaluate import run_rollout

    r = run_rollout(ScriptedDistanceEnv(distances), still, seed=0)
    assert r.steps == len(distances) - 1
    assert r.success is success and r.final_distance == distances[-1]
    assert r.first_success_step == first
    assert r.min_distance == pytest.approx(closest)


def test_summary_counts_goals_reached_at_any_step() -> None:
    from goalrl.evaluate import run_rollout, summarize_rollouts

    scripts = [[0.1, 0.04, 0.08], [0.1, 0.08, 0.03], [0.1, 0.06, 0.07], [0.1, 0.2, 0.3]]
    rollouts = [run_rollout(ScriptedDistanceEnv(s), still, seed=i) for i, s in enumerate(scripts)]
    res = summarize_rollouts("goalrl/Push-v0", rollouts)
    assert res["success_rate"] == pytest.approx(0.25)
    assert res["success_any_step_rate"] == pytest.approx(0.5)
    assert [row["first_success_step"] for row in res["rollouts"]] == [1, 2, None, None]
    assert res["rollouts"][2]["min_distance"] == pytest.approx(0.06)


# ---- pictures: rollout video panels, the Q trace, contact-sheet grids ----------------------
def white_rollout(steps: int, q_values: list[float]) -> Rollout:
    white = np.full((16, 16, 3), 255, np.uint8)  # the camera's empty background is white
    return Rollout(
        seed=0,
        success=False,
        final_distance=0.0,
        steps=steps,
        frames=[white] * (steps + 1),
        goal_image=white,
        q_values=q_values,
    )


def test_video_labels_sit_on_a_box_that_contrasts_with_a_white_scene() -> None:
    panel = rollout_panels(white_rollout(3, [0.2, 0.5, 0.9]), scale=4)[2]
    assert panel.shape[:2] == (16 * 4 + 48, 2 * 16 * 4)
    for x in (2, 16 * 4 + 2):  # "t=2" over the camera view, "goal" over the goal image
        box = panel[3:12, x + 1 : x + 20]
        assert (box < 60).mean() > 0.4  # mostly dark box...
        assert (box > 150).any()  # ...with light text in it
    assert (panel[20:60, 20:40] == 255).all()  # the picture itself is untouched


def test_q_trace_has_a_scale_and_its_latest_value() -> None:
    width, height = 200, 48
    strip = q_trace([0.0, 0.5, 1.0], horizon=10, width=width, height=height)
    y_one, y_zero = TRACE_MARGIN, height - 1 - TRACE_MARGIN
    for y in (y_one, y_zero):  # grid lines at Q = 1 and Q = 0 ...
        assert (strip[y, TRACE_AXIS_W + 60 : width - 60] == 75).all()
        ticks = strip[y - 5 : y + 6, TRACE_AXIS_W - 12 : TRACE_AXIS_W - 1]
        assert (ticks > 150).any()  # ... with their "1" / "0" beside the axis
    assert strip[y_zero - 1 : y_zero + 2, TRACE_AXIS_W : TRACE_AXIS_W + 3, 1].max() > 150
    assert (strip[1:12, width - 50 :] > 150).any()  # "Q=1.00" at the right
    assert not (q_trace([], 10, width, height)[1:12, width - 50 :] > 150).any()


def test_image_grid_lays_tiles_out_with_column_and_row_labels() -> None:
    rng = np.random.default_rng(0)
    rows = [[rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
            for _ in range(2)]  # fmt: skip
    plain = image_grid(rows, scale=2)
    assert plain.shape == (2 * (32 + 2), 3 * (32 + 2), 3)
    np.testing.assert_array_equal(plain[34:66, 68:100], rows[1][2].repeat(2, 0).repeat(2, 1))
    assert image_grid([[rows[0][0]]], scale=1).shape == (18, 18, 3)  # one tile: padded too
    grid = image_grid(rows, ("start", "goal", "end"), scale=2,
                      row_labels=[("ep 0", "seed 7"), "ep 1"])  # fmt: skip
    label_w = grid.shape[1] - plain.shape[1]
    assert grid.shape[0] == 14 + plain.shape[0] and label_w > 20
    np.testing.assert_array_equal(grid[14:, label_w:], plain)
    first, second = grid[14 : 14 + 34, :label_w], grid[14 + 34 :, :label_w]
    assert (first[:12] < 128).any() and (first[12:24] < 128).any()  # "ep 0" and "seed 7"
    assert (second[:12] < 128).any() and not (second[12:] < 128).any()  # "ep 1" alone
    assert (grid[:14, label_w : label_w + 30] < 128).any()  # the "start" header


# ---- goalrl eval: the checkpoint, the scene and the counts are checked first ---------------
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_reacher import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory)


def eval_config(ckpt, tmp_path, **fields):
    from goalrl.commands.evaluate import EvalConfig

    defaults = dict(ckpt=str(ckpt), out=str(tmp_path / "eval"), episodes=1, videos=0)
    return EvalConfig(device="cpu", **{**defaults, **fields})


def test_eval_refuses_a_checkpoint_of_another_scene_as_command_does(tiny_ckpt, tmp_path) -> None:
    from goalrl.commands.evaluate import run
    from goalrl.reacher import SceneMismatchError

    with pytest.raises(SceneMismatchError, match="trained for goalrl/Push-v0, not goalrl/Reach-v0"):
        run(eval_config(tiny_ckpt, tmp_path, env="goalrl/Reach-v0"))
    assert not (tmp_path / "eval").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "damage",
    [
        lambda meta: meta.write_bytes(b'{"format": "goalrl-checkpoint", "x": "\xff\xfe"}'),
        lambda meta: meta.write_text(
            json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "agent"})
        ),
        lambda meta: meta.write_text(
            json.dumps({**json.loads(meta.read_text()), "agent_config": "not a dict"})
        ),
    ],
    ids=["not-utf8", "no-agent-field", "agent-config-not-a-dict"],
)
def test_eval_reports_a_damaged_checkpoint_as_one_checkpoint_error(
    tiny_ckpt, tmp_path, damage
) -> None:
    from tiny_reacher import relabelled_copy

    from goalrl.checkpoint import CheckpointError
    from goalrl.commands.evaluate import run

    broken = relabelled_copy(tiny_ckpt, tmp_path / "broken")
    damage(broken / "meta.json")
    with pytest.raises(CheckpointError) as err:
        run(eval_config(broken, tmp_path))
    assert str(broken) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "field, value", [("episodes", -2), ("episodes", 0), ("videos", -1), ("seed", -5)]
)
def test_eval_refuses_bad_counts_naming_the_field(tiny_ckpt, tmp_path, field, value) -> None:
    from goalrl.commands.evaluate import run
    from goalrl.errors import UserError

    with pytest.raises(UserError, match=f"{field} must be >= "):
        run(eval_config(tiny_ckpt, tmp_path, **{field: value}))


def test_state_agents_are_evaluated_on_state_vectors() -> None:
    """agent.encoder.kind=state: the policy reads the state of now and of the goal; videos
    still show the camera and the goal picture."""
    from goalrl.commands.evaluate import observation_of

    seen = []

    def state_policy(obs_state, goal_state, proprio):
        seen.append((obs_state.shape, goal_state.shape))
        return np.zeros(4, dtype=np.float32), None

    out = evaluate_policy("goalrl/Reach-v0", state_policy, 1, image_size=IMAGE, progress=False,
                          observation="state", env_kwargs={"max_episode_steps": 3})  # fmt: skip
    assert out["episodes"] == 1 and len(seen) == 3
    assert all(len(o) == 1 and o == g for o, g in seen)  # (S,) each, the same width
    assert observation_of({"agent_config": {"encoder": {"kind": "state"}}}) == "state"
    assert observation_of({"agent_config": {"conv_channels": [8]}}) == "image"  # old, flat
    with pytest.raises(Exception, match="observation must be one of"):
        evaluate_policy("goalrl/Reach-v0", state_policy, 1, observation="depth")
