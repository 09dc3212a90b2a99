"""Fine-tuning on a task reward: from a pretrained goal-conditioned checkpoint to a task policy.

``finetune(cfg)`` is what ``goalrl finetune`` runs:

1. Open the reward-labeled dataset; refuse an init checkpoint that does not fit it, the task
   scene or the method (agent kind, image shape, action size, proprio size, network shape),
   before any training (goalrl.training.finetune_init).
2. Build the agent of ``method``: a ``TaskQAgent`` (goalrl.agents.task_q; method q) or a
   ``TaskBCAgent`` (goalrl.agents.task_bc; method bc, behaviour cloning on the episodes that
   end in success), from the init weights (all of them, or an encoder only) or from scratch
   (``init=none``). By default the task is given only by its reward: z_task = mean goal
   embedding of the labeled successful final frames, no goal image anywhere; with
   ``agent.task_input=goal_image``, every episode's goal image re-rendered from its seed
   (goalrl.data.episode_goals). ``recipe=<name>`` (configs/recipe/) sets the baselines.
   The network reads what its encoder reads (``encoder.kind``: the init checkpoint's, or
   ``agent.am.encoder.kind`` / ``bc.gcbc.encoder.kind`` from scratch): camera images, or state
   vectors (goalrl.envs.state, as pretraining reads them; online and in evaluation
   the env's ``state``), checked against the data and the scene before training.
3. Offline phase, ``steps`` updates: reward-labeled batches, plus (method q) relabeled batches
   of the unlabeled data for the auxiliary goal-reaching loss.
4. Online phase, ``online_steps`` updates: every ``updates_per_episode`` updates the current
   policy (plus Gaussian noise) plays one episode of the task scene
   (goalrl.training.online); batches mix offline and online transitions at ``online_ratio``.
5. Success on the task scene at step 0, every ``eval_every`` updates and at each phase's end
   (the learning curve, in summary.json and TensorBoard, with the dip at the switch to
   online); checkpoints whose metadata name the method, the parent checkpoint (content hash
   and path) and the task.

Steps 3-5 are the shared training loop (goalrl.training.loop). One process (no torchrun):
fine-tuning data is small by design.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goalrl.agents.registry import build_agent
from goalrl.agents.task_bc import TaskBCConfig
from goalrl.agents.task_q import TaskQConfig
from goalrl.distributed import DistInfo, resolve_device
from goalrl.training.checks import (
    TrainingError,
    check_aux_data_fits,
    check_dataset_fits,
    check_out_free,
    check_settings,
)
from goalrl.training.finetune_init import (  # noqa: F401  (merge_am_config: re-exported)
    Init,
    check_aux_states,
    is_none,
    load_init_weights,
    merge_am_config,
    resolve_init,
    resolve_observation,
)
from goalrl.training.loop import Phase, Run, Schedule, open_writer, run_meta, train
from goalrl.training.online import OnlinePhase
from goalrl.training.run_folder import RunFolderLock, remove_partial_saves

METHODS = ("q", "bc")  # FinetuneConfig.method
AGENT_KIND = {"q": "task", "bc": "task_bc"}


@dataclass
class FinetuneConfig:
    # q: a task Q-function, CEM on it acts (agent.*); bc: behaviour cloning on the labeled
    # episodes that end in success, its policy's mean acts (bc.*); recipe=<name> picks a
    # baseline's settings (configs/recipe/)
    method: str = "q"
    # set by recipe=<name>: which method or baseline these settings are (checked: e.g.
    # scratch_play needs aux_data); '' for settings given field by field
    recipe: str = ""
    init: str = "???"  # pretrained checkpoint (step or run folder), or none: train from scratch
    task: str = "goalrl/Grasp-v0"  # task scene: its reward defines success; evaluation runs here
    data: str = "???"  # reward-labeled dataset (per-step rewards or per-frame success labels)
    out: str = "runs/finetune"  # run folder: checkpoints/, tb/, online/, videos/, summary.json
    steps: int = 2000  # offline gradient updates on the labeled data
    online_steps: int = 0  # online gradient updates after the offline ones (0: offline only)
    agent: TaskQConfig = field(default_factory=TaskQConfig)  # task Q, conservative term, aux loss
    bc: TaskBCConfig = field(default_factory=TaskBCConfig)  # method=bc: the policy network
    # unlabeled data for the auxiliary goal-reaching loss (method=q): '' = the init
    # checkpoint's pretraining dataset (none with init=none), none = no auxiliary loss, or a
    # dataset folder (the fair scratch baseline gives its play data here)
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
    # step checkpoints kept: the last N (0: all), plus the best evaluated one, each phase's last
    # and latest
    keep_last: int = 5
    prefetch: int = 4  # auxiliary batches read ahead in a background thread
    max_loss: float = 1e4  # a loss above this (or NaN/inf) stops the run
    # seconds between progress lines on stderr when it is not a terminal (a terminal gets a bar)
    progress_every: float = 30.0
    # continue the run in ``out`` from its latest checkpoint (weights, optimisers, batch
    # streams, online episodes up to it, learning curve); with no checkpoint there yet it
    # starts fresh. The settings must be the stopped run's: method, data, init and task are
    # checked
    resume: bool = False


# ---- data -----------------------------------------------------------------------------------
def open_aux_data(cfg: FinetuneConfig, init: Init, dataset: Any) -> Any | None:
    """The unlabeled dataset of the auxiliary loss, or None (aux_weight 0, none, or scratch)."""
    from goalrl.data.storage import EpisodeDataset

    if cfg.method == "bc" or cfg.agent.aux_weight <= 0 or str(cfg.aux_data).strip().lower() in (
        "none", "null"
    ):
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
    check_aux_states(cfg, init, aux)
    check_aux_data_fits(aux, dataset)
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


def task_input(agent: Any, cfg: FinetuneConfig, dataset: Any, init: Init) -> tuple[Any, Any, str]:
    """(goal renderer, (E, H, W, 3) episode goal images, where z_task came from): with
    goal-image input, the labeled episodes' goals; otherwise z_task's initial value (from the
    success frames' images, or their states (S, 5 + G) for a state network)."""
    from goalrl.data.episode_goals import GoalImageRenderer

    if agent.uses_goal_image:
        goals = GoalImageRenderer(cfg.task, dataset.image_shape[0])
        try:
            return goals, goals.goal_images(dataset), "not used (agent.task_input=goal_image)"
        except Exception:
            goals.close()
            raise
    if init.state is not None and "z" in init.state:
        return None, None, "init checkpoint"
    idx = success_frame_indices(dataset)
    if len(idx):
        if agent.observation == "state":
            from goalrl.data.sampler import state_vectors

            agent.init_task_embedding(state_vectors(dataset)[idx])  # (S, 5 + G)
        else:
            agent.init_task_embedding(dataset.images(idx))  # (S, H, W, 3)
        return None, None, "success frames"
    return None, None, "zeros (no successful labeled episode)"


# ---- the run --------------------------------------------------------------------------------
def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    from goalrl.data.storage import EpisodeDataset
    from goalrl.data.task import task_rewards

    check_settings(cfg)
    if cfg.method not in METHODS:
        raise TrainingError(f"method={cfg.method!r}: must be one of {', '.join(METHODS)}")
    if cfg.recipe == "scratch_play" and is_none(cfg.aux_data):
        raise TrainingError(
            "recipe=scratch_play is the fair scratch baseline: it needs the unlabeled play data "
            f"the pretrained run used, aux_data=<dataset folder> (aux_data={cfg.aux_data!r})"
        )
    if cfg.steps + cfg.online_steps == 0:
        raise TrainingError(f"steps={cfg.steps}, online_steps={cfg.online_steps}: nothing to do")
    out = Path(cfg.out)
    if not cfg.resume:
        check_out_free(out, "a fine-tuning run")
    device = resolve_device(cfg.device, DistInfo())
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)

    # data and init checkpoint, checked before anything is trained or written
    dataset = EpisodeDataset(cfg.data)
    spec = check_dataset_fits(dataset, cfg.task)
    rewards = task_rewards(dataset)  # refuses a dataset without reward or success labels
    init = resolve_init(cfg, dataset, spec, device)
    observation = resolve_observation(cfg, init, dataset, spec)  # image | state
    aux = open_aux_data(cfg, init, dataset)
    # everything is checked: from here to the end the run holds its folder (a second run on
    # it is refused), and litter of a killed save goes
    with RunFolderLock(out):
        if not cfg.resume:
            check_out_free(out, "a fine-tuning run")  # again, under the lock
        remove_partial_saves(out)
        return train_task_agent(cfg, out, device, dataset, rewards, spec, init, aux,
                                observation)


