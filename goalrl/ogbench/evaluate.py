"""``goalrl eval env=ogbench:<name>``: a checkpoint on OGBench's evaluation tasks, OGBench's way.

OGBench's protocol (``impls/utils/evaluation.py``): each environment defines five evaluation
tasks; a rollout picks one at reset (``options=dict(task_id=i)``), the goal observation is
``info['goal']`` from that reset, actions are clipped to [-1, 1], the episode runs until the
env terminates (the goal reached) or truncates (its time limit), and the outcome is the
last step's ``info['success']``. Success is reported per task and overall (the mean of the
five task rates; equal rollouts per task, so also the pooled rate). OGBench runs 50 rollouts
per task; ``episodes`` here is rollouts per task.

Unlike OGBench, each reset is seeded (``seed``, ``seed`` + 1, ... over all rollouts, kept in
the rows). OGBench's reset still takes two unseeded random actions to settle the goal
scene, so the goal's arm pose, and so the outcome, can differ slightly between reruns.

The agent reads what it was trained on: state agents (``agent.encoder.kind=state``) the
observation vector (state envs, e.g. ``cube-single-v0``), image agents the camera frame
(``visual-*`` envs, 64x64, resized to the checkpoint's image size) and the goal's frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.evaluate import Rollout, wilson_interval, write_rollout_video
from goalrl.ogbench import ENV_PREFIX, OGBenchError, make_env, quiet_reset

GOAL_SPLIT = "ogbench"  # goal_split of result rows: OGBench's own evaluation tasks
# videos keep every third step, as OGBench's do: a CPU renders a 200x200 frame in 0.24-0.42 s
# (Mesa llvmpipe, docs/ogbench.md), over 100x the cost of a simulator step
VIDEO_FRAME_SKIP = 3
CONTROL_HZ = 20.0  # OGBench manipulation: control_timestep 0.05 s


def task_ids(goals: str | None, num_tasks: int) -> list[int]:
    """Task ids to run: all for ``goals`` null, one for ``task<i>``; OGBenchError otherwise."""
    if goals is None:
        return list(range(1, num_tasks + 1))
    name = str(goals)
    if name.startswith("task") and name[4:].isdigit() and 1 <= int(name[4:]) <= num_tasks:
        return [int(name[4:])]
    raise OGBenchError(f"goals={goals!r}: an OGBench env has tasks task1..task{num_tasks} "
                       "(leave goals unset to run all of them)")


def agent_input(ob: np.ndarray, observation: str, image_size: int) -> np.ndarray:
    """What the agent reads of an OGBench observation: the state vector as float32, or the
    frame resized to the checkpoint's ``image_size``."""
    if observation == "state":
        return np.asarray(ob, dtype=np.float32)  # (S,)
    from goalrl.data.images import prepare_image

    return prepare_image(ob, image_size)  # (S, S, 3) uint8


def check_observation(env_name: str, ob: np.ndarray, observation: str, state_dim: int | None,
                      ckpt: str) -> None:
    """An OGBenchError when the env does not observe what the checkpoint's agent reads."""
    pixels = ob.ndim == 3
    if observation == "state" and pixels:
        raise OGBenchError(f"checkpoint {ckpt} reads state vectors (agent.encoder.kind=state), "
                           f"but {ENV_PREFIX}{env_name} observes pixels; use its state env "
                           f"({ENV_PREFIX}{env_name.removeprefix('visual-')})")
    if observation == "image" and not pixels:
        raise OGBenchError(f"checkpoint {ckpt} reads images, but {ENV_PREFIX}{env_name} observes "
                           f"{ob.shape[0]}-d states; use a visual-* env")
    if observation == "state" and state_dim is not None and ob.shape[0] != state_dim:
        raise OGBenchError(f"checkpoint {ckpt} reads {state_dim}-d states, but "
                           f"{ENV_PREFIX}{env_name} observes {ob.shape[0]}-d ones")


