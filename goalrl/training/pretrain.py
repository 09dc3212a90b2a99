"""Pretraining: relabeled batches of unlabeled robot logs through the training loop.

``pretrain(cfg)`` is what ``goalrl pretrain`` runs. One process, or several under torchrun
(DistributedDataParallel; each rank draws its own sample stream; rank 0 logs, evaluates and
saves).
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from goalrl.agents.observations import observation_kind
from goalrl.agents.registry import agent_kind, build_agent, config_from_dict, load_agent_state
from goalrl.checkpoint import load_checkpoint
from goalrl.distributed import (
    DistInfo,
    device_name,
    dist_info_from_env,
    init_distributed,
    resolve_device,
    shutdown,
)
from goalrl.training.checks import (
    TrainingError,
    changed_settings,
    check_checkpoint_fits,
    check_cuda_graph,
    check_dataset_fits,
    check_out_free,
    check_settings,
)
from goalrl.training.loop import Phase, Run, Schedule, open_writer, run_meta, train
from goalrl.training.run_folder import RunFolderLock, remove_partial_saves


@dataclass
class PretrainConfig:
    data: str = "???"  # dataset folder (goalrl format; see `goalrl data import` for others)
    out: str = "runs/pretrain"  # run folder: checkpoints/, tb/, videos/, summary.json
    agent: Any = None  # agent config group: am (Actionable Models), gcbc (baseline), gcivl, gciql
    steps: int = 2000  # gradient updates in total (a resumed run continues to this number)
    batch_size: int = 128  # transitions per update and per rank
    # hindsight offset k: geometric (P(k) ∝ gamma^(k-1), more near goals, whose targets carry the
    # clearest action signal) or uniform over the rest of the episode
    goal_mode: str = "geometric"
    p_chain: float = 0.2  # fraction of goals from other episodes when agent.chaining is on
    seed: int = 0  # weights, sampling and augmentation (rank r uses stream r of this seed)
    device: str = "auto"  # auto | cpu | cuda | cuda:<i>
    amp: bool = True  # bfloat16 autocast when on CUDA, for every agent (ignored on CPU)
    threads: int = 0  # torch CPU threads per process (0: torch's default)
    env: str | None = None  # evaluation scene (default: the dataset's env id)
    eval_every: int = 0  # evaluate every N updates (0: only at the end)
    eval_episodes: int = 20  # evaluation rollouts (seeds from 1,000,000 up: never training seeds)
    videos: int = 2  # rollout videos written by the final evaluation
    log_every: int = 50  # TensorBoard scalars and the NaN/exploding-loss check every N updates
    save_every: int = 500  # checkpoint every N updates (and at the end)
    # step checkpoints kept: the last N (0: all), plus the best evaluated one and latest
    keep_last: int = 5
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
    # seconds between progress lines on stderr when it is not a terminal (a terminal gets a bar)
    progress_every: float = 30.0


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    from goalrl.data.sampler import GoalBatchSampler
    from goalrl.data.storage import EpisodeDataset

    check_settings(cfg, at_least_one=("steps",))
    info = dist_info_from_env()
    device = resolve_device(cfg.device, info)
    check_cuda_graph(cfg.cuda_graph, device, info)  # before any process group exists
    init_distributed(info, device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    kind = agent_kind(cfg.agent)
    if kind == "task":
        raise TrainingError(f"agent={kind} is fine-tuned (goalrl finetune), not pretrained")
    run_folder = ExitStack()  # the run folder's lock, on the process that writes it
    try:
        dataset = EpisodeDataset(cfg.data)
        env_id = cfg.env or dataset.meta.get("env_id")
        check_dataset_fits(dataset, env_id, evaluates=cfg.eval_episodes > 0 or cfg.eval_every > 0)
        # image or state frames; state: the agent's state width from the dataset
        observation = observation_kind(cfg.agent.encoder, dataset)
        agent = build_agent(
            kind, cfg.agent, dataset.image_shape, dataset.action_dim, dataset.proprio_dim, device,
            seed=cfg.seed,  # identical initial weights on every rank
            amp=cfg.amp,
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
            observation=observation,
            # the value-based agents' goal mixtures (goalrl/agents/value_agent.py)
            value_goals=getattr(cfg.agent, "value_goals", None),
            actor_goals=getattr(cfg.agent, "actor_goals", None),
            subgoal_steps=getattr(cfg.agent, "subgoal_steps", 0),
        )
        if info.is_main:
            # held until the run ends: a second run on this folder (fresh or resumed) is refused
            run_folder.enter_context(RunFolderLock(out))
            if not cfg.resume:
                check_out_free(out)
            remove_partial_saves(out)  # of a run killed mid-save
        start_step = 0
        if cfg.resume and (out / "checkpoints" / "latest").is_file():
            start_step = resume(out, agent, sampler, dataset, cfg, kind, info, device)
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            agent.train_net = DDP(
                agent.train_net, device_ids=[device.index] if device.type == "cuda" else None
            )
        # on a GPU, batches arrive in pinned memory so the copies do not stall the host
        batches = sampler.prefetch(depth=cfg.prefetch, pin=agent.device.type == "cuda")
        writer = open_writer(out, info)
        try:
            if cfg.cuda_graph:
                from goalrl.agents.graphed import GraphedUpdate

                update = GraphedUpdate(agent)
            else:
                update = agent.update
            result = train(Run(
                label=f"pretrain {kind}",
                agent=agent,
                out=out,
                phases=[Phase("pretrain", cfg.steps)],
                schedule=Schedule.of(cfg),
                next_batch=lambda step: (next(batches),),
                update=update,
                checkpoint_state=lambda: {
                    "agent": agent.state_dict(),
                    "samplers": gather_sampler_states(batches.state_dict(), info),
                },
                checkpoint_meta=checkpoint_meta(cfg, kind, dataset, env_id),
                env_id=env_id,
                image_size=dataset.image_shape[0],
                start_step=start_step,
                info=info,
                writer=writer,
            ))
        finally:
            batches.close()
            if writer is not None:
                writer.close()
        summary: dict[str, Any] = {
            "agent": kind,
            "steps": result.step,
            "updates_per_s": result.updates_per_s,
            "device": device_name(device),  # which GPU, for the benchmark's GPU profile
            "checkpoint": result.checkpoints.get("pretrain"),
            "tensorboard": str(out / "tb"),
            "eval_curve": result.curve,  # success at each eval_every step, before a resume too
        }
        if result.best is not None:
            summary["best"] = asdict(result.best)
        if result.final_eval is not None:
            summary["eval"] = result.final_eval
        return summary if info.is_main else {}
    finally:
        run_folder.close()
        shutdown(info)


def resume(
    out: Path, agent: Any, sampler: Any, dataset: Any, cfg: PretrainConfig, kind: str,
    info: DistInfo, device: torch.device,
) -> int:
    """Load the run's latest checkpoint into the agent and this rank's sampler; its step."""
    state, meta = load_checkpoint(out, map_location=str(device))
    check_checkpoint_fits(meta, dataset, str(out))
    load_agent_state(agent, state["agent"], meta["path"])
    sampler.load_state_dict(state["samplers"][info.rank])
    step = int(meta["step"])
    saved = asdict(config_from_dict(kind, meta["agent_config"]))  # today's layout
    changes = changed_settings(saved, asdict(cfg.agent))
    if changes and info.is_main:
        # the command line wins on resume; say so, since a forgotten override changes the run
        # as surely as a deliberate one
        warnings.warn(
            f"resuming {out} at step {step} with agent settings that differ from its "
            f"checkpoint: {'; '.join(changes)}",
            stacklevel=3,
        )
    return step


def checkpoint_meta(cfg: PretrainConfig, kind: str, dataset: Any, env_id: str | None) -> dict:
    return {**run_meta(kind, cfg.agent, cfg, dataset), "env_id": env_id, "parent": None}


def gather_sampler_states(state: dict[str, Any], info: DistInfo) -> list[dict[str, Any]]:
    """Every rank's sampler position (rank 0 saves them all, so any rank can resume)."""
    if not info.enabled:
        return [state]
    import torch.distributed as dist

    states: list[Any] = [None] * info.world_size
    dist.all_gather_object(states, state)
    return states
