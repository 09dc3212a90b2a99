"""The training loop, in plain sight: sample relabeled batches, update, log, evaluate, save.

``pretrain(cfg)`` is what ``goalrl pretrain`` runs. One process, or several under
torchrun (DistributedDataParallel; each rank draws its own sample stream; rank 0 logs,
evaluates and saves).
"""

from __future__ import annotations

import importlib.util
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goalrl.agents import AMAgent, AMConfig, GCBCAgent, GCBCConfig
from goalrl.agents.graphed import GraphedUpdate
from goalrl.agents.task_q import TaskQAgent, TaskQConfig
from goalrl.checkpoint import load_checkpoint, save_checkpoint
from goalrl.distributed import (
    DistInfo,
    barrier,
    dist_info_from_env,
    init_distributed,
    resolve_device,
    shutdown,
)
from goalrl.evaluate import evaluate_policy
from goalrl.loss_watch import LossWatch

Agent = AMAgent | GCBCAgent | TaskQAgent  # task: fine-tuned (goalrl/finetune.py)


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, incompatible data); the message says why."""


@dataclass
class PretrainConfig:
    data: str = "???"  # dataset folder (goalrl format; see `goalrl data import` for others)
    out: str = "runs/pretrain"  # run folder: checkpoints/, tb/, videos/, summary.json
    agent: Any = None  # agent config group: am (Actionable Models) or gcbc (baseline)
    steps: int = 2000  # gradient updates in total (a resumed run continues to this number)
    batch_size: int = 128  # transitions per update and per rank
    # hindsight offset k: geometric (P(k) ∝ gamma^(k-1), more near goals, whose targets carry the
    # clearest action signal) or uniform over the rest of the episode
    goal_mode: str = "geometric"
    p_chain: float = 0.2  # fraction of goals from other episodes when agent.chaining is on
    seed: int = 0  # weights, sampling and augmentation (rank r uses stream r of this seed)
    device: str = "auto"  # auto | cpu | cuda | cuda:<i>
    amp: bool = True  # bfloat16 autocast when on CUDA (ignored on CPU)
    threads: int = 0  # torch CPU threads per process (0: torch's default)
    env: str | None = None  # evaluation scene (default: the dataset's env id)
    eval_every: int = 0  # evaluate every N updates (0: only at the end)
    eval_episodes: int = 20  # evaluation rollouts (seeds from 1,000,000 up: never training seeds)
    videos: int = 2  # rollout videos written by the final evaluation
    log_every: int = 50  # TensorBoard scalars and the NaN/exploding-loss check every N updates
    save_every: int = 500  # checkpoint every N updates (and at the end)
    # continue from <out>/checkpoints/latest with optimiser and RNG state; with no checkpoint
    # there yet it starts fresh, so a requeued SLURM job can always pass resume=true; agent.*
    # overrides given with it apply from the resumed step on (agent.lr included), and any that
    # differ from the checkpoint's are named in a warning
    resume: bool = False
    prefetch: int = 4  # batches read ahead in a background thread
    max_loss: float = 1e4  # a loss above this (or NaN/inf) stops the run
    # replay each update as one CUDA graph (goalrl/agents/graphed.py): one launch instead of
    # ~1,900 small ones. One process on a CUDA device only; not yet measured on a GPU
    cuda_graph: bool = False


# ---- agents ---------------------------------------------------------------------------------
def agent_kind(agent_cfg: Any) -> str:
    if isinstance(agent_cfg, AMConfig):
        return "am"
    if isinstance(agent_cfg, GCBCConfig):
        return "gcbc"
    raise TrainingError(f"unknown agent config {type(agent_cfg).__name__}; use agent=am or gcbc")


def build_agent(
    kind: str,
    agent_cfg: Any,
    image_shape: tuple[int, int, int],
    action_dim: int,
    proprio_dim: int | None,
    device: torch.device,
    seed: int,
) -> Agent:
    cls = {"am": AMAgent, "gcbc": GCBCAgent, "task": TaskQAgent}[kind]
    return cls(agent_cfg, image_shape, action_dim, proprio_dim, device, seed=seed)


def config_from_dict(kind: str, values: dict[str, Any]) -> Any:
    if kind == "task":  # nested: the task config holds the network's AMConfig
        return TaskQConfig.from_dict(values)
    cls = {"am": AMConfig, "gcbc": GCBCConfig}[kind]
    known = {f for f in cls.__dataclass_fields__}
    return cls(**{k: v for k, v in values.items() if k in known})


def load_agent(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Agent, dict[str, Any]]:
    """Rebuild the agent a checkpoint was saved from (weights only; no training state needed)."""
    state, meta = load_checkpoint(path, map_location=str(device))
    kind = meta["agent"]
    agent = build_agent(
        kind,
        config_from_dict(kind, meta["agent_config"]),
        tuple(meta["image_shape"]),
        meta["action_dim"],
        meta.get("proprio_dim"),
        torch.device(device),
        seed=0,
    )
    agent.load_state_dict(state["agent"])
    return agent, meta


def agent_policy(agent: Agent):
    """evaluate.Policy over an agent: greedy action and (for Q agents) its Q-value."""

    def policy(obs_image: np.ndarray, goal_image: np.ndarray, proprio: np.ndarray):
        # CEM scored the action already: no second pass. A task agent reads the goal
        # image only with agent.task_input=goal_image.
        if isinstance(agent, (AMAgent, TaskQAgent)):
            action, q = agent.act(obs_image, goal_image, proprio, return_q=True)
            return action, float(q)
        return agent.act(obs_image, goal_image, proprio), None

    return policy


def override_act_rule(agent: Agent, rule: str, prior_samples: int | None = None) -> None:
    """Make an AM or task agent act by ``rule`` (AMConfig.act_rule: cem | prior_mean |
    prior_best), with ``prior_samples`` candidates for prior_best when given."""
    am = agent.goal_agent if isinstance(agent, TaskQAgent) else agent
    if not isinstance(am, AMAgent):
        raise ValueError(f"act_rule={rule}: a {type(agent).__name__} acts with its policy's "
                         "mean; only Q checkpoints (AM, fine-tuned) choose how to act")
    am.set_act_rule(rule, prior_samples)


# ---- checks before training -----------------------------------------------------------------
def check_dataset_fits(dataset: Any, env_id: str | None, evaluates: bool = True) -> dict[str, Any]:
    """The eval scene's action/proprio sizes; TrainingError when the dataset does not match.

    Without the simulator (a GPU node with only the learning stack) a run that never
    evaluates trains unchecked, with a warning; one that would evaluate is refused now rather
    than after its updates are spent.
    """
    if env_id is None:
        return {}
    if not simulator_available():
        if evaluates:
            raise TrainingError(
                f"evaluating on {env_id} needs pybullet, which is not installed here; install "
                "it, or train only with eval_every=0 eval_episodes=0 and evaluate elsewhere"
            )
        warnings.warn(
            f"pybullet is not installed: {dataset.root} is not checked against {env_id} "
            "and this run does not evaluate",
            stacklevel=2,
        )
        return {}
    from goalrl.commands.collect import env_spec

    spec = env_spec(env_id, dataset.image_shape[0])
    if spec["action_dim"] != dataset.action_dim:
        raise TrainingError(
            f"dataset {dataset.root} has {dataset.action_dim}-d actions but env {env_id} takes "
            f"{spec['action_dim']}-d actions"
        )
    if dataset.image_shape[0] != dataset.image_shape[1]:
        raise TrainingError(f"dataset {dataset.root} images are not square: {dataset.image_shape}")
    return spec


def simulator_available() -> bool:
    return importlib.util.find_spec("pybullet") is not None


def check_checkpoint_fits(meta: dict[str, Any], dataset: Any, path: str) -> None:
    if tuple(meta["image_shape"]) != tuple(dataset.image_shape):
        raise TrainingError(
            f"checkpoint {path} was trained on {tuple(meta['image_shape'])} images, "
            f"dataset {dataset.root} has {tuple(dataset.image_shape)}"
        )
    if meta["action_dim"] != dataset.action_dim:
        raise TrainingError(
            f"checkpoint {path} has {meta['action_dim']}-d actions, "
            f"dataset {dataset.root} has {dataset.action_dim}-d"
        )


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name: old -> new"`` for every field of ``current`` whose value differs in ``saved``."""
    return [
        f"{name}: {saved[name]!r} -> {value!r}"
        for name, value in current.items()
        if name in saved and saved[name] != value
    ]


