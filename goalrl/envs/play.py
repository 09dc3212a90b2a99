"""Scripted, noisy "play" policies that make diverse unlabeled data.

A play episode is a sequence of sub-skills chosen at random for the scene: reach a
random point, push an object toward a random point, pick an object and place it
elsewhere (or in the tray), and random motion. Each skill is a generator of actions
over privileged scene state; noise on waypoints and actions makes the data diverse
and imperfect, as real play data is. Every finished skill is scored, so a dataset
records how often each sub-skill succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from goalrl.envs.goal_env import TabletopGoalEnv
from goalrl.envs.noise import make_noise
from goalrl.envs.tasks import OBJECT_HIGH, OBJECT_LOW, TRAY_FLOOR, Layout, ObjectSpec

SKILLS = ("reach", "push", "pick_place", "random")
# how often each scene starts each skill (skills that need objects are skipped without)
SKILL_WEIGHTS = {
    "Reach": {"reach": 0.7, "random": 0.3},
    "Push": {"push": 0.6, "reach": 0.2, "random": 0.2},
    "PickPlace": {"pick_place": 0.5, "push": 0.3, "reach": 0.1, "random": 0.1},
    "Rearrange": {"pick_place": 0.5, "push": 0.3, "reach": 0.1, "random": 0.1},
    "Grasp": {"pick_place": 1.0},
}


@dataclass
class SkillStats:
    attempts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKILLS, 0))
    successes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKILLS, 0))

    def record(self, skill: str, success: bool) -> None:
        self.attempts[skill] += 1
        self.successes[skill] += int(success)

    def merge(self, other: SkillStats) -> None:
        for k in SKILLS:
            self.attempts[k] += other.attempts[k]
            self.successes[k] += other.successes[k]

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            k: {
                "attempts": self.attempts[k],
                "successes": self.successes[k],
                "success_rate": self.successes[k] / self.attempts[k] if self.attempts[k] else None,
            }
            for k in SKILLS
            if self.attempts[k]
        }


class PlayPolicy:
    """Noisy scripted play for a ``TabletopGoalEnv``; call ``reset()`` after each env reset."""

    def __init__(
        self,
        env: TabletopGoalEnv,
        seed: int | list[int] | None = None,  # numpy seed (a list: [seed, attempt])
        action_noise: float = 0.15,
        waypoint_noise: float = 0.01,
        skill_weights: dict[str, float] | None = None,
        noise: str = "gaussian",
        noise_theta: float = 0.15,
        random_steps: tuple[int, int] = (5, 15),
    ) -> None:
        self.env = env
        self.rng = np.random.default_rng(seed)
        self.action_noise = action_noise
        self.waypoint_noise = waypoint_noise
        # added to every scripted action: "gaussian" (independent, std action_noise) or "ou"
        # (temporally correlated with lag-1 autocorrelation 1 - noise_theta, same std)
        self.noise = make_noise(noise, action_noise, noise_theta, self.rng)
        low, high = (int(n) for n in random_steps)
        if not 1 <= low < high:
            raise ValueError(f"random_steps must be (low, high) with 1 <= low < high, "
                             f"got {tuple(random_steps)}")
        self.random_steps = (low, high)  # a random-motion segment lasts low..high-1 steps
        mix = skill_weights or SKILL_WEIGHTS[env.task.name]
        weights = mix
        if not env.task.objects:
            weights = {k: w for k, w in mix.items() if k in ("reach", "random")}
        if sum(weights.values()) <= 0:
            raise ValueError(
                f"no play skill of the mix {mix} can run in {env.task.name} (a scene without "
                f"objects has only reach and random)"
            )
        self.skills = list(weights)
        self.probs = np.array([weights[k] for k in self.skills]) / sum(weights.values())
        self.stats = SkillStats()
        self._skill: Iterator[np.ndarray] | None = None

    def reset(self) -> None:
        self._skill = None
        self.noise.reset()

    def __call__(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Next action (A,) float32 in [-1, 1]."""
        while True:
            if self._skill is None:
                self._skill = self.draw_skill()
            try:
                action = next(self._skill)
                break
            except StopIteration:
                self._skill = None
        return self.add_noise(action)

    def add_noise(self, action: np.ndarray) -> np.ndarray:
        """(A,) float32 in [-1, 1]: ``action`` plus this policy's noise, gripper untouched."""
        noisy = action + self.noise(action.shape)
        noisy[3] = action[3]  # gripper commands stay crisp: noise there only drops objects
        return np.clip(noisy, -1.0, 1.0).astype(np.float32)

    def draw_skill(self) -> Iterator[np.ndarray]:
        """One skill of the mix, drawn by the weights: a generator of noise-free actions."""
        return self._start(self.rng.choice(self.skills, p=self.probs))

    # ---- skills ---------------------------------------------------------------------------
    def _start(self, skill: str) -> Iterator[np.ndarray]:
        if skill == "reach":
            return self._reach()
        if skill == "random":
            return self._random_motion()
        spec = self.env.task.objects[self.rng.integers(len(self.env.task.objects))]
        return self._push(spec) if skill == "push" else self._pick_place(spec)

    def _reach(self) -> Iterator[np.ndarray]:
        ws = self.env.arm.workspace
        point = self.rng.uniform(np.add(ws.low, [0.03, 0.03, 0.03]), np.subtract(ws.high, 0.03))
        grip = self.rng.choice([-1.0, 1.0])
        yield from self._go(point, grip, max_steps=25)
        self.stats.record("reach", np.linalg.norm(self.env.arm.tcp_position() - point) < 0.03)

    def _random_motion(self) -> Iterator[np.ndarray]:
        velocity = np.zeros(4)
        for _ in range(self.rng.integers(self.random_steps[0], self.random_steps[1])):
            velocity = 0.7 * velocity + 0.3 * self.rng.uniform(-1.0, 1.0, size=4)
            yield self._full_action(velocity[:3], float(np.sign(velocity[3])))
        self.stats.record("random", True)

    def _push(self, spec: ObjectSpec) -> Iterator[np.ndarray]:
        obj = self.env.scene.position(spec.name)
        # short pushes (5-15 cm): long ones slide the object off the fingers
        heading = self.rng.uniform(-np.pi, np.pi)
        target = obj[:2] + self.rng.uniform(0.05, 0.15) * np.array(
            [np.cos(heading), np.sin(heading)]
        )
        target = np.clip(target, OBJECT_LOW, OBJECT_HIGH)
        yield from self._push_to(spec, target)
        moved = self.env.scene.position(spec.name)[:2]
        self.stats.record("push", np.linalg.norm(moved - target) < 0.05)

    def _push_to(self, spec: ObjectSpec, target: np.ndarray) -> Iterator[np.ndarray]:
        """Approach from behind, push the object's centre to ``target`` (xy), lift clear."""
        obj = self.env.scene.position(spec.name)
        direction = target - obj[:2]
        direction /= max(np.linalg.norm(direction), 1e-6)
        behind = obj[:2] - direction * (spec.width / 2 + 0.05)
        # fingertips touch the object; the wide hand above them stays clear of its top
        low = max(2 * spec.half_height - 0.0145, self.env.arm.workspace.low[2])
        yield from self._go(np.array([*behind, 0.1]), 1.0, max_steps=15)
        yield from self._go(np.array([*behind, low]), 1.0, max_steps=8)
        # push through: stop with the object's centre at the target
        end = target - direction * (spec.width / 2 + 0.017)
        yield from self._go(np.array([*end, low]), 1.0, max_steps=15, tolerance=0.01)
        yield from self._go(np.array([*end, 0.1]), 1.0, max_steps=6)

    def _pick_place(self, spec: ObjectSpec) -> Iterator[np.ndarray]:
        yield from self._close_on(spec)
        here = self.env.arm.tcp_position()
        yield from self._go(np.array([here[0], here[1], 0.16]), 1.0, max_steps=8)
        lifted = self.env.scene.position(spec.name)[2] > spec.half_height + 0.05
        if self.env.task.goal == "lift":
            self.stats.record("pick_place", lifted)
            for _ in range(3):  # hold it up: the grasp task's success state
                yield self._full_action(np.zeros(3), 1.0)
            return
        target, z = self._place_target(spec)
        yield from self._go(np.array([*target, 0.16]), 1.0, max_steps=15)
        yield from self._go(np.array([*target, z + 0.01]), 1.0, max_steps=8)
        for _ in range(3):
            yield self._full_action(np.zeros(3), -1.0)
        yield from self._go(np.array([*target, 0.14]), -1.0, max_steps=5)
        placed = np.linalg.norm(self.env.scene.position(spec.name)[:2] - target) < 0.05
        self.stats.record("pick_place", bool(lifted and placed))

    # ---- helpers --------------------------------------------------------------------------
    def _close_on(self, spec: ObjectSpec) -> Iterator[np.ndarray]:
        """Open hand above the object, down onto it, then close the fingers on it."""
        obj = self.env.scene.position(spec.name)
        yield from self._go(np.array([obj[0], obj[1], 0.12]), -1.0, max_steps=15)
        obj = self.env.scene.position(spec.name)  # it may have been nudged
        yield from self._go(np.array([obj[0], obj[1], max(obj[2], 0.015)]), -1.0, max_steps=8)
        for _ in range(4):  # close and let the fingers settle on the object
            yield self._full_action(np.zeros(3), 1.0)

    def _place_target(self, spec: ObjectSpec) -> tuple[np.ndarray, float]:
        if self.env.task.container and self.rng.random() < 0.4:
            tray = self.env.scene.position("tray")
            return tray[:2] + self.rng.uniform(-0.03, 0.03, size=2), TRAY_FLOOR + spec.half_height
        return self._random_table_point(), spec.half_height

    def _random_table_point(self) -> np.ndarray:
        return self.rng.uniform(OBJECT_LOW + 0.02, OBJECT_HIGH - 0.02)

    def _go(
        self, point: np.ndarray, grip: float, max_steps: int, tolerance: float = 0.015
    ) -> Iterator[np.ndarray]:
        """Move the tcp to a (noisy) waypoint with a proportional controller."""
        point = point + self.rng.normal(0.0, self.waypoint_noise, size=3)
        point[2] = max(point[2], self.env.arm.workspace.low[2])
        for _ in range(max_steps):
            error = point - self.env.arm.tcp_position()
            if np.linalg.norm(error) < tolerance:
                return
            yield self._full_action(error / self.env.max_step, grip)

    def _full_action(self, xyz: np.ndarray, grip: float) -> np.ndarray:
        action = np.zeros(self.env.action_space.shape, dtype=np.float64)
        action[:3] = np.clip(xyz, -1.0, 1.0)
        action[3] = grip
        return action