def train_task_agent(
    cfg: FinetuneConfig, out: Path, device: torch.device, dataset: Any, rewards: np.ndarray,
    spec: dict[str, Any], init: Init, aux: Any, observation: str = "image",
) -> dict[str, Any]:
    """The fine-tuning run proper, on checked data and init: its summary. ``observation``:
    what the agent reads, "image" or "state" (batches, online episodes, evaluation)."""
    from goalrl.data.sampler import GoalBatchSampler
    from goalrl.data.task import TaskBatchSampler

    # the agent, its task input, and the batches
    agent = build_agent(AGENT_KIND[cfg.method], init.agent_cfg, dataset.image_shape,
                        dataset.action_dim, dataset.proprio_dim, device, seed=cfg.seed,
                        amp=cfg.amp)
    if init.state is not None:
        load_init_weights(agent, init)
    goals, goal_images, z_from = task_input(agent, cfg, dataset, init)
    agent.seed(cfg.seed * 1000 + 1)
    # behaviour cloning sees only the successful episodes (offline and online)
    task_sampler = TaskBatchSampler(dataset, cfg.batch_size, gamma=cfg.agent.gamma,
                                    online_ratio=cfg.online_ratio, seed=cfg.seed,
                                    goal_images=goal_images, successful_only=cfg.method == "bc",
                                    observation=observation)
    aux_sampler = aux_batches = None
    if aux is not None:
        aux_sampler = GoalBatchSampler(
            aux, cfg.aux_batch_size or cfg.batch_size, goal_mode=cfg.goal_mode,
            gamma=init.agent_cfg.am.gamma,
            p_chain=cfg.p_chain if init.agent_cfg.am.chaining else 0.0, seed=cfg.seed,
            observation=observation,
        )
    meta = checkpoint_meta(cfg, agent, dataset, aux, init, z_from)
    online = OnlinePhase(cfg, dataset, spec, task_sampler, goals)
    start_step = 0
    if cfg.resume and (out / "checkpoints" / "latest").is_file():
        start_step = resume(out, meta, agent, task_sampler, aux_sampler, online)
    if aux_sampler is not None:
        aux_batches = aux_sampler.prefetch(depth=cfg.prefetch)
    writer = online.writer = open_writer(out, DistInfo())

    def next_batch(step: int) -> tuple[Any, Any]:
        online.before_update(agent, step)
        return task_sampler.sample(), next(aux_batches) if aux_batches is not None else None

    total = cfg.steps + cfg.online_steps
    phases = [Phase(name, end) for name, end, n in
              (("offline", cfg.steps, cfg.steps), ("online", total, cfg.online_steps)) if n]
    try:
        result = train(Run(
            label="finetune",
            agent=agent,
            out=out,
            phases=phases,
            schedule=Schedule.of(cfg),
            next_batch=next_batch,
            checkpoint_state=lambda: {
                "agent": agent.state_dict(),
                "task_sampler": task_sampler.state_dict(),
                "aux_sampler": aux_batches.state_dict() if aux_batches is not None else None,
                "online_episodes": online.episodes,
            },
            checkpoint_meta=meta,
            env_id=cfg.task,
            image_size=dataset.image_shape[0],
            start_step=start_step,
            eval_at_start=True,
            writer=writer,
        ))
    finally:
        if aux_batches is not None:
            aux_batches.close()
        online.close()
        if goals is not None:
            goals.close()
        writer.close()

    def at(step: int) -> float | None:
        rates = [p["success_rate"] for p in result.curve if p["step"] == step]
        return rates[-1] if rates else None

    q_only = {} if cfg.method == "bc" else {
        "task_input": agent.cfg.task_input,
        "calibration": agent.cfg.calibration,
        "act_with_target": agent.cfg.act_with_target,
    }
    summary: dict[str, Any] = {
        "method": meta["method"],
        "init": None if is_none(cfg.init) else str(cfg.init),
        "init_agent": init.kind,
        "init_weights": init.carried,
        "parent": init.parent,
        "task": cfg.task,
        "data": str(cfg.data),
        "labeled_episodes": int(dataset.num_episodes),
        "labeled_success_rate": float(np.mean(dataset.success[dataset.episode_ends]))
        if dataset.success is not None else None,
        "labeled_reward_frames": int(rewards.sum()),
        "aux_data": meta["aux_dataset"],
        "task_embedding_init": z_from,
        "observation": observation,
        **q_only,
        "steps": cfg.steps,
        "online_steps": cfg.online_steps,
        "success_init": at(0),
        "success_offline": at(cfg.steps) if cfg.steps else None,
        "success_final": at(total),
        "dip_after_switch": switch_dip(result.curve, cfg.steps, cfg.online_steps),
        "curve": result.curve,
        "online_episodes": online.episodes,
        "online_episode_success_rate": online.success_rate,
        "offline_checkpoint": result.checkpoints.get("offline"),
        "checkpoint": result.checkpoints.get("online", result.checkpoints.get("offline")),
        "updates_per_s": result.updates_per_s,
        "seconds": result.seconds,
        "tensorboard": str(out / "tb"),
    }
    if result.best is not None:
        summary["best"] = asdict(result.best)
    if result.final_eval is not None:
        summary["eval"] = result.final_eval
    return summary