# ---- the loop -------------------------------------------------------------------------------
@dataclass
class RunState:
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from goalrl.data.sampler import GoalBatchSampler
    from goalrl.data.storage import EpisodeDataset

    info = dist_info_from_env()
    device = resolve_device(cfg.device, info)
    check_cuda_graph(cfg.cuda_graph, device, info)  # before any process group exists
    init_distributed(info, device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    kind = agent_kind(cfg.agent)
    if kind == "am" and device.type == "cuda":
        cfg.agent.amp = cfg.amp
    try:
        dataset = EpisodeDataset(cfg.data)
        env_id = cfg.env or dataset.meta.get("env_id")
        check_dataset_fits(dataset, env_id, evaluates=cfg.eval_episodes > 0 or cfg.eval_every > 0)
        agent = build_agent(
            kind,
            cfg.agent,
            dataset.image_shape,
            dataset.action_dim,
            dataset.proprio_dim,
            device,
            seed=cfg.seed,  # identical initial weights on every rank
        )
        agent.seed(cfg.seed * 1000 + info.rank)  # per-rank augmentation / CEM noise
        chaining = kind == "am" and cfg.agent.chaining
        sampler = GoalBatchSampler(
            dataset,
            cfg.batch_size,
            goal_mode=cfg.goal_mode,
            gamma=getattr(cfg.agent, "gamma", 0.9),
            p_chain=cfg.p_chain if chaining else 0.0,
            seed=cfg.seed,
            rank=info.rank,
            world_size=info.world_size,
        )
        run = RunState()
        if cfg.resume and (out / "checkpoints" / "latest").is_file():
            state, meta = load_checkpoint(out, map_location=str(device))
            check_checkpoint_fits(meta, dataset, str(out))
            agent.load_state_dict(state["agent"])
            sampler.load_state_dict(state["samplers"][info.rank])
            run.step = int(meta["step"])
            changes = changed_settings(meta["agent_config"], asdict(cfg.agent))
            if changes and info.is_main:
                # the command line wins on resume; say so, since a forgotten override changes
                # the run as surely as a deliberate one
                warnings.warn(
                    f"resuming {out} at step {run.step} with agent settings that differ from "
                    f"its checkpoint: {'; '.join(changes)}",
                    stacklevel=2,
                )
        elif info.is_main and not cfg.resume and (out / "checkpoints" / "latest").is_file():
            raise TrainingError(
                f"{out} already holds a run; pass resume=true to continue it or choose another out="
            )
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            agent.train_net = DDP(
                agent.train_net, device_ids=[device.index] if device.type == "cuda" else None
            )

        meta_base = {
            "agent": kind,
            "agent_config": asdict(cfg.agent),
            "train_config": {k: v for k, v in asdict(cfg).items() if k != "agent"},
            "image_shape": list(dataset.image_shape),
            "action_dim": dataset.action_dim,
            "proprio_dim": dataset.proprio_dim,
            "action_low": dataset.meta.get("action_low"),
            "action_high": dataset.meta.get("action_high"),
            "env_id": env_id,
            "dataset": str(Path(cfg.data).resolve()),
            "dataset_fingerprint": dataset.fingerprint(),
            "parent": None,
        }
        writer = SummaryWriter(str(out / "tb")) if info.is_main else None
        # on a GPU, batches arrive in pinned memory so the copies do not stall the host
        batches = sampler.prefetch(depth=cfg.prefetch, pin=agent.device.type == "cuda")
        update = GraphedUpdate(agent) if cfg.cuda_graph else agent.update
        loss_watch = LossWatch()
        bar = tqdm(
            total=cfg.steps,
            initial=run.step,
            desc=f"pretrain {kind}",
            disable=not info.is_main or None,
        )
        last_saved = None
        t0, step0 = time.perf_counter(), run.step
        try:
            while run.step < cfg.steps:
                batch = next(batches)
                stats = update(batch)
                run.step += 1
                loss_watch.observe(stats, run.step)
                bar.update(1)
                log_now = run.step % cfg.log_every == 0
                save_now = run.step % cfg.save_every == 0 or run.step == cfg.steps
                # Reading stats waits for the device, so only where they are used; always
                # before a save, so a NaN never reaches a checkpoint.
                if log_now or save_now:
                    check_loss(loss_watch, run.step, cfg.max_loss, out)
                if writer and log_now:
                    for k, v in stats.items():
                        if math.isfinite(v):
                            writer.add_scalar(k, v, run.step)
                    bar.set_postfix(
                        loss=f"{stats.get('critic/loss', stats.get('actor/loss', 0)):.3f}"
                    )
                if save_now:
                    samplers = gather_sampler_states(batches.state_dict(), info)
                    if info.is_main:
                        last_saved = save_checkpoint(
                            out,
                            run.step,
                            {"agent": agent.state_dict(), "samplers": samplers},
                            meta_base,
                        )
                    barrier(info)
                # the last step's evaluation is the final one below (with videos), not run twice
                if (
                    info.is_main
                    and cfg.eval_every
                    and run.step % cfg.eval_every == 0
                    and run.step < cfg.steps
                    and env_id
                ):
                    result = evaluate_agent(agent, env_id, cfg, dataset.image_shape[0], videos=0)
                    log_eval(writer, result, run.step)
                    run.history.append(eval_point(run.step, result))
        finally:
            batches.close()
            bar.close()
        elapsed = time.perf_counter() - t0
        summary: dict[str, Any] = {
            "agent": kind,
            "steps": run.step,
            "updates_per_s": (run.step - step0) / elapsed if elapsed > 0 else None,
            "checkpoint": str(last_saved) if last_saved else None,
            "tensorboard": str(out / "tb"),
            "eval_curve": run.history,  # success at each eval_every step of this process
        }
        if info.is_main and env_id and cfg.eval_episodes > 0:
            result = evaluate_agent(agent, env_id, cfg, dataset.image_shape[0], videos=cfg.videos)
            summary["eval"] = result
            run.history.append(eval_point(run.step, result))
            if writer:
                log_eval(writer, result, run.step)
        if writer:
            writer.close()
        return summary if info.is_main else {}
    finally:
        shutdown(info)


def eval_point(step: int, result: dict[str, Any]) -> dict[str, float | None]:
    return {
        "step": step,
        "success_rate": result["success_rate"],
        "success_any_step_rate": result.get("success_any_step_rate"),
        "mean_final_distance": result["mean_final_distance"],
        "median_final_distance": result.get("median_final_distance"),
        "mean_final_arm_distance": result.get("mean_final_arm_distance"),
    }


def log_eval(writer: Any, result: dict[str, Any], step: int) -> None:
    """TensorBoard scalars of an evaluation (``evaluate_policy``'s result)."""
    keys = ("success_rate", "success_any_step_rate", "mean_final_distance",
            "median_final_distance", "mean_final_arm_distance", "episodes_object_off_table")
    for key in keys:
        if result.get(key) is not None:
            writer.add_scalar(f"eval/{key}", result[key], step)


def check_cuda_graph(enabled: bool, device: torch.device, info: DistInfo) -> None:
    """TrainingError before anything runs unless a CUDA-graph run can work here."""
    if not enabled:
        return
    if device.type != "cuda":
        raise TrainingError(f"cuda_graph=true needs a CUDA device; this run is on {device}")
    if info.enabled:
        raise TrainingError(
            "cuda_graph=true runs one process; under torchrun (world size "
            f"{info.world_size}) leave it off"
        )


def check_loss(watch: LossWatch, step: int, max_loss: float, out: Path) -> None:
    """TrainingError if any update since the last check had a NaN, infinite or huge loss."""
    seen = watch.read()
    if seen is None:
        return
    worst, since = seen
    if not math.isfinite(worst) or worst > max_loss:
        raise TrainingError(
            f"loss became {worst} by update {step} (the largest |loss| of updates {since}-{step}; "
            f"checked every log_every updates and before each save); stopping. The last good "
            f"checkpoint is {out / 'checkpoints'} (latest); lower the learning rate or check "
            f"the data"
        )


def gather_sampler_states(state: dict[str, Any], info: DistInfo) -> list[dict[str, Any]]:
    """Every rank's sampler position (rank 0 saves them all, so any rank can resume)."""
    if not info.enabled:
        return [state]
    import torch.distributed as dist

    states: list[Any] = [None] * info.world_size
    dist.all_gather_object(states, state)
    return states


def evaluate_agent(
    agent: Agent, env_id: str, cfg: PretrainConfig, image_size: int, videos: int
) -> dict[str, Any]:
    """Evaluation that leaves the agent's RNG as it found it (so resumes stay exact)."""
    # With cuda_graph the generator is registered with the captured update. Restoring its state
    # here, outside any capture, rewrites the seed and offset that each replay reads when it
    # starts (torch's graph-safe RNG), so replays continue from the restored stream
    # (tests/agents/test_update_plumbing.py checks it on a GPU; skipped on CPU).
    rng = agent.get_rng_state()
    try:
        return evaluate_policy(
            env_id,
            agent_policy(agent),
            cfg.eval_episodes,
            image_size=image_size,
            videos=videos,
            video_dir=Path(cfg.out) / "videos",
        )
    finally:
        agent.set_rng_state(rng)