GOAL_MARGIN = 0.03  # m: how far outside the object region a goal may leave an object


def play_goal(
    env: TabletopGoalEnv,
    start: Layout,
    rng: np.random.Generator,
    min_move: float,
    tries: int = 20,
    skills: int = 1,
) -> Layout | None:
    """A goal that is a reachable future state of ``start``, or None if none was found.

    From ``start``, ``skills`` noise-free scripted skills of the scene's ``goal_skills`` (push,
    or pick-and-place) run back to back in the simulator, each for at most one episode's
    steps, without rendering; the end state (objects where the last skill left them, arm where
    it finished) is the goal. A draw that moved no object by at least ``min_move`` (m), or left
    one more than ``GOAL_MARGIN`` outside the object region or below the surface, is redrawn,
    so the start never already counts as reached. Leaves the scene in a simulated state: the
    caller puts it back.
    """
    weights = dict(env.task.goal_skills)
    for _ in range(tries):
        env.apply_layout(start)
        policy = PlayPolicy(env, seed=int(rng.integers(2**32)), action_noise=0.0,
                            waypoint_noise=0.0, skill_weights=weights)
        for _ in range(skills):
            for _, action in zip(range(env.task.max_episode_steps), policy.draw_skill()):
                env.actuate(action)
        end = env.current_layout()
        moved = max(
            float(np.linalg.norm(end.objects[name][:2] - start.objects[name][:2]))
            for name in end.objects
        )
        on_table = all(
            pose[2] > 0.0
            and np.all(pose[:2] > OBJECT_LOW - GOAL_MARGIN)
            and np.all(pose[:2] < OBJECT_HIGH + GOAL_MARGIN)
            for pose in end.objects.values()
        )
        if moved >= min_move and on_table:
            return end
    return None


