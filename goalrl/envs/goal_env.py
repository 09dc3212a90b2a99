"""The tabletop scenes as ``gymnasium_robotics`` GoalEnvs with camera images.

Observation dict:
  observation        (5,) float32  tcp xyz, gripper opening, gripper yaw
  achieved_goal      (G,) float32  object positions (tcp position for Reach, heights for Grasp)
  desired_goal       (G,) float32  the same quantities in the goal layout
  image              (H, W, 3) uint8  camera view now
  desired_goal_image (H, W, 3) uint8  camera view of the goal layout
  state              (5+C,) float32  observation then the scene's coordinates: each object's
                                     xyz and the tray's xy (goalrl.envs.state)
  desired_goal_state (5+C,) float32  the same for the goal layout (arm pose pictured in it)

Action (4,) or (5,) with ``yaw=True``, each in [-1, 1]: tcp displacement dx, dy, dz
(scaled by ``max_step`` metres), gripper command (-1 open .. +1 closed), and optional
yaw rate (scaled by ``max_yaw_step`` rad). Out-of-range values are clipped; a NaN or
wrongly shaped action raises ``ValueError``. One step is 1/10 s of simulated time.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from goalrl.envs import quiet
from goalrl.envs.robot import Arm, wrap_yaw
from goalrl.envs.scene import CONTROL_HZ, Scene
from goalrl.envs.state import GOAL_STATE_KEY, STATE_KEY, state_dim, state_vector
from goalrl.envs.tasks import TASKS, Layout, Task, goal_distance, is_success

GoalEnv = quiet.gymnasium_robotics().core.GoalEnv

OFF_TABLE_Z = -0.05  # an object this far below the table surface (z = 0) has fallen off


# camera frames: below 8 px the conv trunk has no cells; above 512 px TinyRenderer frames cost
# seconds each and a 50-step episode holds gigabytes (the learners use 16-128 px)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 512

class TabletopGoalEnv(GoalEnv):
    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(
        self,
        task: str | Task = "Push",
        image_size: int = 64,
        yaw: bool = False,
        distance_threshold: float = 0.05,
        max_step: float = 0.03,
        max_yaw_step: float = 0.2,
        render_mode: str | None = "rgb_array",
        goal_source: str | None = None,
        skills_per_goal: int = 1,
    ) -> None:
        if isinstance(task, str):
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
            task = TASKS[task]
        if not MIN_IMAGE_SIZE <= int(image_size) <= MAX_IMAGE_SIZE:
            raise ValueError(f"image_size must be {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}, "
                             f"got {image_size}")
        self.task = task
        self.goal_source = _check_goal_source(task, goal_source)
        # play goals: how many scripted skills run back to back from the start. With 2 or more
        # some goals lie beyond what one skill of the play data does (on Push: farther than
        # one push moves the cube), a test of stitching skills together
        if int(skills_per_goal) < 1 or int(skills_per_goal) != skills_per_goal:
            raise ValueError(
                f"skills_per_goal must be a whole number >= 1, got {skills_per_goal!r}"
            )
        if skills_per_goal > 1 and self.goal_source != "play":
            raise ValueError(
                f"skills_per_goal={skills_per_goal} needs play goals (goal_source='play'); "
                f"{task.name} here draws its goals from goal_source={self.goal_source!r}"
            )
        self.skills_per_goal = int(skills_per_goal)
        self.image_size = int(image_size)
        self.yaw_control = bool(yaw)
        self.distance_threshold = float(distance_threshold)
        self.max_step = float(max_step)
        self.max_yaw_step = float(max_yaw_step)
        self.render_mode = render_mode

        self.scene = Scene(self.image_size)
        self.arm = Arm(self.scene)
        if task.container:
            self.scene.load("tray", "tray.urdf", position=(0.0, 0.0, -1.0), fixed=True)
        for spec in task.objects:
            self.scene.load(spec.name, spec.urdf, position=(0.0, 0.0, -1.0), rgba=spec.rgba)
        # every reset starts from this snapshot so physics never depends on earlier episodes
        self._pristine = self.scene.save()

        img = gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        goal = gym.spaces.Box(-10.0, 10.0, (task.goal_dim,), np.float32)
        state = gym.spaces.Box(-10.0, 10.0, (state_dim(task.scene_dim),), np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "observation": gym.spaces.Box(-10.0, 10.0, (5,), np.float32),
                "achieved_goal": goal,
                "desired_goal": goal,
                "image": img,
                "desired_goal_image": img,
                STATE_KEY: state,
                GOAL_STATE_KEY: state,
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (5 if yaw else 4,), np.float32)
        self.start_layout: Layout | None = None
        self.goal_layout: Layout | None = None
        self.goal = np.zeros(task.goal_dim, np.float32)
        self.goal_image = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        self.goal_state = np.zeros(state_dim(task.scene_dim), np.float32)

    # ---- gymnasium API ------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.scene.restore(self._pristine)
        options = options or {}
        start = options.get("layout") or self.task.sample_layout(self.np_random)
        goal = options.get("goal_layout") or self._sample_goal(start)
        self.set_goal(goal)
        self.apply_layout(start)
        self.start_layout = start
        obs = self._observation()
        return obs, self._info(obs)

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.actuate(action)
        obs = self._observation()
        info = self._info(obs)
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], info))
        terminated = bool(self.compute_terminated(obs["achieved_goal"], obs["desired_goal"], info))
        truncated = bool(self.compute_truncated(obs["achieved_goal"], obs["desired_goal"], info))
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray:
        return self.scene.render()

    def close(self) -> None:
        self.scene.close()

    # ---- GoalEnv: vectorised over leading batch dims --------------------------------------
    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> Any:
        """1.0 where the goal is met, else 0.0 (probability-of-reaching reward)."""
        return is_success(self.task, achieved_goal, desired_goal, self.distance_threshold).astype(
            np.float32
        )

    def compute_terminated(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any
    ) -> Any:
        """Never: episodes end by the time limit, so a policy may stay at its goal."""
        return np.zeros(np.shape(achieved_goal)[:-1], dtype=bool)

    def compute_truncated(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any
    ) -> Any:
        """Never here: gymnasium's TimeLimit wrapper truncates at ``max_episode_steps``."""
        return np.zeros(np.shape(achieved_goal)[:-1], dtype=bool)

    # ---- scene configuration ------------------------------------------------------------
    def check_action(self, action: Any) -> np.ndarray:
        """The action as float64, clipped to [-1, 1]; ValueError for NaN or a wrong shape."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape} "
                f"(dx, dy, dz, grip{', yaw' if self.yaw_control else ''}), got shape {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or infinite values: {a.tolist()}")
        return np.clip(a, -1.0, 1.0)

    def actuate(self, action: Any) -> None:
        """Apply one action for one control step of physics (no rendering, no observation)."""
        a = self.check_action(action)
        dyaw = a[4] * self.max_yaw_step if self.yaw_control else 0.0
        self.arm.command(a[:3] * self.max_step, grip=float(a[3]), delta_yaw=dyaw)
        self.scene.step_physics()

    def _sample_goal(self, start: Layout) -> Layout:
        """The episode's goal: a future state of a scripted skill, or a drawn configuration."""
        if self.goal_source == "play":
            from goalrl.envs.play import play_goal  # play.py imports this module

            # 1.5x the success radius: the start itself never counts as reached
            goal = play_goal(
                self, start, self.np_random, 1.5 * self.distance_threshold,
                skills=self.skills_per_goal,
            )
            self.scene.restore(self._pristine)
            if goal is not None:
                return goal
        return self.task.sample_goal(self.np_random, start)

    def apply_layout(self, layout: Layout) -> None:
        """Teleport the arm and every object into ``layout`` (velocities zeroed)."""
        self.scene.clear_contacts()  # the layout then simulates the same whatever came before
        if self.task.container:
            self.scene.set_pose("tray", layout.tray)
        for spec in self.task.objects:
            x, y, z, yaw = layout.objects[spec.name]
            quat = self.scene.client.getQuaternionFromEuler((0.0, 0.0, float(yaw)))
            self.scene.set_pose(spec.name, np.array([x, y, z]), np.asarray(quat))
        self.arm.teleport(layout.tcp, layout.yaw, layout.opening)

    def set_goal(self, goal: Layout) -> None:
        """Make ``goal`` the desired layout; its image is rendered with the scene put in it."""
        state = self.scene.save()
        self.apply_layout(goal)
        self.goal_image = self.scene.render()
        self.goal = self.task.goal_vector(goal)
        self.goal_state = state_vector(
            [*goal.tcp, goal.opening, wrap_yaw(goal.yaw)], self.task.scene_vector(goal)
        )
        self.goal_layout = goal
        self.scene.restore(state)
        self.scene.forget(state)

    def current_layout(self) -> Layout:
        objects = {}
        for spec in self.task.objects:
            pos, quat = self.scene.pose(spec.name)
            yaw = self.scene.client.getEulerFromQuaternion(quat)[2]
            objects[spec.name] = np.array([*pos, yaw])
        tray = self.scene.position("tray") if self.task.container else None
        return Layout(
            tcp=self.arm.tcp_position(),
            yaw=self.arm.tcp_yaw(),
            opening=self.arm.opening(),
            objects=objects,
            tray=tray,
        )

    def achieved_goal(self) -> np.ndarray:
        if self.task.goal == "tcp":
            return self.arm.tcp_position().astype(np.float32)
        positions = [self.scene.position(s.name) for s in self.task.objects]
        if self.task.goal == "lift":
            return np.array([p[2] for p in positions], dtype=np.float32)
        return np.concatenate(positions).astype(np.float32)

    def save_state(self) -> dict[str, Any]:
        """Snapshot of physics and goal (valid in this process) for ``restore_state``."""
        return {
            "physics": self.scene.save(),
            "arm_target": (self.arm.target.copy(), self.arm.target_yaw, self.arm.target_opening),
            "goal": (self.goal.copy(), self.goal_image.copy(), self.goal_layout,
                     self.goal_state.copy()),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        self.scene.restore(state["physics"])
        target, yaw, opening = state["arm_target"]
        self.arm.target, self.arm.target_yaw, self.arm.target_opening = target.copy(), yaw, opening
        self.arm.drive()
        goal, image, layout, goal_state = state["goal"]
        self.goal, self.goal_image, self.goal_layout = goal.copy(), image.copy(), layout
        self.goal_state = goal_state.copy()

    def remove_state(self, state: dict[str, Any]) -> None:
        self.scene.forget(state["physics"])

    # ---- helpers --------------------------------------------------------------------------
    def _observation(self) -> dict[str, np.ndarray]:
        proprio, achieved = self.arm.proprio(), self.achieved_goal()
        return {
            "observation": proprio,
            "achieved_goal": achieved,
            "desired_goal": self.goal.copy(),
            "image": self.scene.render(),
            "desired_goal_image": self.goal_image.copy(),
            STATE_KEY: state_vector(proprio, self.task.scene_vector(self.current_layout())),
            GOAL_STATE_KEY: self.goal_state.copy(),
        }

    def _info(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        ag, dg = obs["achieved_goal"], obs["desired_goal"]
        info = {
            "is_success": bool(is_success(self.task, ag, dg, self.distance_threshold)),
            "distance": float(goal_distance(self.task, ag, dg)),
        }
        arm = self.arm_distance()
        if arm is not None:
            info["arm_distance"] = arm
        info["objects_off_table"] = self.objects_off_table()
        return info

    def objects_off_table(self) -> int:
        """How many objects have fallen off the table (they keep falling: their distance grows
        without bound and would dominate any mean over episodes)."""
        return sum(
            int(self.scene.position(s.name)[2] < OFF_TABLE_Z) for s in self.task.objects
        )

    def arm_distance(self) -> float | None:
        """Metres from the tcp to the arm pose pictured in the goal image (None: no goal yet).

        The pictured arm is not part of the goal, but how close the arm gets to it tells a
        policy that copies the arm from one that moves the objects.
        """
        if self.goal_layout is None:
            return None
        return float(np.linalg.norm(self.arm.tcp_position() - self.goal_layout.tcp))


GOAL_SOURCES = ("play", "layout")


def _check_goal_source(task: Task, goal_source: str | None) -> str:
    """``play`` where the task names goal skills (the default there), else ``layout``."""
    if goal_source is None:
        return "play" if task.goal_skills else "layout"
    if goal_source not in GOAL_SOURCES:
        raise ValueError(f"goal_source must be one of {GOAL_SOURCES}, got {goal_source!r}")
    if goal_source == "play" and not task.goal_skills:
        raise ValueError(
            f"goal_source='play' needs a scene with goal skills; {task.name} has none "
            f"(its goals come from goal_source='layout')"
        )
    return goal_source
