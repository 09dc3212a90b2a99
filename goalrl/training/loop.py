"""The training loop shared by pretraining and fine-tuning.

``train(run)`` does, for every update until the last phase ends:

1. fetch the update's batch (``Run.next_batch``; fine-tuning's online phase plays an episode
   there first),
2. update the agent,
3. fold the update's loss into the loss watch (no device sync), and check it every
   ``log_every`` updates and before each save, so a NaN never reaches a checkpoint,
4. write TensorBoard scalars every ``log_every`` updates,
5. save a checkpoint every ``save_every`` updates and at the end of each phase, and prune the
   older ones (``keep_last``; the best evaluated one and each phase's last are kept),
6. evaluate every ``eval_every`` updates and at the end of each phase (an evaluation at a saved
   step can make that checkpoint the run's ``best``),

then evaluates once more, with videos. ``goalrl.training.pretrain`` and
``goalrl.training.finetune`` set a ``Run`` up (data, agent, resume, lineage) and call it.
Under torchrun every rank runs the loop; only rank 0 logs, evaluates and writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from goalrl.agents.registry import agent_policy
from goalrl.checkpoint import save_checkpoint, step_name
from goalrl.distributed import DistInfo, barrier
from goalrl.evaluate import evaluate_policy
from goalrl.loss_watch import LOSS_KEYS, LossWatch
from goalrl.training.checks import TrainingError
from goalrl.training.progress import Progress
from goalrl.training.run_folder import Best, prune_checkpoints, read_curve, write_curve

# an evaluation's figures written to TensorBoard (eval/<key>), and kept on the learning curve
SCALAR_KEYS = ("success_rate", "success_any_step_rate", "mean_final_distance",
               "median_final_distance", "mean_final_arm_distance", "episodes_object_off_table")
CURVE_KEYS = ("success_rate", "ci95", "success_any_step_rate", "mean_final_distance",
              "median_final_distance", "mean_final_arm_distance")


@dataclass(frozen=True)
class Phase:
    name: str  # recorded with each checkpoint and evaluation: pretrain, offline, online
    end: int  # the update (1-based) that ends it


@dataclass(frozen=True)
class Schedule:
    """When the loop checks, logs, saves and evaluates: the fields of that name in
    PretrainConfig and FinetuneConfig."""

    log_every: int
    save_every: int
    eval_every: int  # 0: only at the end of each phase
    eval_episodes: int  # 0: never evaluate
    videos: int  # rollout videos of the final evaluation
    max_loss: float
    progress_every: float = 30.0  # seconds between plain progress lines (no terminal)
    keep_last: int = 0  # step checkpoints kept (0: all); best and phase ends are kept too

    @classmethod
    def of(cls, cfg: Any) -> Schedule:
        return cls(**{name: getattr(cfg, name) for name in cls.__dataclass_fields__})


@dataclass
class Run:
    """What the loop trains and where it writes."""

    label: str  # progress label, e.g. "pretrain am"
    agent: Any
    out: Path  # run folder: checkpoints/, videos/
    phases: list[Phase]
    schedule: Schedule
    next_batch: Callable[[int], tuple]  # updates done so far -> the next update's arguments
    checkpoint_state: Callable[[], dict[str, Any]]  # called on every rank (may gather)
    checkpoint_meta: dict[str, Any]  # every checkpoint's meta; the loop adds the phase
    env_id: str | None  # evaluation scene (None: no evaluation)
    image_size: int
    update: Callable[..., Mapping[str, Any]] | None = None  # default: agent.update
    start_step: int = 0  # updates already done (a resumed run)
    eval_at_start: bool = False  # evaluate the initial weights too (phase "init")
    info: DistInfo = field(default_factory=DistInfo)
    writer: Any = None  # TensorBoard SummaryWriter, on the main process only


@dataclass
class LoopResult:
    step: int  # updates done, resumed ones included
    curve: list[dict[str, Any]] = field(default_factory=list)  # one point per evaluation
    checkpoints: dict[str, str] = field(default_factory=dict)  # phase -> its last checkpoint
    final_eval: dict[str, Any] | None = None
    updates_per_s: float | None = None  # this process's updates over the loop's time
    best: Best | None = None  # the best evaluated checkpoint (resumed runs: of the whole run)
    seconds: float = 0.0  # wall time, evaluations included


def train(run: Run) -> LoopResult:
    sched, info = run.schedule, run.info
    total = run.phases[-1].end
    update = run.agent.update if run.update is None else run.update
    evaluates = bool(info.is_main and run.env_id and sched.eval_episodes > 0)
    result = LoopResult(step=run.start_step)
    if info.is_main and run.start_step > 0:
        restore_result(run, result)
    watch = LossWatch()
    progress = Progress(run.label, total, run.start_step, enabled=info.is_main,
                        every_s=sched.progress_every)
    t0 = time.perf_counter()
    if evaluates and run.eval_at_start and run.start_step == 0:
        evaluate(run, result, 0, "init")
    step = run.start_step
    # a run stopped between saving a checkpoint and evaluating it: evaluate it now (evaluation
    # leaves the agent's RNG alone, so the resumed updates are the same either way)
    if evaluates and step > 0 and not any(p["step"] == step for p in result.curve):
        phase = eval_due(run, step)
        if phase is not None:
            evaluate(run, result, step, phase)
    try:
        while step < total:
            phase = next(p for p in run.phases if step < p.end)
            stats = update(*run.next_batch(step))
            step += 1
            watch.observe(stats, step)
            log_now = step % sched.log_every == 0
            save_now = step % sched.save_every == 0 or step == phase.end
            # Reading stats waits for the device, so only where they are used; always before
            # a save, so a NaN never reaches a checkpoint.
            if log_now or save_now:
                check_loss(watch, step, sched.max_loss, run.out)
            loss = log_stats(run.writer, stats, step) if log_now and run.writer else None
            progress.update(step, loss)
            if save_now:
                save(run, result, step, phase.name)
            if evaluates and eval_due(run, step) is not None:
                evaluate(run, result, step, phase.name)
    finally:
        progress.close()
    result.step = step
    elapsed = time.perf_counter() - t0
    result.updates_per_s = (step - run.start_step) / elapsed if elapsed > 0 else None
    if evaluates:
        result.final_eval = evaluate(run, result, step, run.phases[-1].name, sched.videos)
    result.seconds = time.perf_counter() - t0
    return result


def eval_due(run: Run, step: int) -> str | None:
    """The phase whose evaluation falls after update ``step``, or None: every ``eval_every``
    updates and at each phase's end, except the last update, whose evaluation is the final one
    (with videos), not run twice."""
    total = run.phases[-1].end
    phase = next((p for p in run.phases if step <= p.end), None)
    if phase is None or step >= total:
        return None
    every = run.schedule.eval_every
    return phase.name if step == phase.end or (every and step % every == 0) else None


def restore_result(run: Run, result: LoopResult) -> None:
    """What a resumed run keeps of the stopped one: its best checkpoint, its curve up to the
    resumed step and the checkpoints that ended its finished phases (so they are not pruned)."""
    result.best = Best.read(run.out)
    result.curve = read_curve(run.out, run.start_step)
    for phase in run.phases:
        path = run.out / "checkpoints" / step_name(phase.end)
        if phase.end <= run.start_step and path.is_dir():
            result.checkpoints[phase.name] = str(path)


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


def log_stats(writer: Any, stats: Mapping[str, Any], step: int) -> float | None:
    """TensorBoard scalars of an update's stats; returns its loss (for the progress line)."""
    for key, value in stats.items():
        if math.isfinite(value):
            writer.add_scalar(key, value, step)
    key = next((k for k in LOSS_KEYS if k in stats), None)
    return float(stats[key]) if key else None


