"""What each scene contains, how its layouts and goals are drawn, and when a goal is met.

A ``Layout`` is a full scene configuration (arm tcp pose + object poses). Goals are
layouts too: the goal image is the camera view of the goal layout, so a goal is
always a state the scene can be put in. Success functions are pure and vectorised
over any leading batch shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from goalrl.envs.robot import FINGER_MAX

RGBA = tuple[float, float, float, float]
RED: RGBA = (0.85, 0.15, 0.15, 1.0)
GREEN: RGBA = (0.2, 0.7, 0.25, 1.0)
BLUE: RGBA = (0.2, 0.35, 0.9, 1.0)
YELLOW: RGBA = (0.95, 0.85, 0.1, 1.0)
PURPLE: RGBA = (0.6, 0.2, 0.75, 1.0)

# Region of the table where objects are placed (x, y); inside the arm's workspace.
OBJECT_LOW = np.array([-0.15, -0.21])
OBJECT_HIGH = np.array([0.17, 0.21])
TRAY_HALF = 0.08  # tray outer half-width (envs/assets/tray.urdf)
TRAY_FLOOR = 0.004  # tray floor thickness
LIFT_HEIGHT = 0.10  # Grasp: an object counts as lifted this far above its rest height


@dataclass(frozen=True)
class ObjectSpec:
    name: str  # body name in the scene
    urdf: str  # relative to the assets folder
    rgba: RGBA
    half_height: float  # rest height of the centre above the surface
    width: float  # extent the gripper closes on (m)


CUBE_RED = ObjectSpec("red_cube", "objects/cube.urdf", RED, 0.02, 0.04)
CYLINDER_GREEN = ObjectSpec("green_cylinder", "objects/cylinder.urdf", GREEN, 0.02, 0.04)
BLOCK_BLUE = ObjectSpec("blue_block", "objects/block.urdf", BLUE, 0.015, 0.03)
# held out of every play scene: only Grasp-v0 has these shapes and colours
TALL_BOX_YELLOW = ObjectSpec("yellow_tall_box", "objects/tall_box.urdf", YELLOW, 0.025, 0.03)
SLIM_CYLINDER_PURPLE = ObjectSpec(
    "purple_slim_cylinder", "objects/slim_cylinder.urdf", PURPLE, 0.025, 0.032
)


@dataclass
class Layout:
    """A scene configuration: where the tcp is and where every object rests."""

    tcp: np.ndarray  # (3,) fingertip centre
    yaw: float = 0.0  # gripper yaw (rad)
    opening: float = 2 * FINGER_MAX  # distance between fingers (m)
    objects: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (4,) x, y, z, yaw
    tray: np.ndarray | None = None  # (3,) tray position, fixed within an episode

    def copy(self) -> Layout:
        return replace(
            self,
            tcp=self.tcp.copy(),
            objects={k: v.copy() for k, v in self.objects.items()},
            tray=None if self.tray is None else self.tray.copy(),
        )


@dataclass(frozen=True)
class Task:
    """One scene kind. ``goal`` is "tcp" (reach a point), "place" (objects at positions)
    or "lift" (any object lifted ``LIFT_HEIGHT``)."""

    name: str
    objects: tuple[ObjectSpec, ...]
    goal: str
    container: bool = False
    max_episode_steps: int = 50
    p_in_tray: float = 0.0  # Rearrange: chance that a goal puts an object in the tray
    p_lifted_goal: float = 0.0  # PickPlace: chance that the goal holds the object in the air
    # scripted skills (and weights) whose end states are this scene's goals by default: a goal
    # is then a reachable future state of the start (goalrl.envs.play.play_goal); empty: goals
    # come from ``sample_goal``
    goal_skills: tuple[tuple[str, float], ...] = ()

    @property
    def goal_dim(self) -> int:
        if self.goal == "tcp":
            return 3
        if self.goal == "lift":
            return len(self.objects)
        return 3 * len(self.objects)

    @property
    def goal_shows_scene(self) -> bool:
        """Whether the goal vector holds every scene coordinate (Reach, Push), so that data
        recorded without a ``state`` field can stand in proprio and achieved_goal for it."""
        return self.goal in ("tcp", "place") and not self.container

    @property
    def scene_dim(self) -> int:
        """Length of ``scene_vector``."""
        if self.goal == "tcp":
            return 3
        return 3 * len(self.objects) + (2 if self.container else 0)

    def scene_vector(self, layout: Layout) -> np.ndarray:
        """(scene_dim,) float32: what a state-based agent sees of the scene besides the arm:
        each object's xyz, then the tray's xy (Reach: the tcp's xyz, its goal). It leaves out
        nothing that varies between episodes, unlike the goal vector (goalrl.envs.state)."""
        if self.goal == "tcp":
            return layout.tcp.astype(np.float32)
        parts = [layout.objects[s.name][:3] for s in self.objects]
        if self.container:
            parts.append(layout.tray[:2])
        return np.concatenate(parts).astype(np.float32)

    # ---- layouts ------------------------------------------------------------------------
    def sample_layout(self, rng: np.random.Generator) -> Layout:
        """A random start: objects apart from each other and from the tray, arm above."""
        tray = None
        taken: list[tuple[np.ndarray, float]] = []
        if self.container:
            tray_xy = _free_xy(rng, taken, radius=TRAY_HALF + 0.01, margin=TRAY_HALF)
            taken.append((tray_xy, TRAY_HALF + 0.01))
            tray = np.array([tray_xy[0], tray_xy[1], 0.0])
        objects = {}
        for spec in self.objects:
            xy = _free_xy(rng, taken, radius=0.045)
            taken.append((xy, 0.045))
            objects[spec.name] = np.array(
                [xy[0], xy[1], spec.half_height, rng.uniform(-math.pi, math.pi)]
            )
        tcp = np.array([rng.uniform(-0.1, 0.0), rng.uniform(-0.1, 0.1), rng.uniform(0.16, 0.24)])
        return Layout(tcp=tcp, objects=objects, tray=tray)

    def sample_goal(self, rng: np.random.Generator, start: Layout) -> Layout:
        """A goal configuration drawn directly (no simulation) for an episode from ``start``.

        Objects anywhere on the table and the arm near one of them: reachable configurations,
        but not necessarily within one episode (``goal_source="layout"`` of the env).
        """
        goal = start.copy()
        if self.goal == "tcp":
            goal.tcp = np.array(
                [rng.uniform(-0.18, 0.18), rng.uniform(-0.22, 0.22), rng.uniform(0.04, 0.25)]
            )
            goal.opening = rng.uniform(0.0, 2 * FINGER_MAX)
            return goal
        if self.goal == "lift":
            return self._lifted_goal(rng, goal, self.objects[rng.integers(len(self.objects))])
        if self.p_lifted_goal and rng.random() < self.p_lifted_goal:
            goal.objects = {}
            # place other objects first so the lifted one is drawn clear of them
            for spec in self.objects:
                goal.objects[spec.name] = start.objects[spec.name].copy()
            spec = self.objects[0]
            xy = _free_xy(rng, [], radius=0.045)
            goal.objects[spec.name] = np.array([xy[0], xy[1], spec.half_height, 0.0])
            return self._lifted_goal(rng, goal, spec)
        self._place_goal_objects(rng, goal)
        # the arm hovers near where it left the last object: a plausible end of a push/place
        anchor = goal.objects[self.objects[rng.integers(len(self.objects))].name][:2]
        goal.tcp = np.array([*(anchor + rng.uniform(-0.05, 0.05, size=2)), rng.uniform(0.09, 0.16)])
        goal.tcp[:2] = np.clip(goal.tcp[:2], [-0.2, -0.26], [0.2, 0.26])
        goal.opening = 2 * FINGER_MAX
        return goal

    def _place_goal_objects(self, rng: np.random.Generator, goal: Layout) -> None:
        taken: list[tuple[np.ndarray, float]] = []
        tray_slots: list[np.ndarray] = []
        if goal.tray is not None:
            taken.append((goal.tray[:2], TRAY_HALF + 0.01))
            # two slots inside the tray, on a random diagonal
            d = 0.035 * np.array([1.0, rng.choice([-1.0, 1.0])])
            tray_slots = [goal.tray[:2] + d, goal.tray[:2] - d]
        for spec in self.objects:
            if tray_slots and rng.random() < self.p_in_tray:
                xy = tray_slots.pop()
                z = TRAY_FLOOR + spec.half_height
            else:
                xy = _free_xy(rng, taken, radius=0.045)
                z = spec.half_height
                taken.append((xy, 0.045))
            goal.objects[spec.name] = np.array([xy[0], xy[1], z, rng.uniform(-math.pi, math.pi)])

    @staticmethod
    def _lifted_goal(rng: np.random.Generator, goal: Layout, spec: ObjectSpec) -> Layout:
        """The gripper holds ``spec`` in the air, fingers closed on its width."""
        x, y = goal.objects[spec.name][:2]
        z = spec.half_height + LIFT_HEIGHT + rng.uniform(0.01, 0.08)
        yaw = rng.uniform(-math.pi / 2, math.pi / 2)
        goal.objects[spec.name] = np.array([x, y, z, yaw])
        goal.tcp = np.array([x, y, z])
        goal.yaw = yaw
        goal.opening = spec.width
        return goal

    # ---- goals as vectors ---------------------------------------------------------------
    def goal_vector(self, layout: Layout) -> np.ndarray:
        """(goal_dim,) float32 desired/achieved goal of a layout."""
        if self.goal == "tcp":
            return layout.tcp.astype(np.float32)
        if self.goal == "lift":
            # any object lifted is success, so the desired goal is the lift height of each
            return self.lift_targets()
        return np.concatenate([layout.objects[s.name][:3] for s in self.objects]).astype(np.float32)

    def lift_targets(self) -> np.ndarray:
        """(n_objects,) height at which each object counts as lifted (Grasp)."""
        return np.array([s.half_height + LIFT_HEIGHT for s in self.objects], dtype=np.float32)


def _free_xy(
    rng: np.random.Generator,
    taken: list[tuple[np.ndarray, float]],
    radius: float,
    margin: float = 0.0,
) -> np.ndarray:
    """A table point at least ``radius + r`` away from every (centre, r) in ``taken``."""
    low, high = OBJECT_LOW + margin, OBJECT_HIGH - margin
    for _ in range(1000):
        xy = rng.uniform(low, high)
        if all(np.linalg.norm(xy - c) >= radius + r for c, r in taken):
            return xy
    raise RuntimeError("could not place an object on the table without overlap")


# ---- success, vectorised over any batch shape -------------------------------------------
def object_distances(achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
    """(..., n) Euclidean distance per object (or per tcp) between flat 3-d goal vectors."""
    a = np.asarray(achieved, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    diff = (a - d).reshape(*a.shape[:-1], -1, 3)
    return np.linalg.norm(diff, axis=-1)


def is_success(
    task: Task, achieved: np.ndarray, desired: np.ndarray, threshold: float
) -> np.ndarray:
    """(...,) bool: every object within ``threshold`` of its goal, or (lift) any object lifted."""
    if task.goal == "lift":
        return np.any(np.asarray(achieved) >= np.asarray(desired), axis=-1)
    return np.all(object_distances(achieved, desired) < threshold, axis=-1)


def goal_distance(task: Task, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
    """(...,) mean distance to goal (m); for lift, how far the best object is below its target."""
    if task.goal == "lift":
        return np.clip(np.asarray(desired) - np.asarray(achieved), 0, None).min(axis=-1)
    return object_distances(achieved, desired).mean(axis=-1)


TASKS: dict[str, Task] = {
    "Reach": Task("Reach", objects=(), goal="tcp", max_episode_steps=30),
    "Push": Task(
        "Push", objects=(CUBE_RED,), goal="place", max_episode_steps=50,
        goal_skills=(("push", 1.0),),
    ),
    "PickPlace": Task(
        "PickPlace", objects=(CUBE_RED,), goal="place", max_episode_steps=60, p_lifted_goal=0.5
    ),
    "Rearrange": Task(
        "Rearrange",
        objects=(CUBE_RED, CYLINDER_GREEN, BLOCK_BLUE),
        goal="place",
        container=True,
        max_episode_steps=80,
        p_in_tray=0.35,
        goal_skills=(("pick_place", 0.6), ("push", 0.4)),
    ),
    "Grasp": Task(
        "Grasp",
        objects=(TALL_BOX_YELLOW, SLIM_CYLINDER_PURPLE),
        goal="lift",
        max_episode_steps=40,
    ),
}