class GoalPushPolicy(PlayPolicy):
    """A scripted pusher that reads the env's goal layout: a yardstick, not a learner.

    It pushes each object toward its goal position in pushes of at most ``max_push`` metres
    (longer ones slide the object off the fingers) until it lies within ``tolerance``, then
    holds the arm still. Benchmarks report it next to learned policies as what the scene
    allows a policy with privileged state in one episode. Noise-free unless asked.
    """

    def __init__(
        self,
        env: TabletopGoalEnv,
        seed: int | None = None,
        action_noise: float = 0.0,
        waypoint_noise: float = 0.0,
        max_push: float = 0.15,
        tolerance: float = 0.02,
    ) -> None:
        if env.task.goal != "place" or env.task.container or not env.task.objects:
            raise ValueError(
                f"GoalPushPolicy needs a scene whose goals place objects on the table without a "
                f"container (Push); {env.task.name} has goal {env.task.goal!r}"
            )
        super().__init__(env, seed, action_noise, waypoint_noise, {"push": 1.0})
        self.max_push = max_push
        self.tolerance = tolerance

    def _start(self, skill: str) -> Iterator[np.ndarray]:
        return self._push_to_goal()

    def _push_to_goal(self) -> Iterator[np.ndarray]:
        for spec in self.env.task.objects:
            while True:
                obj = self.env.scene.position(spec.name)[:2]
                gap = self.env.goal_layout.objects[spec.name][:2] - obj
                dist = float(np.linalg.norm(gap))
                if dist < self.tolerance:
                    break
                here = self.env.arm.tcp_position()
                if here[2] < 0.08:  # lift clear first: moving over the object low knocks it
                    yield from self._go(np.array([*here[:2], 0.1]), 1.0, max_steps=6)
                # every push moves the tcp between heights 8 cm apart, so it always yields
                yield from self._push_to(spec, obj + gap * min(1.0, self.max_push / dist))
        while True:
            yield self._full_action(np.zeros(3), 1.0)