def save(run: Run, result: LoopResult, step: int, phase: str) -> None:
    state = run.checkpoint_state()  # on every rank: it may gather the ranks' sampler states
    if run.info.is_main:
        meta = {**run.checkpoint_meta, "phase": phase}
        result.checkpoints[phase] = str(save_checkpoint(run.out, step, state, meta))
        prune(run, result)
    barrier(run.info)


def prune(run: Run, result: LoopResult) -> None:
    """Keep the last ``keep_last`` checkpoints, the best one and each phase's last one."""
    kept = {Path(path).name for path in result.checkpoints.values()}
    if result.best is not None:
        kept.add(result.best.checkpoint)
    prune_checkpoints(run.out, run.schedule.keep_last, kept)


def keep_best(run: Run, result: LoopResult, step: int, outcome: dict[str, Any]) -> None:
    """Make the checkpoint of ``step`` the run's best if its evaluation beats every earlier one.

    Only a step that was saved can be best (evaluations at other steps have no weights on
    disk; saving there would need every rank, and only the main process evaluates)."""
    rate = outcome.get("success_rate")
    name = step_name(step)
    if rate is None or not (run.out / "checkpoints" / name).is_dir():
        return
    if result.best is not None and rate <= result.best.success_rate:
        return
    result.best = Best(checkpoint=name, step=step, success_rate=float(rate))
    result.best.write(run.out)
    prune(run, result)  # the previous best may go now