def renderer_error(env: Any) -> str | None:
    """None when the env renders here, else why not (no off-screen OpenGL: MUJOCO_GL)."""
    import warnings

    try:
        with warnings.catch_warnings():  # glfw's "library is not initialized" on stderr
            warnings.simplefilter("ignore")
            env.unwrapped.render()
    except Exception as error:  # mujoco.FatalError, PyOpenGL's errors: any means no videos
        return f"{type(error).__name__}: {error}"
    return None


def run_task_rollout(env: Any, policy: Any, task_id: int, seed: int, observation: str,
                     image_size: int, keep_frames: bool = False) -> Rollout:
    """One rollout of task ``task_id`` by OGBench's protocol (module doc)."""
    ob, info = quiet_reset(env, seed=seed,
                           options={"task_id": task_id, "render_goal": keep_frames})
    goal = agent_input(info["goal"], observation, image_size)
    # policies take a proprio vector too: a state dataset stores the state itself as proprio
    rollout = Rollout(seed=seed, success=False, final_distance=float("nan"), steps=0,
                      task=f"task{task_id}", goal_split=GOAL_SPLIT)
    if keep_frames:
        rollout.goal_image = info.get("goal_rendered")
        rollout.frames.append(env.unwrapped.render())
    done = False
    while not done:
        obs = agent_input(ob, observation, image_size)
        action, q = policy(obs, goal, obs if observation == "state" else None)
        ob, _, terminated, truncated, info = env.step(np.clip(action, -1, 1))
        rollout.steps += 1
        if info["success"] and rollout.first_success_step is None:
            rollout.first_success_step = rollout.steps
        done = bool(terminated or truncated)
        if keep_frames and (rollout.steps % VIDEO_FRAME_SKIP == 0 or done):
            rollout.frames.append(env.unwrapped.render())
            if q is not None:  # the video's Q trace: one value per kept frame
                rollout.q_values.append(float(q))
    rollout.success = bool(info["success"])
    return rollout


def evaluate_ogbench(env_name: str, policy: Any, episodes: int, *, observation: str,
                     image_size: int, state_dim: int | None = None, seed_start: int = 0,
                     goals: str | None = None, videos: int = 0,
                     video_dir: str | Path | None = None, env_kwargs: dict | None = None,
                     ckpt: str = "", progress: bool = True) -> dict[str, Any]:
    """``episodes`` rollouts of each of ``env_name``'s evaluation tasks; the summary."""
    env = make_env(env_name, **(env_kwargs or {}))
    try:
        num_tasks = int(env.unwrapped.num_tasks)
        tasks = task_ids(goals, num_tasks)
        ob, _ = quiet_reset(env, seed=seed_start, options={"task_id": tasks[0]})
        check_observation(env_name, ob, observation, state_dim, ckpt)
        plan = [(t, seed_start + k) for k, t in enumerate(np.repeat(tasks, episodes).tolist())]
        video_error = renderer_error(env) if videos > 0 else None
        rollouts, video_paths = [], []
        started = time.perf_counter()
        for k, (task, seed) in enumerate(_progress(plan, progress, env_name)):
            keep = k < videos and video_error is None
            r = run_task_rollout(env, policy, task, seed, observation, image_size, keep)
            if keep and video_dir is not None:
                if r.goal_image is None:
                    r.goal_image = np.zeros_like(r.frames[0])
                path = Path(video_dir) / f"rollout_task{task}_seed{seed}.mp4"
                write_rollout_video(path, r, fps=CONTROL_HZ / VIDEO_FRAME_SKIP)
                video_paths.append(str(path))
            r.frames = []
            rollouts.append(r)
        seconds = time.perf_counter() - started
    finally:
        env.close()
    summary = summarize_tasks(env_name, rollouts, env.unwrapped.task_infos)
    summary.update(videos=video_paths, seconds=round(seconds, 2))
    if video_error:
        summary["videos_skipped"] = (f"rendering failed ({video_error}); set MUJOCO_GL=egl "
                                     "(docs/ogbench.md) or pass videos=0")
    return summary