class GraspAttemptPolicy(PlayPolicy):
    """One noisy scripted grasp-and-lift attempt per episode, then hold the lift point.

    Reward-labeled grasp data for fine-tuning (``goalrl collect policy=grasp``). Noise on the
    approach waypoints (``waypoint_noise``, metres) makes it miss the object part of the time;
    a grasp that holds lifts the object well clear of the task's threshold (to ``lift_z``) and
    keeps it there (the hold servos to a fixed point, so action noise does not accumulate), so
    success and failure differ visibly: object up in the gripper, or still on the table.
    """

    def __init__(
        self,
        env: TabletopGoalEnv,
        seed: int | None = None,
        action_noise: float = 0.15,
        waypoint_noise: float = 0.03,
        lift_z: float = 0.2,
    ) -> None:
        if not env.task.objects:
            raise ValueError(f"scene {env.task.name} has no object to grasp")
        super().__init__(env, seed, action_noise, waypoint_noise, {"pick_place": 1.0})
        self.lift_z = lift_z
        self._hold_point: np.ndarray | None = None

    def reset(self) -> None:
        super().reset()
        self._hold_point = None

    def _start(self, skill: str) -> Iterator[np.ndarray]:
        if self._hold_point is not None:
            return self._hold()
        spec = self.env.task.objects[self.rng.integers(len(self.env.task.objects))]
        return self._grasp(spec)

    def _grasp(self, spec: ObjectSpec) -> Iterator[np.ndarray]:
        yield from self._close_on(spec)
        here = self.env.arm.tcp_position()
        self._hold_point = np.array([here[0], here[1], self.lift_z])
        yield from self._hold(max_steps=10, tolerance=0.01)
        self.stats.record("pick_place", self.env.scene.position(spec.name)[2]
                          > spec.half_height + 0.05)

    def _hold(self, max_steps: int | None = None, tolerance: float = 0.0) -> Iterator[np.ndarray]:
        """Servo the closed gripper to the lift point (no waypoint noise)."""
        steps = 0
        while max_steps is None or steps < max_steps:
            error = self._hold_point - self.env.arm.tcp_position()
            if np.linalg.norm(error) < tolerance:
                return
            yield self._full_action(error / self.env.max_step, 1.0)
            steps += 1