def evaluate(
    run: Run, result: LoopResult, step: int, phase: str, videos: int = 0
) -> dict[str, Any]:
    """Evaluate the agent now: a point on the curve, TensorBoard scalars."""
    outcome = evaluate_agent(run.agent, run.env_id, run.schedule.eval_episodes, run.image_size,
                             videos=videos, video_dir=run.out / "videos")
    result.curve.append(eval_point(step, phase, outcome))
    write_curve(run.out, result.curve)
    keep_best(run, result, step, outcome)
    if run.writer is not None:
        log_eval(run.writer, outcome, step)
    return outcome


def eval_point(step: int, phase: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"step": step, "phase": phase, **{key: result.get(key) for key in CURVE_KEYS}}


def log_eval(writer: Any, result: dict[str, Any], step: int) -> None:
    """TensorBoard scalars of an evaluation (``evaluate_policy``'s result)."""
    for key in SCALAR_KEYS:
        if result.get(key) is not None:
            writer.add_scalar(f"eval/{key}", result[key], step)


def evaluate_agent(
    agent: Any, env_id: str, episodes: int, image_size: int, videos: int, video_dir: Path
) -> dict[str, Any]:
    """Evaluation that leaves the agent's RNG as it found it (so resumes stay exact)."""
    # With cuda_graph the generator is registered with the captured update. Restoring its state
    # here, outside any capture, rewrites the seed and offset that each replay reads when it
    # starts (torch's graph-safe RNG), so replays continue from the restored stream
    # (tests/agents/test_update_plumbing.py checks it on a GPU; skipped on CPU).
    rng = agent.get_rng_state()
    # what the agent reads, image or state: a task agent says (its encoder is nested), the
    # others' config has the encoder
    observation = getattr(agent, "observation", None) or agent.cfg.encoder.kind
    try:
        return evaluate_policy(env_id, agent_policy(agent), episodes, image_size=image_size,
                               videos=videos, video_dir=video_dir, observation=observation)
    finally:
        agent.set_rng_state(rng)


def run_meta(kind: str, agent_cfg: Any, cfg: Any, dataset: Any) -> dict[str, Any]:
    """What every checkpoint of a run records about its agent, settings and data
    (``cfg``: the run's PretrainConfig or FinetuneConfig)."""
    return {
        "agent": kind,
        "agent_config": asdict(agent_cfg),
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "agent"},
        "image_shape": list(dataset.image_shape),
        "action_dim": dataset.action_dim,
        "proprio_dim": dataset.proprio_dim,
        "action_low": dataset.meta.get("action_low"),
        "action_high": dataset.meta.get("action_high"),
        "dataset": str(Path(cfg.data).resolve()),
        "dataset_fingerprint": dataset.fingerprint(),
    }


def open_writer(out: Path, info: DistInfo) -> Any:
    """TensorBoard writer of ``<out>/tb`` on the main process, None elsewhere."""
    if not info.is_main:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tb"))
