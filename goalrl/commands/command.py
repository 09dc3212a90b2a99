"""``goalrl command`` (drive the arm toward a goal image) and ``goalrl goal`` (make one).

``goalrl goal env=goalrl/Push-v0 seed=1000003 out=goal.png`` renders the goal state of
episode ``seed`` (a state the scene can reach) and writes it as a PNG that also carries
that state, so ``goalrl command ckpt=runs/am goal=goal.png out=run.mp4`` can report
success and distance in metres. A plain picture of the scene (a screenshot, a JPEG) works
as a goal too; then only the image distance is known. A picture the camera cannot show
(grayscale, see-through, or far from the scene's view, like a photo) is refused naming the
measured image distance (goalrl/goal_match.py); ``force=true`` commands it with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from goalrl.errors import UserError
from goalrl.evaluate import EVAL_SEED_OFFSET


@dataclass
class CommandConfig:
    ckpt: str = "???"  # checkpoint folder (a step folder, or a run folder: its latest)
    goal: str = "???"  # goal image file, any size (PNG, JPEG, ...); `goalrl goal` makes one
    out: str = "runs/command.mp4"  # video: camera | goal side by side, Q trace (.mp4/.gif/.webm)
    env: str | None = None  # scene id (default: the checkpoint's; another scene is refused)
    seed: int | None = None  # start state: env seed (default: the goal's capture seed, else 1e6)
    max_steps: int | None = None  # step budget (default: the scene's episode length)
    stop_on_success: bool = True  # stop once a goal of known state is met
    fps: float = 10.0  # video frame rate (one step is 0.1 s of simulated time)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch CPU threads while acting (0: torch's default; 1 is fastest)
    # command a goal picture the camera cannot show (grayscale, see-through, or far from the
    # scene's view, e.g. a photo), which is refused otherwise; a loud warning says so
    force: bool = False


@dataclass
class GoalConfig:
    out: str = "???"  # PNG to write (carries the pictured scene state in a text chunk)
    env: str | None = None  # scene id (default: the checkpoint's, when ckpt is given)
    ckpt: str | None = None  # take the scene and image size from this checkpoint
    seed: int = EVAL_SEED_OFFSET  # episode whose goal is rendered (>= 1e6: never training data)
    image_size: int | None = None  # pixels (default: the checkpoint's, else 64)
    start: str | None = None  # also write the episode's start view (PNG) here


def run(cfg: CommandConfig) -> dict[str, Any]:
    from goalrl.commands.evaluate import require_at_least
    from goalrl.data.sheets import check_video_path
    from goalrl.reacher import GoalReacher

    require_at_least(cfg.max_steps, 1, "max_steps", "command")
    require_at_least(cfg.seed, 0, "seed", "command")
    require_at_least(cfg.threads, 0, "threads", "command")
    if not cfg.fps > 0:
        raise UserError(f"goalrl command: fps must be > 0, got {cfg.fps}")
    check_video_path(cfg.out)  # before minutes of work, not after
    with GoalReacher(
        cfg.ckpt,
        cfg.env,
        device=cfg.device,
        max_steps=cfg.max_steps,
        stop_on_success=cfg.stop_on_success,
        threads=cfg.threads,
    ) as arm:
        goal = arm.goal(cfg.goal, force=cfg.force)
        seed = cfg.seed if cfg.seed is not None else goal.seed
        seed = EVAL_SEED_OFFSET if seed is None else seed
        arm.reset(seed)
        result = arm.reach(goal, force=cfg.force)
        video = result.write_video(cfg.out, fps=cfg.fps)
        return {
            "env": arm.env_id,
            "checkpoint": arm.checkpoint,
            "goal": cfg.goal,
            "video": str(video),
            **result.summary(),
        }


def goal(cfg: GoalConfig) -> dict[str, Any]:
    from goalrl.checkpoint import read_meta
    from goalrl.data.sheets import write_png_atomic
    from goalrl.goal_image import save_goal_png
    from goalrl.reacher import capture_goal, scene_for

    env_id, size = cfg.env, cfg.image_size
    if cfg.ckpt is not None:
        meta = read_meta(cfg.ckpt)
        env_id = scene_for(cfg.ckpt, env_id, meta)
        size = size or int(meta["image_shape"][0])
    if env_id is None:
        raise UserError("pass env=goalrl/<Scene>-v0 (or ckpt=<checkpoint> to use its scene)")
    size = int(size or 64)
    if size < 8:
        raise UserError(f"image_size must be >= 8, got {size}")
    g = capture_goal(env_id, cfg.seed, size)
    path = save_goal_png(cfg.out, g)
    summary: dict[str, Any] = {
        "goal": str(path),
        "env": env_id,
        "seed": cfg.seed,
        "image_size": size,
        "state_known": True,
    }
    if cfg.start is not None:
        import gymnasium as gym

        env = gym.make(env_id, image_size=size)
        try:
            obs, _ = env.reset(seed=cfg.seed)
        finally:
            env.close()
        write_png_atomic(cfg.start, obs["image"])
        summary["start"] = cfg.start
    return summary
