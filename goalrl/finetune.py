"""Fine-tuning on a task reward: from a pretrained goal-conditioned checkpoint to a task policy.

``finetune(cfg)`` is what ``goalrl finetune`` runs, in plain sight:

1. Open the reward-labeled dataset; refuse an init checkpoint that does not fit it or the
   task scene (image shape, action size, proprio size, network shape), before any training.
2. Build a ``TaskQAgent`` (goalrl.agents.task_q) from the init weights (or from scratch with
   ``init=none``); z_task = mean goal embedding of the labeled successful final frames, or,
   with ``agent.task_input=goal_image``, every episode's goal image re-rendered from its seed
   (goalrl.data.episode_goals).
3. Offline phase, ``steps`` updates: reward-labeled batches, plus relabeled batches of the
   unlabeled pretraining data for the auxiliary goal-reaching loss.
4. Online phase, ``online_steps`` updates: every ``updates_per_episode`` updates the current
   policy (CEM + Gaussian noise) plays one episode of the task scene, recorded with the
   simulator's rewards into ``<out>/online`` (a goalrl dataset); batches mix offline and
   online transitions at ``online_ratio``.
5. Success on the task scene every ``eval_every`` updates (the learning curve, in
   summary.json and TensorBoard), at the switch to online and at the end; checkpoints whose
   metadata name the parent checkpoint (content hash and path) and the task.

One process (no torchrun): fine-tuning data is small by design.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goalrl.agents import AMConfig
from goalrl.agents.task_q import ARCHITECTURE_FIELDS, TaskQAgent, TaskQConfig
from goalrl.loss_watch import LossWatch
from goalrl.train import (
    TrainingError,
    check_dataset_fits,
    check_loss,
    evaluate_agent,
    log_eval,
)

ONLINE_SEED_OFFSET = 500_000  # online episodes use env seeds from here (eval seeds: 1,000,000+)
Q_AGENTS = ("am", "task")  # checkpoint kinds with a Q network to fine-tune


@dataclass
class FinetuneConfig:
    init: str = "???"  # pretrained checkpoint (step or run folder), or none: train from scratch
    task: str = "goalrl/Grasp-v0"  # task scene: its reward defines success; evaluation runs here
    data: str = "???"  # reward-labeled dataset (per-step rewards or per-frame success labels)
    out: str = "runs/finetune"  # run folder: checkpoints/, tb/, online/, videos/, summary.json
    steps: int = 2000  # offline gradient updates on the labeled data
    online_steps: int = 0  # online gradient updates after the offline ones (0: offline only)
    agent: TaskQConfig = field(default_factory=TaskQConfig)  # task Q, conservative term, aux loss
    # unlabeled data for the auxiliary goal-reaching loss: '' = the init checkpoint's
    # pretraining dataset (none with init=none), none = no auxiliary loss, or a dataset folder
    aux_data: str = ""
    batch_size: int = 128  # reward-labeled transitions per update
    aux_batch_size: int = 0  # relabeled goal transitions per update (0: batch_size)
    goal_mode: str = "uniform"  # auxiliary goals: hindsight offset law (uniform | geometric)
    p_chain: float = 0.2  # auxiliary goals: fraction chained from other episodes
    online_ratio: float = 0.5  # fraction of each batch from online episodes once there are any
    updates_per_episode: int = 20  # online phase: one new policy episode every N updates
    explore_std: float = 0.2  # std of Gaussian noise on CEM actions when collecting online
    seed: int = 0  # weights (init=none), sampling, augmentation, exploration
    device: str = "auto"  # auto | cpu | cuda | cuda:<i>
    amp: bool = True  # bfloat16 autocast when on CUDA (ignored on CPU)
    threads: int = 0  # torch CPU threads (0: torch's default)
    eval_every: int = 500  # evaluate every N updates (0: only at step 0 and the phase ends)
    eval_episodes: int = 20  # evaluation rollouts per point (seeds from 1,000,000 up)
    videos: int = 2  # rollout videos written by the final evaluation
    log_every: int = 50  # TensorBoard scalars and the NaN/exploding-loss check every N updates
    save_every: int = 1000  # checkpoint every N updates (and at the end of each phase)
    prefetch: int = 4  # auxiliary batches read ahead in a background thread
    max_loss: float = 1e4  # a loss above this (or NaN/inf) stops the run


# ---- the init checkpoint --------------------------------------------------------------------
@dataclass
class Init:
    """What fine-tuning starts from: agent config, weights (None: scratch) and lineage."""

    agent_cfg: TaskQConfig
    state: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    path: str | None = None  # the checkpoint's step folder
    parent: str | None = None  # checkpoint_hash of the init checkpoint


def is_none(value: str | None) -> bool:
    return value is None or str(value).strip().lower() in ("none", "null", "")


def merge_am_config(user: AMConfig, ckpt_values: dict[str, Any], where: str) -> AMConfig:
    """The checkpoint's AM config, with the fields the user changed from the defaults.

    A changed architecture field that differs from the checkpoint cannot be honoured (the
    weights have another shape): TrainingError naming the field.
    """
    defaults = asdict(AMConfig())
    mine = asdict(user)
    known = {f.name for f in fields(AMConfig)}
    # How the pretrained policy acted is not inherited: with act_rule=prior_mean the task
    # policy would follow the goal-reaching prior and never use the task Q it learns.
    merged = {k: v for k, v in ckpt_values.items() if k in known and k != "act_rule"}
    for name, value in mine.items():
        if value == defaults[name]:
            continue
        if name in ARCHITECTURE_FIELDS and merged.get(name, defaults[name]) != value:
            raise TrainingError(
                f"{where}: field 'agent_config.{name}' is {merged.get(name)!r} but "
                f"agent.am.{name}={value!r} was asked for; the encoder and heads of a checkpoint "
                "cannot change shape (drop the override or pretrain with it)"
            )
        merged[name] = value
    return AMConfig(**merged)


def check_init_fits(
    meta: dict[str, Any], step_dir: str, dataset: Any, spec: dict[str, Any], task: str
) -> None:
    """TrainingError naming the file and field where an init checkpoint does not fit."""
    where = f"init checkpoint {Path(step_dir) / 'meta.json'}"
    kind = meta.get("agent")
    if kind not in Q_AGENTS:
        raise TrainingError(
            f"{where}: field 'agent' is {kind!r}; fine-tuning needs a goal-conditioned "
            "Q-function (a checkpoint of `goalrl pretrain agent=am` or of `goalrl finetune`)"
        )
    shape = tuple(meta["image_shape"])
    if shape != tuple(dataset.image_shape):
        raise TrainingError(
            f"{where}: field 'image_shape' is {list(shape)} but the labeled dataset "
            f"{dataset.root} has {list(dataset.image_shape)} images (task {task} is rendered at "
            "the data's size); collect the data at the checkpoint's image_size"
        )
    if meta["action_dim"] != spec["action_dim"]:
        raise TrainingError(
            f"{where}: field 'action_dim' is {meta['action_dim']} but task {task} takes "
            f"{spec['action_dim']}-d actions"
        )
    if meta["action_dim"] != dataset.action_dim:
        raise TrainingError(
            f"{where}: field 'action_dim' is {meta['action_dim']} but the labeled dataset "
            f"{dataset.root} has {dataset.action_dim}-d actions"
        )
    am_values = meta["agent_config"].get("am", meta["agent_config"])
    if am_values.get("use_proprio") and meta.get("proprio_dim"):
        for name, dim in (("task " + task, spec["proprio_dim"]),
                          (f"the labeled dataset {dataset.root}", dataset.proprio_dim)):
            if dim != meta["proprio_dim"]:
                raise TrainingError(
                    f"{where}: field 'proprio_dim' is {meta['proprio_dim']} (the encoder reads "
                    f"proprioception) but {name} has {dim}"
                )


def resolve_init(
    cfg: FinetuneConfig, dataset: Any, spec: dict[str, Any], device: torch.device
) -> Init:
    """Read and check the init checkpoint (nothing is trained or written here)."""
    if is_none(cfg.init):
        return Init(agent_cfg=cfg.agent)
    from goalrl.checkpoint import checkpoint_hash, load_checkpoint, read_meta, resolve_checkpoint

    step_dir = str(resolve_checkpoint(cfg.init))
    meta = read_meta(step_dir)
    check_init_fits(meta, step_dir, dataset, spec, cfg.task)
    ckpt_am = meta["agent_config"].get("am", meta["agent_config"])
    where = f"init checkpoint {Path(step_dir) / 'meta.json'}"
    agent_cfg = TaskQConfig(**{
        **{f.name: getattr(cfg.agent, f.name) for f in fields(TaskQConfig)},
        "am": merge_am_config(cfg.agent.am, ckpt_am, where),
    })
    state, meta = load_checkpoint(step_dir, map_location=str(device))
    return Init(agent_cfg, state["agent"], meta, step_dir, checkpoint_hash(step_dir))


# ---- data -----------------------------------------------------------------------------------
def open_aux_data(cfg: FinetuneConfig, init: Init, dataset: Any) -> Any | None:
    """The unlabeled dataset of the auxiliary loss, or None (aux_weight 0, none, or scratch)."""
    from goalrl.data.storage import EpisodeDataset

    if cfg.agent.aux_weight <= 0 or str(cfg.aux_data).strip().lower() in ("none", "null"):
        return None
    path = cfg.aux_data or (init.meta or {}).get("dataset")
    if not path:
        return None
    if not Path(path).is_dir():
        raise TrainingError(
            f"auxiliary data {path} (the init checkpoint's pretraining dataset) does not exist; "
            "pass aux_data=<dir>, or aux_data=none to fine-tune without the auxiliary loss"
        )
    aux = EpisodeDataset(path)
    if tuple(aux.image_shape) != tuple(dataset.image_shape) or aux.action_dim != dataset.action_dim:
        raise TrainingError(
            f"auxiliary data {aux.root} has {list(aux.image_shape)} images and "
            f"{aux.action_dim}-d actions; the labeled dataset {dataset.root} has "
            f"{list(dataset.image_shape)} and {dataset.action_dim}-d"
        )
    if (aux.proprio_dim is None) != (dataset.proprio_dim is None):
        raise TrainingError(f"auxiliary data {aux.root} and {dataset.root} differ in proprio")
    return aux


def success_frame_indices(dataset: Any) -> np.ndarray:
    """(S,) frames that show the task done: the final frames of the episodes that end in
    success; if none does, the last success frame of every episode that had one."""
    from goalrl.data.task import last_success_frames, task_success

    success = task_success(dataset)  # (N,)
    finals = dataset.episode_ends[success[dataset.episode_ends]]
    if len(finals):
        return finals
    return last_success_frames(success, dataset.episode_starts, dataset.episode_lengths)


def success_frame_images(dataset: Any) -> np.ndarray:
    """(S, H, W, 3) images of ``success_frame_indices``."""
    idx = success_frame_indices(dataset)
    return dataset.images(idx) if len(idx) else np.zeros((0, *dataset.image_shape), np.uint8)


def record_episode(env: Any, agent: TaskQAgent, seed: int, explore_std: float) -> Any:
    """One episode of the current policy with exploration noise, as EpisodeData."""
    from goalrl.data.recording import record_rollout

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        return agent.act(obs["image"], obs["desired_goal_image"], obs["observation"],
                         explore_std=explore_std)

    episode, _ = record_rollout(env, act, seed)
    episode.info = {"policy": "finetune-online", "explore_std": explore_std, "step": agent.step}
    return episode


class OnlineCollector:
    """The online phase's simulator and replay dataset (<out>/online, goalrl format)."""

    def __init__(self, cfg: FinetuneConfig, dataset: Any, spec: dict[str, Any]) -> None:
        import gymnasium as gym

        import goalrl  # noqa: F401  (registers the scene ids)
        from goalrl.data.storage import DatasetWriter

        self.cfg = cfg
        self.root = Path(cfg.out) / "online"
        self.env = gym.make(cfg.task, image_size=dataset.image_shape[0])
        self.writer = DatasetWriter(
            self.root,
            image_shape=tuple(dataset.image_shape),
            action_dim=spec["action_dim"],
            proprio_dim=spec["proprio_dim"],
            goal_dim=spec["goal_dim"],
            env_id=cfg.task,
            source="goalrl finetune (online policy episodes)",
            has_rewards=True,
            has_success=True,
            durable=False,
        )
        self.episodes = 0
        self.successes = 0
        self.dataset: Any = None

    def collect(self, agent: TaskQAgent) -> Any:
        """Play one episode, append it, and return the re-opened online dataset."""
        from goalrl.data.storage import EpisodeDataset

        episode = record_episode(
            self.env, agent, ONLINE_SEED_OFFSET + self.cfg.seed * 10_000 + self.episodes,
            self.cfg.explore_std,
        )
        self.writer.append(episode)
        self.episodes += 1
        self.successes += int(episode.success[-1])
        if self.dataset is not None:
            self.dataset.close()
        self.dataset = EpisodeDataset(self.root)
        return self.dataset

    def close(self) -> None:
        self.writer.close()
        self.env.close()
        if self.dataset is not None:
            self.dataset.close()


