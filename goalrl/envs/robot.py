"""The arm: a 5-DOF arm with a parallel gripper, driven by end-effector displacements.

The chain is yaw -> shoulder pitch -> elbow pitch -> wrist pitch -> tool roll, so a
top-down tool pose has a closed-form inverse kinematics (planar two-link problem in
the arm's vertical plane). Closed form beats pybullet's iterative IK here: exact,
deterministic and ~10 us per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the simulator loads only when an env is built, not on `import goalrl`
    from goalrl.envs.scene import Scene

# Geometry of envs/assets/arm5.urdf (metres); keep in sync with the URDF.
SHOULDER_HEIGHT = 0.25  # base -> shoulder axis
UPPER_ARM = 0.40
FOREARM = 0.40
TOOL = 0.1025  # wrist axis -> fingertip centre (tcp)
FINGER_MAX = 0.045  # opening of one finger, fully open
ARM_JOINTS = ("yaw", "shoulder", "elbow", "wrist", "roll")
FINGER_JOINTS = ("finger_left", "finger_right")
ARM_FORCES = (300.0, 300.0, 200.0, 100.0, 50.0)  # N m per arm joint
# rad/s per arm joint: ~1 m/s at the tcp, enough for 3 cm and 0.2 rad steps at 10 Hz
MAX_JOINT_SPEED = (1.5, 1.5, 1.5, 3.0, 4.0)


@dataclass(frozen=True)
class Workspace:
    """Box the tool centre point is kept in (world frame, metres)."""

    low: tuple[float, float, float] = (-0.22, -0.28, 0.02)  # fingertips 1.75 cm below tcp
    high: tuple[float, float, float] = (0.22, 0.28, 0.32)

    def clip(self, xyz: np.ndarray) -> np.ndarray:
        return np.clip(xyz, self.low, self.high)


def solve_ik(target: np.ndarray, yaw: float, base: np.ndarray) -> np.ndarray:
    """Joint angles (5,) placing the tcp at ``target`` (3,), pointing down, rotated by ``yaw``.

    Targets beyond reach are pulled onto the reachable sphere of the wrist.
    """
    d = np.asarray(target, dtype=np.float64) - base
    theta_yaw = math.atan2(d[1], d[0])
    radial = math.hypot(d[0], d[1])
    # wrist axis sits TOOL above the tcp because the tool points straight down
    dr, dz = radial, d[2] + TOOL - SHOULDER_HEIGHT
    dist = math.hypot(dr, dz)
    reach = UPPER_ARM + FOREARM - 1e-4
    if dist > reach:
        dr, dz, dist = dr * reach / dist, dz * reach / dist, reach
    cos_elbow = (dist**2 - UPPER_ARM**2 - FOREARM**2) / (2 * UPPER_ARM * FOREARM)
    elbow = math.acos(max(-1.0, min(1.0, cos_elbow)))  # >= 0: elbow up
    # link directions are angles from vertical; pitch about y turns +z toward +radial
    towards_wrist = math.atan2(dr, dz)
    shoulder = towards_wrist - math.atan2(
        FOREARM * math.sin(elbow), UPPER_ARM + FOREARM * math.cos(elbow)
    )
    wrist = math.pi - shoulder - elbow  # tool direction pi = straight down
    roll = wrap_yaw(theta_yaw - yaw)
    return np.array([theta_yaw, shoulder, elbow, wrist, roll])


def wrap_yaw(angle: float) -> float:
    """Angle in [-pi/2, pi/2): the gripper is symmetric under a half turn."""
    return (angle + math.pi / 2) % math.pi - math.pi / 2


class Arm:
    """Arm in a ``Scene`` as body ``"arm"``; keeps a commanded tcp target between steps."""

    def __init__(self, scene: Scene, base: tuple[float, float, float] = (-0.45, 0.0, 0.0)) -> None:
        self.scene = scene
        self.base = np.asarray(base, dtype=np.float64)
        self.body = scene.load("arm", "arm5.urdf", position=base, fixed=True)
        client = scene.client
        names = {
            client.getJointInfo(self.body, j)[1].decode(): j
            for j in range(client.getNumJoints(self.body))
        }
        self.arm_joints = [names[n] for n in ARM_JOINTS]
        self.finger_joints = [names[n] for n in FINGER_JOINTS]
        self.tcp_link = names["tcp_joint"]
        self.workspace = Workspace()
        self.target = np.zeros(3)
        self.target_yaw = 0.0
        self.target_opening = FINGER_MAX
        for j in self.finger_joints:  # fingers are friction grippers: give them grip and damping
            client.changeDynamics(self.body, j, lateralFriction=2.0, jointDamping=0.1)

    # ---- state --------------------------------------------------------------------------
    def tcp_position(self) -> np.ndarray:
        """(3,) world position of the fingertip centre."""
        return np.asarray(self.scene.client.getLinkState(self.body, self.tcp_link)[4])

    def tcp_yaw(self) -> float:
        q = self.scene.client.getJointState(self.body, self.arm_joints[0])[0]
        r = self.scene.client.getJointState(self.body, self.arm_joints[4])[0]
        return wrap_yaw(q - r)

    def opening(self) -> float:
        """Distance between the fingers' inner faces (m), 0 when closed."""
        return float(
            sum(self.scene.client.getJointState(self.body, j)[0] for j in self.finger_joints)
        )

    def proprio(self) -> np.ndarray:
        """(5,) float32: tcp xyz, gripper opening, tcp yaw."""
        return np.concatenate([self.tcp_position(), [self.opening(), self.tcp_yaw()]]).astype(
            np.float32
        )

    # ---- motion -------------------------------------------------------------------------
    def teleport(self, tcp: np.ndarray, yaw: float = 0.0, opening: float = 2 * FINGER_MAX) -> None:
        """Put the arm at a tcp pose instantly (resets, goal states) and make it the target."""
        self.target = self.workspace.clip(np.asarray(tcp, dtype=np.float64))
        self.target_yaw = float(yaw)
        self.target_opening = float(np.clip(opening / 2, 0.0, FINGER_MAX))
        q = solve_ik(self.target, self.target_yaw, self.base)
        client = self.scene.client
        for j, angle in zip(self.arm_joints, q):
            client.resetJointState(self.body, j, float(angle), 0.0)
        for j in self.finger_joints:
            client.resetJointState(self.body, j, self.target_opening, 0.0)
        self.drive()

    def command(self, delta_xyz: np.ndarray, grip: float, delta_yaw: float = 0.0) -> None:
        """Move the commanded tcp by ``delta_xyz`` (m); grip in [-1, 1]: -1 open, +1 closed."""
        self.target = self.workspace.clip(self.target + delta_xyz)
        self.target_yaw = wrap_yaw(self.target_yaw + delta_yaw)
        self.target_opening = FINGER_MAX * (1.0 - grip) / 2.0
        self.drive()

    def drive(self) -> None:
        """Send joint targets for the commanded pose; speed limits keep contacts gentle."""
        client = self.scene.client
        q = solve_ik(self.target, self.target_yaw, self.base)
        for j, angle, force, speed in zip(self.arm_joints, q, ARM_FORCES, MAX_JOINT_SPEED):
            client.setJointMotorControl2(
                self.body,
                j,
                client.POSITION_CONTROL,
                targetPosition=float(angle),
                force=force,
                positionGain=0.3,
                maxVelocity=speed,
            )
        client.setJointMotorControlArray(
            self.body,
            self.finger_joints,
            client.POSITION_CONTROL,
            targetPositions=[self.target_opening] * 2,
            forces=[40.0, 40.0],
            positionGains=[0.2, 0.2],
        )