# what a resumed run must share with the stopped one, or it would be another experiment
RESUME_KEYS = ("method", "task", "dataset_fingerprint", "aux_dataset", "parent")


def resume(out: Path, meta: dict[str, Any], agent: Any, task_sampler: Any, aux_sampler: Any,
           online: OnlinePhase) -> int:
    """Load the run's latest checkpoint into the agent, the batch streams and the online
    phase; its step."""
    from goalrl.agents.registry import load_agent_state
    from goalrl.checkpoint import load_checkpoint

    state, saved = load_checkpoint(out, map_location=str(agent.device))
    for key in RESUME_KEYS:
        if saved.get(key) != meta[key]:
            raise TrainingError(
                f"cannot resume {saved['path']}: its {key} is {saved.get(key)!r}, these "
                f"settings give {meta[key]!r}; resume with the run's own settings, or start a "
                "new run (another out=)"
            )
    if "task_sampler" not in state:
        raise TrainingError(f"cannot resume {saved['path']}: it was saved by a goalrl that did "
                            "not resume fine-tuning (no batch-stream state); start a new run")
    load_agent_state(agent, state["agent"], saved["path"])
    task_sampler.load_state_dict(state["task_sampler"])
    if aux_sampler is not None:
        aux_sampler.load_state_dict(state["aux_sampler"])
    online.restore(int(state["online_episodes"]))
    return int(saved["step"])


