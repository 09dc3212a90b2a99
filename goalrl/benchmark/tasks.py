"""Five named evaluation tasks per scene (task1..task5), of graded difficulty.

Each task is one fixed start and goal configuration (objects, tray, goal arm pose), like
OGBench's task1-task5. The test split uses them as written; the validation split uses their
mirror images across the arm's plane (y -> -y): the same difficulty (the arm and table are
symmetric in y), a different configuration. Push and Rearrange tasks all need two or more
skills in sequence (see ``goalrl.benchmark.goals.needs_two_skills``), so a stitch dataset,
whose episodes perform one skill each, never shows one whole.

Coordinates are metres on the table (objects may rest in x -0.15..0.17, y -0.21..0.21).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from goalrl.envs.robot import FINGER_MAX
from goalrl.envs.tasks import TASKS, TRAY_FLOOR, Layout

TASK_NAMES = ("task1", "task2", "task3", "task4", "task5")
ARM_START = (-0.05, 0.0, 0.20)  # tcp of every named task's start (plus a per-seed jitter)
GOAL_ARM_HEIGHT = 0.12  # the goal pictures the arm this high above the last object it moved
TRAY = (0.08, 0.12)  # Rearrange tasks' tray position (x, y)
# Rearrange: the tray's two slots (as in goalrl.envs.tasks), on the diagonal through TRAY
SLOT_A = (TRAY[0] + 0.035, TRAY[1] + 0.035)
SLOT_B = (TRAY[0] - 0.035, TRAY[1] - 0.035)
IN_TRAY = "tray"  # marks an object position inside the tray (its z is the tray floor)


@dataclass(frozen=True)
class NamedTask:
    """Start and goal (x, y) of every object (or the goal tcp xyz in Reach)."""

    name: str
    about: str  # what the task asks, in words
    start: dict[str, tuple[float, float]]  # object -> (x, y); empty in Reach
    goal: dict[str, tuple[float, float] | tuple[float, float, str]]  # object -> (x, y[, tray])
    goal_tcp: tuple[float, float, float] | None = None  # Reach: the point to reach


RED, GREEN, BLUE = "red_cube", "green_cylinder", "blue_block"

NAMED_TASKS: dict[str, tuple[NamedTask, ...]] = {
    "Reach": (
        NamedTask("task1", "reach 0.11 m", {}, {}, goal_tcp=(0.0, 0.08, 0.15)),
        NamedTask("task2", "reach 0.20 m, forward", {}, {}, goal_tcp=(0.10, -0.10, 0.12)),
        NamedTask("task3", "reach 0.26 m, far forward and low",
                  {}, {}, goal_tcp=(0.12, 0.16, 0.08)),
        NamedTask("task4", "reach 0.30 m, a near corner just above the table",
                  {}, {}, goal_tcp=(-0.18, -0.22, 0.05)),
        NamedTask("task5", "reach 0.36 m, a far corner at the table",
                  {}, {}, goal_tcp=(0.18, -0.22, 0.04)),
    ),
    "Push": (
        NamedTask("task1", "push the cube 0.29 m sideways (two pushes in one direction)",
                  {RED: (-0.05, -0.14)}, {RED: (-0.05, 0.15)}),
        NamedTask("task2", "push the cube 0.30 m away from the arm",
                  {RED: (-0.12, 0.05)}, {RED: (0.16, -0.05)}),
        NamedTask("task3", "push the cube 0.33 m diagonally toward the arm",
                  {RED: (0.14, 0.16)}, {RED: (-0.12, -0.04)}),
        NamedTask("task4", "push the cube 0.41 m across the table (three pushes)",
                  {RED: (0.13, -0.18)}, {RED: (-0.12, 0.14)}),
        NamedTask("task5", "push the cube 0.46 m corner to corner (three or more pushes)",
                  {RED: (-0.13, 0.18)}, {RED: (0.15, -0.18)}),
    ),
    "Rearrange": tuple(
        NamedTask(name, about, {RED: (-0.12, -0.16), GREEN: (0.10, -0.14), BLUE: (-0.12, 0.10)},
                  goal)
        for name, about, goal in (
            ("task1", "two short moves: cube and cylinder 0.16 m each",
             {RED: (-0.10, 0.00), GREEN: (-0.06, -0.15)}),
            ("task2", "push the cube 0.17 m and put the cylinder in the tray",
             {RED: (0.05, -0.18), GREEN: (*SLOT_A, IN_TRAY)}),
            ("task3", "two long moves: block 0.29 m, cube 0.35 m",
             {BLUE: (0.14, -0.03), RED: (-0.12, 0.19)}),
            ("task4", "put the cube and the block in the tray",
             {RED: (*SLOT_A, IN_TRAY), BLUE: (*SLOT_B, IN_TRAY)}),
            ("task5", "cube and cylinder in the tray, the block 0.39 m across the table",
             {RED: (*SLOT_A, IN_TRAY), GREEN: (*SLOT_B, IN_TRAY), BLUE: (0.14, -0.19)}),
        )
    ),
}


def named_task(scene: str, name: str) -> NamedTask:
    """Task ``name`` (task1..task5) of ``scene``; ValueError naming the choices."""
    if scene not in NAMED_TASKS:
        raise ValueError(f"scene {scene!r} has no named tasks; choose one of {sorted(NAMED_TASKS)}")
    for task in NAMED_TASKS[scene]:
        if task.name == name:
            return task
    raise ValueError(f"{scene} has no task {name!r}; choose one of {list(TASK_NAMES)}")


def task_layouts(scene: str, name: str, mirror: bool, arm_jitter: np.ndarray) -> tuple[Layout,
                                                                                          Layout]:
    """(start, goal) layouts of a named task; ``mirror``: its y -> -y image (validation);
    ``arm_jitter`` (3,) is added to the start tcp."""
    spec = TASKS[scene]
    task = named_task(scene, name)
    flip = -1.0 if mirror else 1.0
    half = {o.name: o.half_height for o in spec.objects}
    tray = np.array([TRAY[0], flip * TRAY[1], 0.0]) if spec.container else None

    def place(obj: str, where: tuple) -> np.ndarray:
        z = half[obj] + (TRAY_FLOOR if len(where) == 3 and where[2] == IN_TRAY else 0.0)
        return np.array([where[0], flip * where[1], z, 0.0])

    start_objects = {obj: place(obj, xy) for obj, xy in task.start.items()}
    goal_objects = {**start_objects, **{obj: place(obj, w) for obj, w in task.goal.items()}}
    arm = np.array([ARM_START[0], flip * ARM_START[1], ARM_START[2]]) + arm_jitter
    start = Layout(tcp=arm, objects=start_objects, tray=tray)
    if task.goal_tcp is not None:
        goal_tcp = np.array([task.goal_tcp[0], flip * task.goal_tcp[1], task.goal_tcp[2]])
    else:  # above the last object the task moves, as a push or place would leave the arm
        last = goal_objects[list(task.goal)[-1]]
        goal_tcp = np.array([last[0], last[1], GOAL_ARM_HEIGHT])
    goal = Layout(tcp=goal_tcp, opening=2 * FINGER_MAX, objects=goal_objects,
                  tray=None if tray is None else tray.copy())
    return start, goal
