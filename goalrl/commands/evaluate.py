"""``goalrl eval``: roll a checkpoint's policy toward goal images in a scene."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from goalrl.evaluate import EVAL_SEED_OFFSET


@dataclass
class EvalConfig:
    ckpt: str = "???"  # checkpoint folder (a step folder, or a run folder: its latest)
    # scene id (default: the checkpoint's env); ogbench:<name> runs OGBench's five tasks
    env: str | None = None
    episodes: int = 20  # rollouts, one goal image each
    out: str = "runs/eval"  # folder for summary.json and videos/
    videos: int = 2  # rollouts written as MP4 (camera | goal, Q trace)
    seed: int = EVAL_SEED_OFFSET  # first env seed; collection seeds stay below 1,000,000
    device: str = "auto"  # auto | cpu | cuda
    # AM and fine-tuned checkpoints: act by CEM on Q ("cem") or with the behaviour prior's mean
    # ("prior_mean", for a checkpoint trained with agent.behaviour_prior). Default: as trained
    act_rule: str | None = None
    # act_rule=model_lookahead (state agents with a value V(s, g): GCIVL, GCIQL, HIQL, QRL):
    # the dynamics model (`goalrl dynamics` output folder) that carries the agent's action and
    # `lookahead_candidates` perturbations of it one step ahead; the one V rates best is taken
    dynamics: str | None = None
    lookahead_candidates: int = 16  # perturbations of the agent's action tried beside it
    # scene options for gym.make, e.g. +env_kwargs.max_episode_steps=100
    # +env_kwargs.skills_per_goal=2 (goals two scripted skills away from the start)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    # results store (JSON Lines): one row per rollout is appended (goalrl compare reads it)
    results: str | None = None
    # benchmark goals (goalrl.benchmark.goals, datasets/README.md): val | test | task1..task5 |
    # random | split/task (e.g. val/task2); `episodes` rollouts of each task then, `seed` is
    # unused, and rollouts last the benchmark's steps (Push 100) unless env_kwargs set them.
    # null: `episodes` goals the scene draws from seeds `seed`, `seed` + 1, ...
    goals: str | None = None


def require_at_least(value: int | None, least: int, field_name: str, command: str) -> None:
    """UserError naming the field when a count is below ``least`` (None: left unset, fine)."""
    from goalrl.errors import UserError

    if value is not None and (isinstance(value, bool) or value < least):
        raise UserError(f"goalrl {command}: {field_name} must be >= {least}, got {value}")


def observation_of(meta: dict[str, Any]) -> str:
    """What a checkpoint's agent reads: "state" for agent.encoder.kind=state, else "image"
    (also for checkpoints older than the field). A fine-tuned agent keeps its encoder under
    ``am`` (task Q) or ``gcbc`` (task behaviour cloning)."""
    agent_cfg = meta.get("agent_config") or {}
    if isinstance(agent_cfg, dict):
        agent_cfg = agent_cfg.get("am") or agent_cfg.get("gcbc") or agent_cfg
    encoder = agent_cfg.get("encoder") if isinstance(agent_cfg, dict) else None
    return encoder.get("kind", "image") if isinstance(encoder, dict) else "image"


LOOKAHEAD_RULE = "model_lookahead"


def lookahead_policy(cfg: EvalConfig, agent: Any, meta: dict[str, Any]) -> Any:
    """The model_lookahead read-out of ``agent`` (goalrl.agents.lookahead), its model loaded
    from ``cfg.dynamics``: a state model for a state agent, or a latent model trained on this
    checkpoint's own embedding; refused, naming the field, when the model or the agent cannot."""
    from goalrl.agents.dynamics import load_dynamics
    from goalrl.agents.lookahead import ActorQValue, LatentSpace, ModelLookahead, StateSpace
    from goalrl.errors import UserError

    if not cfg.dynamics:
        raise UserError("act_rule=model_lookahead needs dynamics=<folder>, a model trained by "
                        "`goalrl dynamics data=<dataset> out=<folder>` (add ckpt=<this "
                        "checkpoint> for one on its own embedding, e.g. for images)")
    require_at_least(cfg.lookahead_candidates, 0, "lookahead_candidates", "eval")
    model, model_meta = load_dynamics(cfg.dynamics)
    latent = model_meta.get("space", "state") == "latent"
    if meta["agent"] == "am" and (latent or agent.cfg.encoder.kind == "state"):
        try:  # AM's value: its Q at its actor's action
            agent = ActorQValue(agent)
        except ValueError as err:
            raise UserError(f"act_rule=model_lookahead: checkpoint {cfg.ckpt}: {err}") from err
    try:
        space = LatentSpace(agent) if latent else StateSpace(agent)
    except ValueError as err:
        raise UserError(f"act_rule=model_lookahead: checkpoint {cfg.ckpt} ({meta['agent']}, "
                        f"{observation_of(meta)} observations): {err}") from err
    if latent and space.digest() != model_meta.get("embedding_digest"):
        raise UserError(f"dynamics={cfg.dynamics}: a latent model of checkpoint "
                        f"{model_meta.get('checkpoint')}'s embedding, not of ckpt={cfg.ckpt}; "
                        f"`goalrl dynamics data=<its dataset> ckpt={cfg.ckpt} out=<folder>` "
                        "trains one for it")
    # a latent model's width is its checkpoint's (the digest matched); a state model's must
    # be the checkpoint's state width
    width = model.state_dim if latent else meta["agent_config"]["encoder"].get("state_dim")
    if (model.state_dim, model.action_dim) != (width, agent.action_dim):
        raise UserError(f"dynamics={cfg.dynamics}: the model maps {model.state_dim} state "
                        f"values and {model.action_dim} action values; checkpoint {cfg.ckpt} "
                        f"reads {width} and {agent.action_dim}")
    return ModelLookahead(agent, model, cfg.lookahead_candidates, seed=cfg.seed, space=space)