def switch_dip(curve: list[dict[str, Any]], steps: int, online_steps: int) -> float | None:
    """The dip at the switch to online: success at the end of the offline phase minus the
    lowest success over the first half of the online phase (0 if it never drops); None
    without both phases or without an evaluation in that half."""
    switch = [p["success_rate"] for p in curve if p["step"] == steps and steps > 0]
    early = [p["success_rate"] for p in curve
             if steps < p["step"] <= steps + online_steps / 2 and p.get("phase") == "online"]
    if not switch or not early:
        return None
    return max(0.0, switch[-1] - min(early))


def method_name(cfg: FinetuneConfig, agent: Any, init: Init, aux: Any) -> str:
    """What acts and what it learned from, for checkpoints and the results store: e.g.
    ``task_q_from_am_aux`` (CEM on a task Q fine-tuned from an AM checkpoint, goal-reaching
    loss on unlabeled data), ``task_q_from_scratch_aux`` (the fair scratch run),
    ``task_q_from_gcbc_encoder_aux``, ``task_bc_success_from_gcbc``."""
    if cfg.method == "bc":
        what = "task_bc_success"
    else:
        what = "task_q" + ("_calql" if agent.cfg.calibration == "calql" else "")
        what += "_goal_image" if agent.uses_goal_image else ""
    origin = init.kind or "scratch"
    origin += "_encoder" if init.carried == "encoder" else ""
    return f"{what}_from_{origin}" + ("_aux" if aux is not None else "")


def checkpoint_meta(
    cfg: FinetuneConfig, agent: Any, dataset: Any, aux: Any, init: Init, z_from: str
) -> dict[str, Any]:
    return {
        **run_meta(AGENT_KIND[cfg.method], agent.cfg, cfg, dataset),
        "method": method_name(cfg, agent, init, aux),  # what acts, from what (results rows)
        "init_weights": init.carried,  # all weights | encoder | nothing
        "env_id": cfg.task,
        "task": cfg.task,
        "aux_dataset": str(aux.root.resolve()) if aux is not None else None,
        "parent": init.parent,  # content hash of the init checkpoint (None: from scratch)
        "parent_checkpoint": init.path,
        "parent_step": init.meta["step"] if init.meta else None,
        "task_embedding_init": z_from,
    }
