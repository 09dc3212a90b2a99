"""Closed-form IK puts the fingertip where asked, and the gripper opens and closes."""

from __future__ import annotations

import numpy as np
import pytest

from goalrl.envs.robot import FINGER_MAX, Arm
from goalrl.envs.scene import Scene


@pytest.fixture(scope="module")
def arm() -> Arm:
    return Arm(Scene(image_size=16))


def test_teleport_reaches_targets_across_the_workspace(arm: Arm) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        target = rng.uniform(arm.workspace.low, arm.workspace.high)
        yaw = rng.uniform(-1.5, 1.5)
        arm.teleport(target, yaw)
        np.testing.assert_allclose(arm.tcp_position(), target, atol=1e-4)
        assert arm.tcp_yaw() == pytest.approx(yaw, abs=1e-4)


def test_commands_track_under_physics_and_stay_in_the_workspace(arm: Arm) -> None:
    arm.teleport(np.array([0.0, 0.0, 0.2]))
    for _ in range(20):
        arm.command(np.array([0.03, 0.03, -0.03]), grip=-1.0)
        arm.scene.step_physics()
    np.testing.assert_allclose(
        arm.target, arm.workspace.high[:2] + (arm.workspace.low[2],), atol=1e-9
    )
    np.testing.assert_allclose(arm.tcp_position(), arm.target, atol=0.01)
    assert arm.opening() == pytest.approx(2 * FINGER_MAX, abs=0.005)
    for _ in range(3):
        arm.command(np.zeros(3), grip=1.0)
        arm.scene.step_physics()
    assert arm.opening() < 0.005