def run(cfg: EvalConfig) -> dict[str, Any]:
    from pathlib import Path

    from goalrl.agents.registry import agent_policy, override_act_rule
    from goalrl.distributed import DistInfo, resolve_device
    from goalrl.errors import UserError
    from goalrl.evaluate import evaluate_policy
    from goalrl.reacher import load_checkpoint_agent, scene_for

    require_at_least(cfg.episodes, 1, "episodes", "eval")
    require_at_least(cfg.videos, 0, "videos", "eval")
    require_at_least(cfg.seed, 0, "seed", "eval")
    device = resolve_device(cfg.device, DistInfo())
    agent, meta = load_checkpoint_agent(cfg.ckpt, device)  # damaged files: one CheckpointError
    acting = getattr(agent, "goal_agent", agent).cfg  # the AM config a Q agent acts by
    # the rule asked for, else the one the checkpoint was trained with (None for GCBC)
    rule = cfg.act_rule or getattr(acting, "act_rule", None)
    ogbench = str(cfg.env or meta.get("env_id") or "").startswith("ogbench:")
    policy = agent_policy(agent)
    if rule == LOOKAHEAD_RULE:
        if ogbench:
            raise UserError("act_rule=model_lookahead acts in goalrl's scenes (their state "
                            f"vectors); env={cfg.env or meta.get('env_id')} is OGBench's")
        policy = lookahead_policy(cfg, agent, meta)
    elif cfg.act_rule is not None:
        override_act_rule(agent, rule)
    if ogbench:  # OGBench's 5 tasks
        from goalrl.ogbench.evaluate import run_ogbench_eval

        return run_ogbench_eval(cfg, agent, meta, rule)
    # the same scene rule as `goalrl command`: another scene's checkpoint is refused
    env_id = scene_for(cfg.ckpt, cfg.env, meta)
    goal_set = None
    env_kwargs = dict(cfg.env_kwargs)
    if cfg.goals:  # a bad split, task or scene: one GoalSpecError naming goals=
        from goalrl.benchmark.goals import eval_goals, eval_steps

        goal_set = eval_goals(env_id, cfg.goals, cfg.episodes)
        env_kwargs.setdefault("max_episode_steps", eval_steps(env_id))
    # the folder holds summary.json even when no video is written (the CLI writes the summary
    # only into a folder that exists)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    result = evaluate_policy(
        env_id,
        policy,
        cfg.episodes,
        image_size=meta["image_shape"][0],
        seed_start=cfg.seed,
        videos=cfg.videos,
        video_dir=Path(cfg.out) / "videos",
        env_kwargs=env_kwargs,
        observation=observation_of(meta),
        goals=goal_set,
    )
    if cfg.results:  # method, training seed and dataset come from the checkpoint's meta
        from goalrl.results import append_eval_rows

        readout = None
        if rule == LOOKAHEAD_RULE:
            from goalrl.agents.lookahead import SPREAD

            readout = {"dynamics": str(Path(cfg.dynamics).resolve()),
                       "candidates": cfg.lookahead_candidates, "spread": SPREAD,
                       "space": policy.space.name}
        rows = append_eval_rows(cfg.results, result, meta, act_rule=rule,
                                env_kwargs=env_kwargs, readout=readout)
        result["results"] = {"path": cfg.results, "rows": rows}
    return {
        "checkpoint": meta["path"], "step": meta["step"],
        "act_rule": rule,  # how an AM or task agent acted (None for GCBC: its policy's mean)
        "env_kwargs": env_kwargs, **result,
    }
