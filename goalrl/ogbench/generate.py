"""OGBench-style datasets made locally: OGBench's manipulation environments driven by the
scripted oracles that ship in the ``ogbench`` package, written in OGBench's ``.npz`` layout.

What OGBench's own ``data_gen_scripts/generate_manipspace.py`` does, with its settings:

- ``play``: the non-Markovian ``PlanOracle`` of each task (keyframe plans with temporally
  correlated noise, ``noise`` 0.1, ``noise_smoothing`` 0.5);
- ``noisy``: the closed-loop ``MarkovOracle`` (``min_norm`` 0.4) with Gaussian action noise
  of a per-episode level drawn from U(0, ``noise``), and a uniform random action with
  probability ``p_random_action`` (OGBench: 0.1 for cube and scene, 0.2 for puzzle);
- the env in ``mode='data_collection'`` without termination at the goal, so every episode is
  ``max_episode_steps`` steps (OGBench: 1001); a new target as soon as the oracle is done;
  scene episodes whose cube leaves the view are redone (OGBench's health check).

The layout (per file): ``observations`` (N, D) float32 or (N, H, W, 3) uint8,
``actions`` (N, A) float32, ``terminals`` (N,) bool (1 on the last frame of each episode,
whose action has no next observation), ``qpos`` / ``qvel`` (N, nq) / (N, nv) float32 and,
for scene and puzzle, ``button_states`` (N, B) int64: OGBench's ``load_dataset`` reads it.
``episodes`` go to ``out``, ``val_episodes`` more to ``out`` with ``-val.npz`` (OGBench's
naming). Differences from OGBench's script, both for reproducibility: it seeds (episode
``i`` resets the env and numpy's global generator, which the oracles draw from, with
``seed + i``), and random actions are drawn from numpy's generator rather than from an
unseeded action space.

Writes are atomic per file (temp file, fsync, rename); the ``.json`` written last beside
``out`` (settings, counts, content hashes, speed) says the set is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.storage.files import fsync_dir
from goalrl.ogbench import OGBenchError, make_env, ogbench_versions

DATASET_TYPES = ("play", "noisy")
FAMILIES = ("cube", "scene", "puzzle")  # OGBench's manipulation environments
# OGBench's commands.sh: the random-action probability of each family's noisy datasets
NOISY_P_RANDOM = {"cube": 0.1, "scene": 0.1, "puzzle": 0.2}


@dataclass
class GenerateSettings:
    env: str  # OGBench environment id, e.g. cube-single-v0 or visual-cube-single-v0
    dataset_type: str = "play"  # play | noisy
    episodes: int = 1000  # training episodes (OGBench: 1000 for cube-single)
    val_episodes: int | None = None  # validation episodes (None: episodes // 10, as OGBench)
    max_episode_steps: int = 1001  # frames per episode (OGBench: 1001)
    seed: int = 0  # episode i uses seed + i
    noise: float = 0.1  # play: plan noise scale; noisy: the largest per-episode noise level
    noise_smoothing: float = 0.5  # play: std (steps) of the Gaussian smoothing of plan noise
    min_norm: float = 0.4  # noisy: smallest norm of the Markov oracle's position steps
    p_random_action: float | None = None  # None: 0 for play, NOISY_P_RANDOM for noisy

    def validated(self) -> GenerateSettings:
        """A copy with the defaults filled in; OGBenchError naming a bad field."""
        if self.dataset_type not in DATASET_TYPES:
            raise OGBenchError(f"dataset_type={self.dataset_type!r}: choose one of "
                               f"{', '.join(DATASET_TYPES)}")
        family = env_family(self.env)
        val = self.episodes // 10 if self.val_episodes is None else self.val_episodes
        p_random = self.p_random_action
        if p_random is None:
            p_random = NOISY_P_RANDOM[family] if self.dataset_type == "noisy" else 0.0
        out = GenerateSettings(**{**asdict(self), "val_episodes": val,
                                  "p_random_action": float(p_random)})
        for name, least in (("episodes", 1), ("val_episodes", 0), ("max_episode_steps", 2),
                            ("seed", 0)):
            value = getattr(out, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise OGBenchError(f"{name} must be an integer >= {least}, got {value!r}")
        for name in ("noise", "noise_smoothing", "min_norm"):
            if not getattr(out, name) >= 0:
                raise OGBenchError(f"{name} must be >= 0, got {getattr(out, name)!r}")
        if not 0.0 <= out.p_random_action <= 1.0:
            raise OGBenchError(f"p_random_action must be in [0, 1], got {out.p_random_action}")
        return out


def env_family(env: str) -> str:
    """cube | scene | puzzle of an OGBench manipulation id (a ``visual-`` prefix allowed)."""
    base = env.removeprefix("visual-")
    for family in FAMILIES:
        if base.startswith(f"{family}-") and "singletask" not in base:
            return family
    raise OGBenchError(
        f"env={env!r}: the generator drives OGBench's manipulation environments (cube-*, "
        "scene-*, puzzle-*, with or without visual-); the maze datasets need OGBench's "
        "trained expert policies, which its package does not ship")


def make_oracles(env: Any, family: str, s: GenerateSettings) -> dict[str, Any]:
    """OGBench's oracle per target task ('cube', 'button', 'drawer', 'window')."""
    from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
    from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
    from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    if s.dataset_type == "noisy":
        markov = {"env": env, "min_norm": s.min_norm}
        if family == "puzzle":  # buttons are pressed with a closed gripper
            return {"button": ButtonMarkovOracle(**markov, gripper_always_closed=True)}
        oracles = {"cube": CubeMarkovOracle(**markov, **({"max_step": 100} if family == "scene"
                                                          else {}))}
        if family == "scene":
            oracles.update(button=ButtonMarkovOracle(**markov), drawer=DrawerMarkovOracle(
                **markov), window=WindowMarkovOracle(**markov))
        return oracles
    plan = {"env": env, "noise": s.noise, "noise_smoothing": s.noise_smoothing}
    if family == "puzzle":
        return {"button": ButtonPlanOracle(**plan, gripper_always_closed=True)}
    oracles = {"cube": CubePlanOracle(**plan)}
    if family == "scene":
        oracles.update(button=ButtonPlanOracle(**plan), drawer=DrawerPlanOracle(**plan),
                       window=WindowPlanOracle(**plan))
    return oracles