def summarize_tasks(env_name: str, rollouts: list[Rollout], task_infos: list[dict]
                    ) -> dict[str, Any]:
    """Per-task and overall success as OGBench reports them, and one row per rollout."""
    by_task: dict[str, dict[str, Any]] = {}
    for r in rollouts:
        entry = by_task.setdefault(r.task, {"successes": 0, "episodes": 0})
        entry["successes"] += int(r.success)
        entry["episodes"] += 1
    for task, entry in by_task.items():
        entry["name"] = task_infos[int(task[4:]) - 1].get("task_name")
        entry["success_rate"] = entry["successes"] / entry["episodes"]
    successes = sum(r.success for r in rollouts)
    seeds = [r.seed for r in rollouts]
    return {
        "env": f"{ENV_PREFIX}{env_name}",
        "protocol": "ogbench",  # OGBench's five tasks, success at the last step
        "episodes": len(rollouts),  # all tasks together
        "seeds": [min(seeds), max(seeds)] if seeds else [],
        # OGBench's overall number: the mean of the per-task success rates
        "success_rate": float(np.mean([t["success_rate"] for t in by_task.values()])),
        "ci95": list(wilson_interval(successes, len(rollouts))),  # of the pooled rate
        "success_any_step_rate": sum(r.first_success_step is not None for r in rollouts)
        / max(1, len(rollouts)),
        "by_task": by_task,  # task<i> -> name, episodes, successes, success_rate
        "rollouts": [{"seed": r.seed, "goal_split": r.goal_split, "task": r.task,
                      "success": r.success, "first_success_step": r.first_success_step,
                      "steps": r.steps} for r in rollouts],
    }


def run_ogbench_eval(cfg: Any, agent: Any, meta: dict[str, Any], rule: str | None
                     ) -> dict[str, Any]:
    """``goalrl eval`` of a loaded checkpoint on ``cfg.env`` (or its own) OGBench env."""
    from goalrl.agents.registry import agent_policy
    from goalrl.commands.evaluate import observation_of

    env_name = ogbench_env_of(cfg.env, meta, cfg.ckpt)
    agent_cfg = meta.get("agent_config") or {}
    state_dim = (agent_cfg.get("encoder") or {}).get("state_dim")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    result = evaluate_ogbench(
        env_name, agent_policy(agent), cfg.episodes, observation=observation_of(meta),
        image_size=meta["image_shape"][0], state_dim=state_dim, seed_start=cfg.seed,
        goals=cfg.goals, videos=cfg.videos, video_dir=Path(cfg.out) / "videos",
        env_kwargs=dict(cfg.env_kwargs), ckpt=cfg.ckpt)
    if cfg.results:
        from goalrl.results import append_eval_rows

        rows = append_eval_rows(cfg.results, result, meta, act_rule=rule,
                                env_kwargs=dict(cfg.env_kwargs))
        result["results"] = {"path": cfg.results, "rows": rows}
    return {"checkpoint": meta["path"], "step": meta["step"], "act_rule": rule,
            "env_kwargs": dict(cfg.env_kwargs), **result}


def ogbench_env_of(env: str | None, meta: dict[str, Any], ckpt: str) -> str:
    """The OGBench env id to run: ``env`` without its prefix, else the checkpoint's own;
    refused when the checkpoint was trained on another OGBench env."""
    own = str(meta.get("env_id") or "")
    own = own[len(ENV_PREFIX):] if own.startswith(ENV_PREFIX) else None
    wanted = env[len(ENV_PREFIX):] if env else own
    if not wanted:
        raise OGBenchError(f"checkpoint {ckpt} records no OGBench env; pass "
                           f"env={ENV_PREFIX}<name>, e.g. {ENV_PREFIX}cube-single-v0")
    # a visual-* env is the same task as its state env, for an agent that reads its kind
    if own and own.removeprefix("visual-") != wanted.removeprefix("visual-"):
        raise OGBenchError(f"checkpoint {ckpt} was trained on {ENV_PREFIX}{own} data, not "
                           f"{ENV_PREFIX}{wanted}; use a checkpoint of {wanted} or leave env "
                           "unset")
    return wanted


def _progress(items: list, enabled: bool, env: str) -> Any:
    import sys

    if not (enabled and sys.stderr.isatty()):
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"eval {ENV_PREFIX}{env}", unit="ep")
