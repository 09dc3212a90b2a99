"""A headless pybullet world whose bodies are addressed by name.

One ``Scene`` owns one pybullet client (DIRECT, so no GUI and no shared state
between environments in one process) and a fixed camera rendered with the CPU
TinyRenderer. Tasks and robots talk to bodies through names, never raw ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from goalrl.envs import quiet
from goalrl.envs.assets import asset_path

p = quiet.pybullet()

PHYSICS_HZ = 240  # pybullet's default step; contacts stay stable at this rate
CONTROL_HZ = 10  # one env step = PHYSICS_HZ // CONTROL_HZ physics substeps


@dataclass(frozen=True)
class Camera:
    """A fixed pinhole camera above the front-left corner, framing the whole workspace.

    Off the arm's vertical plane on purpose: a camera in line with the arm sees the
    forearm hide whatever the gripper is working on.
    """

    eye: tuple[float, float, float] = (0.25, 0.45, 0.5)
    target: tuple[float, float, float] = (-0.02, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov_deg: float = 46.0
    near: float = 0.05
    far: float = 3.0


class Scene:
    """pybullet world: table, named bodies, camera, physics stepping and snapshots."""

    def __init__(self, image_size: int = 64, camera: Camera | None = None) -> None:
        self.client = quiet.bullet_client(p.DIRECT)
        self.client.setPhysicsEngineParameter(deterministicOverlappingPairs=1)
        self.client.setGravity(0, 0, -9.81)
        self.client.setTimeStep(1.0 / PHYSICS_HZ)
        self.image_size = int(image_size)
        self.camera = camera or Camera()
        self._view = self.client.computeViewMatrix(
            self.camera.eye, self.camera.target, self.camera.up
        )
        self._proj = self.client.computeProjectionMatrixFOV(
            self.camera.fov_deg, 1.0, self.camera.near, self.camera.far
        )
        self.bodies: dict[str, int] = {}
        self._movable: list[int] = []  # bodies without a fixed base (ids)
        self.load("table", "table.urdf", fixed=True)

    # ---- bodies -------------------------------------------------------------------------
    def load(
        self,
        name: str,
        urdf: str,
        *,
        position: tuple[float, float, float] = (0.0, 0.0, 0.0),
        fixed: bool = False,
        rgba: tuple[float, float, float, float] | None = None,
    ) -> int:
        """Load ``urdf`` (relative to the assets folder) as body ``name``."""
        if name in self.bodies:
            raise ValueError(f"scene already has a body named {name!r}")
        body = self.client.loadURDF(asset_path(urdf), basePosition=position, useFixedBase=fixed)
        if rgba is not None:
            self.client.changeVisualShape(body, -1, rgbaColor=rgba)
        # restoreState does not restore bullet's sleeping (deactivation) state, so a body asleep
        # in one history and awake in another makes the same restored state diverge
        self.client.changeDynamics(body, -1, activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING)
        self.bodies[name] = body
        if not fixed:
            self._movable.append(body)
        return body

    def clear_contacts(self) -> None:
        """Drop bullet's cached contact manifolds of every movable body.

        Contacts warm-start the solver and survive teleports and restoreState, so the same
        layout would otherwise simulate differently after different histories. Parking the
        bodies apart, far below the table, and running collision detection removes their
        overlapping pairs and with them the caches; callers then teleport the bodies back.
        """
        for i, body in enumerate(self._movable):
            self.client.resetBasePositionAndOrientation(body, (10.0 * (i + 1), 0.0, -10.0),
                                                        (0.0, 0.0, 0.0, 1.0))
        self.client.performCollisionDetection()

    def set_pose(self, name: str, position: np.ndarray, quat: np.ndarray | None = None) -> None:
        """Teleport body ``name`` and zero its velocity."""
        quat = (0.0, 0.0, 0.0, 1.0) if quat is None else tuple(quat)
        body = self.bodies[name]
        self.client.resetBasePositionAndOrientation(body, tuple(map(float, position)), quat)
        self.client.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0))

    def position(self, name: str) -> np.ndarray:
        """(3,) float64 world position of body ``name``."""
        return np.asarray(self.client.getBasePositionAndOrientation(self.bodies[name])[0])

    def pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """World position (3,) and quaternion xyzw (4,) of body ``name``."""
        pos, quat = self.client.getBasePositionAndOrientation(self.bodies[name])
        return np.asarray(pos), np.asarray(quat)

    # ---- simulation ---------------------------------------------------------------------
    def step_physics(self, substeps: int = PHYSICS_HZ // CONTROL_HZ) -> None:
        for _ in range(substeps):
            self.client.stepSimulation()

    def render(self) -> np.ndarray:
        """(H, W, 3) uint8 camera image."""
        _, _, rgba, _, _ = self.client.getCameraImage(
            self.image_size,
            self.image_size,
            self._view,
            self._proj,
            renderer=p.ER_TINY_RENDERER,
            flags=p.ER_NO_SEGMENTATION_MASK,
            shadow=0,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(self.image_size, self.image_size, 4)
        return np.ascontiguousarray(rgba[:, :, :3])

    # ---- snapshots ----------------------------------------------------------------------
    def save(self) -> int:
        """In-memory snapshot of the whole physics state (contacts included); id is per process."""
        return self.client.saveState()

    def restore(self, state_id: int) -> None:
        self.client.restoreState(stateId=state_id)

    def forget(self, state_id: int) -> None:
        self.client.removeState(state_id)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client = None  # type: ignore[assignment]