def stack_probability(env: str) -> float:
    """OGBench's per-episode chance of stacking the target cube on another (more cubes, more
    stacking); drawn from numpy's global generator, as OGBench does."""
    ranges = {"single": (0.0, 0.0), "double": (0.0, 0.25), "triple": (0.05, 0.35),
              "quadruple": (0.1, 0.5), "octuple": (0.0, 0.35)}
    for word, (low, high) in ranges.items():
        if word in env:
            return float(np.random.uniform(low, high)) if high > 0 else 0.0
    return 0.5


def scene_episode_healthy(qpos: np.ndarray) -> bool:
    """OGBench's scene check on (T, nq) qpos: the cube stays in view (right of y = 0.29 it
    leaves it; left of y = -0.3 it must be in the drawer, 0.06 <= z <= 0.08)."""
    xyz = qpos[:, 14:17]  # the cube's free joint position
    too_far_right = (xyz[:, 1] >= 0.29).any()
    outside_drawer = ((xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))).any()
    return not (too_far_right or outside_drawer)


def run_episode(env: Any, oracles: dict[str, Any], s: GenerateSettings, seed: int
                ) -> tuple[dict[str, np.ndarray], int]:
    """One episode of ``max_episode_steps`` frames as OGBench records it, and how many
    unhealthy scene attempts were redone before it."""
    np.random.seed(seed)  # the oracles and stack_probability draw from numpy's global state
    has_buttons = hasattr(env.unwrapped, "_cur_button_states")
    retries = 0
    reset_seed: int | None = seed
    while True:
        ob, info = env.reset(seed=reset_seed)
        reset_seed = None  # a redone scene episode continues the env's random stream
        p_stack = stack_probability(s.env)
        xi = np.random.uniform(0, s.noise) if s.dataset_type == "noisy" else 0.0
        oracle = oracles[info["privileged/target_task"]]
        oracle.reset(ob, info)
        rows: dict[str, list] = {k: [] for k in ("observations", "actions", "terminals",
                                                  "qpos", "qvel")}
        if has_buttons:
            rows["button_states"] = []
        done = False
        while not done:
            if np.random.rand() < s.p_random_action:
                action = np.random.uniform(-1.0, 1.0, size=5)  # the action box, seeded
            else:
                action = np.asarray(oracle.select_action(ob, info), dtype=np.float64)
                if s.dataset_type == "noisy":  # yaw and gripper get 3x and 10x the noise
                    action = action + np.random.normal(0, [xi, xi, xi, xi * 3, xi * 10])
            action = np.clip(action, -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = bool(terminated or truncated)
            if oracle.done:  # a new target as soon as the current one is reached
                target_ob, target_info = env.unwrapped.set_new_target(p_stack=p_stack)
                oracle = oracles[target_info["privileged/target_task"]]
                oracle.reset(target_ob, target_info)
            rows["observations"].append(ob)
            rows["actions"].append(action)
            rows["terminals"].append(done)
            rows["qpos"].append(info["prev_qpos"])  # the state the action was taken in
            rows["qvel"].append(info["prev_qvel"])
            if has_buttons:
                rows["button_states"].append(info["prev_button_states"])
            ob = next_ob
        episode = {k: np.asarray(v, dtype=npz_dtype(k, v[0])) for k, v in rows.items()}
        if env_family(s.env) != "scene" or scene_episode_healthy(episode["qpos"]):
            return episode, retries
        retries += 1


def npz_dtype(key: str, first: Any) -> Any:
    """OGBench's stored dtypes: uint8 pixels, bool terminals, int64 buttons, else float32."""
    if key == "observations" and np.asarray(first).dtype == np.uint8:
        return np.uint8
    return {"terminals": bool, "button_states": np.int64}.get(key, np.float32)


class SplitBuffer:
    """The rows of one output file, in memory-mapped scratch arrays (pixel sets outgrow RAM)."""

    def __init__(self, scratch: Path, name: str, capacity: int) -> None:
        self.scratch, self.name, self.capacity = scratch, name, capacity
        self.arrays: dict[str, np.ndarray] = {}
        self.rows = 0
        self.episodes = 0

    def add(self, episode: dict[str, np.ndarray]) -> None:
        n = len(episode["terminals"])
        for key, value in episode.items():
            if key not in self.arrays:
                self.arrays[key] = np.lib.format.open_memmap(
                    self.scratch / f"{self.name}-{key}.npy", mode="w+", dtype=value.dtype,
                    shape=(self.capacity, *value.shape[1:]))
            self.arrays[key][self.rows : self.rows + n] = value
        self.rows += n
        self.episodes += 1

    def filled(self) -> dict[str, np.ndarray]:
        return {key: arr[: self.rows] for key, arr in self.arrays.items()}


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over each array's name, dtype, shape and bytes in key order: the same data
    gives the same hash (a zip file's own bytes carry write times)."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        for start in range(0, len(arr), 65536):  # memory-mapped: hash in slices
            digest.update(np.ascontiguousarray(arr[start : start + 65536]).tobytes())
    return digest.hexdigest()


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` to a temp file beside ``path``, fsync, then rename."""
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def val_path(out: Path) -> Path:
    """OGBench's name of the validation file of ``out``: <stem>-val.npz."""
    return out.with_name(f"{out.stem}-val.npz")


def generate_dataset(out: str | Path, settings: GenerateSettings, *, overwrite: bool = False,
                     progress: bool = True) -> dict[str, Any]:
    """Generate ``settings.episodes`` (+ validation) episodes into ``out`` (a .npz path)."""
    s = settings.validated()
    out = Path(out).expanduser().resolve()
    if out.suffix != ".npz":
        raise OGBenchError(f"out={out}: give a .npz file path (OGBench's layout)")
    existing = [p for p in (out, val_path(out), out.with_suffix(".json")) if p.exists()]
    if existing and not overwrite:
        raise OGBenchError(f"out={out}: {', '.join(map(str, existing))} already exist; choose "
                           "another out= or pass overwrite=true")
    out.parent.mkdir(parents=True, exist_ok=True)
    family = env_family(s.env)
    env = make_env(s.env, terminate_at_goal=False, mode="data_collection",
                   max_episode_steps=s.max_episode_steps)
    saved_state = np.random.get_state()  # the oracles use numpy's global generator
    total = s.episodes + s.val_episodes
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".tmp-ogbench-") as scratch:
            splits = {"train": SplitBuffer(Path(scratch), "train",
                                           s.episodes * s.max_episode_steps),
                      "val": SplitBuffer(Path(scratch), "val",
                                         s.val_episodes * s.max_episode_steps)}
            oracles = make_oracles(env, family, s)
            retries, started = 0, time.perf_counter()
            for i in _progress(range(total), progress, s.env):
                episode, redone = run_episode(env, oracles, s, s.seed + i)
                retries += redone
                splits["train" if i < s.episodes else "val"].add(episode)
            seconds = time.perf_counter() - started
            files = {}
            for name, path in (("val", val_path(out)), ("train", out)):  # the train file last
                split = splits[name]
                if not split.episodes:
                    continue
                arrays = split.filled()
                write_npz_atomic(path, arrays)
                files[name] = {"path": str(path), "episodes": split.episodes,
                               "frames": split.rows, "content_sha256": content_sha256(arrays),
                               "shapes": {k: [list(v.shape), v.dtype.str]
                                          for k, v in arrays.items()}}
    finally:
        np.random.set_state(saved_state)
        env.close()
    if not s.val_episodes:  # overwrite=true: no stale validation file beside the new set
        val_path(out).unlink(missing_ok=True)
    frames = sum(f["frames"] for f in files.values())
    summary = {
        "out": str(out),
        "settings": asdict(s),
        "files": files,  # train (and val): path, episodes, frames, content hash, shapes
        "episodes": total,
        "frames": frames,  # env steps taken (redone scene episodes not counted)
        "scene_episodes_redone": retries,  # scene episodes whose cube left the view
        "seconds": round(seconds, 3),  # collection time (writing excluded)
        "env_steps_per_s": round(frames / seconds, 1) if seconds > 0 else None,
        "versions": ogbench_versions(),
    }
    json_path = out.with_suffix(".json")
    tmp = json_path.with_name(f".tmp-{json_path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, json_path)
    return {**summary, "settings_file": str(json_path)}


def _progress(items: range, enabled: bool, env: str) -> Any:
    """tqdm over episodes on an interactive stderr; the plain range otherwise."""
    if not (enabled and sys.stderr.isatty()):
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"generate {env}", unit="ep")