# ---- the loop -------------------------------------------------------------------------------
def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from goalrl.checkpoint import save_checkpoint
    from goalrl.data.episode_goals import GoalImageRenderer
    from goalrl.data.sampler import GoalBatchSampler
    from goalrl.data.storage import EpisodeDataset
    from goalrl.data.task import TaskBatchSampler, task_rewards
    from goalrl.distributed import DistInfo, resolve_device

    if cfg.steps < 0 or cfg.online_steps < 0 or cfg.steps + cfg.online_steps == 0:
        raise TrainingError(f"steps={cfg.steps}, online_steps={cfg.online_steps}: nothing to do")
    if cfg.updates_per_episode < 1:
        raise TrainingError("updates_per_episode must be >= 1")
    out = Path(cfg.out)
    if (out / "checkpoints" / "latest").is_file():
        raise TrainingError(f"{out} already holds a fine-tuning run; choose another out=")
    device = resolve_device(cfg.device, DistInfo())
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)

    # 1. data and init checkpoint, checked before anything is trained or written
    dataset = EpisodeDataset(cfg.data)
    spec = check_dataset_fits(dataset, cfg.task)
    rewards = task_rewards(dataset)  # refuses a dataset without reward or success labels
    init = resolve_init(cfg, dataset, spec, device)
    aux = open_aux_data(cfg, init, dataset)
    if device.type == "cuda":
        init.agent_cfg.am.amp = cfg.amp

    # 2. the agent and its task embedding
    agent = TaskQAgent(init.agent_cfg, dataset.image_shape, dataset.action_dim,
                       dataset.proprio_dim, device, seed=cfg.seed)
    if init.state is not None:
        agent.load_pretrained(init.state)
    goals: GoalImageRenderer | None = None  # episode goal images, for goal-image task input
    goal_images = None  # (E, H, W, 3)
    if agent.uses_goal_image:
        goals = GoalImageRenderer(cfg.task, dataset.image_shape[0])
        try:
            goal_images = goals.goal_images(dataset)
        except Exception:
            goals.close()
            raise
        z_from = "not used (agent.task_input=goal_image)"
    elif init.state is not None and "z" in init.state:
        z_from = "init checkpoint"
    elif len(success_images := success_frame_images(dataset)):
        agent.init_task_embedding(success_images)
        z_from = "success frames"
    else:
        z_from = "zeros (no successful labeled episode)"
    agent.seed(cfg.seed * 1000 + 1)

    task_sampler = TaskBatchSampler(dataset, cfg.batch_size, gamma=init.agent_cfg.gamma,
                                    online_ratio=cfg.online_ratio, seed=cfg.seed,
                                    goal_images=goal_images)
    aux_batches = None
    if aux is not None:
        aux_sampler = GoalBatchSampler(
            aux, cfg.aux_batch_size or cfg.batch_size, goal_mode=cfg.goal_mode,
            gamma=init.agent_cfg.am.gamma,
            p_chain=cfg.p_chain if init.agent_cfg.am.chaining else 0.0, seed=cfg.seed,
        )
        aux_batches = aux_sampler.prefetch(depth=cfg.prefetch)

    meta_base = {
        "agent": "task",
        "agent_config": asdict(agent.cfg),
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "agent"},
        "image_shape": list(dataset.image_shape),
        "action_dim": dataset.action_dim,
        "proprio_dim": dataset.proprio_dim,
        "action_low": dataset.meta.get("action_low"),
        "action_high": dataset.meta.get("action_high"),
        "env_id": cfg.task,
        "task": cfg.task,
        "dataset": str(Path(cfg.data).resolve()),
        "dataset_fingerprint": dataset.fingerprint(),
        "aux_dataset": str(aux.root.resolve()) if aux is not None else None,
        "parent": init.parent,  # content hash of the init checkpoint (None: from scratch)
        "parent_checkpoint": init.path,
        "parent_step": init.meta["step"] if init.meta else None,
        "task_embedding_init": z_from,
    }
    image_size = dataset.image_shape[0]
    writer = SummaryWriter(str(out / "tb"))
    curve: list[dict[str, Any]] = []

    def evaluate(step: int, phase: str, videos: int = 0) -> dict[str, Any]:
        result = evaluate_agent(agent, cfg.task, cfg, image_size, videos=videos)
        curve.append({"step": step, "phase": phase, "success_rate": result["success_rate"],
                      "ci95": result["ci95"]})
        log_eval(writer, result, step)
        return result

    total = cfg.steps + cfg.online_steps
    collector: OnlineCollector | None = None
    saved: dict[str, str] = {}
    step = 0
    bar = tqdm(total=total, desc="finetune", disable=None)
    loss_watch = LossWatch()
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    try:
        if cfg.eval_episodes > 0:
            evaluate(0, "init")
        while step < total:
            phase = "offline" if step < cfg.steps else "online"
            if phase == "online" and (step - cfg.steps) % cfg.updates_per_episode == 0:
                if collector is None:
                    collector = OnlineCollector(cfg, dataset, spec)
                online = collector.collect(agent)
                task_sampler.set_online(online, goals.goal_images(online) if goals else None)
                writer.add_scalar("online/episodes", collector.episodes, step)
                writer.add_scalar("online/success_rate",
                                  collector.successes / collector.episodes, step)
            stats = agent.update(task_sampler.sample(),
                                 next(aux_batches) if aux_batches is not None else None)
            step += 1
            loss_watch.observe(stats, step)
            bar.update(1)
            end_of_phase = step == cfg.steps or step == total
            save_now = step % cfg.save_every == 0 or end_of_phase
            if step % cfg.log_every == 0 or save_now:  # reading stats waits for the device
                check_loss(loss_watch, step, cfg.max_loss, out)
            if step % cfg.log_every == 0:
                for k, v in stats.items():
                    if math.isfinite(v):
                        writer.add_scalar(k, v, step)
                bar.set_postfix(loss=f"{stats['task/loss']:.3f}")
            if save_now:
                path = save_checkpoint(out, step, {"agent": agent.state_dict()},
                                       {**meta_base, "phase": phase})
                saved[phase] = str(path)
            if cfg.eval_episodes > 0 and (
                end_of_phase or (cfg.eval_every and step % cfg.eval_every == 0)
            ):
                result = evaluate(step, phase, videos=cfg.videos if step == total else 0)
    finally:
        bar.close()
        if aux_batches is not None:
            aux_batches.close()
        if collector is not None:
            collector.close()
        if goals is not None:
            goals.close()
        writer.close()
    elapsed = time.perf_counter() - t0

    def at(step_: int) -> float | None:
        rates = [p["success_rate"] for p in curve if p["step"] == step_]
        return rates[-1] if rates else None

    summary: dict[str, Any] = {
        "init": None if is_none(cfg.init) else str(cfg.init),
        "parent": init.parent,
        "task": cfg.task,
        "data": str(cfg.data),
        "labeled_episodes": int(dataset.num_episodes),
        "labeled_success_rate": float(np.mean(dataset.success[dataset.episode_ends]))
        if dataset.success is not None else None,
        "labeled_reward_frames": int(rewards.sum()),
        "aux_data": meta_base["aux_dataset"],
        "task_embedding_init": z_from,
        "task_input": agent.cfg.task_input,
        "calibrate": agent.cfg.calibrate,
        "act_with_target": agent.cfg.act_with_target,
        "steps": cfg.steps,
        "online_steps": cfg.online_steps,
        "success_init": at(0),
        "success_offline": at(cfg.steps) if cfg.steps else None,
        "success_final": at(total),
        "curve": curve,
        "online_episodes": collector.episodes if collector else 0,
        "online_episode_success_rate": (collector.successes / collector.episodes)
        if collector and collector.episodes else None,
        "offline_checkpoint": saved.get("offline"),
        "checkpoint": saved.get("online", saved.get("offline")),
        "updates_per_s": total / elapsed if elapsed > 0 else None,
        "seconds": elapsed,
        "tensorboard": str(out / "tb"),
    }
    if result:
        summary["eval"] = result
    return summary
