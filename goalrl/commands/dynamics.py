"""``goalrl dynamics``: train the one-step model that act_rule=model_lookahead acts through.

``goalrl dynamics data=datasets/push-noisy-state out=runs/push-noisy-dynamics`` fits an
ensemble of MLPs to the dataset's (state, action, next state) transitions (goalrl.agents.
dynamics; no goals, no rewards) and writes the model folder. ``goalrl eval ckpt=<a state
GCIVL/GCIQL/HIQL/QRL checkpoint> act_rule=model_lookahead dynamics=runs/push-noisy-dynamics``
then acts on the checkpoint's value through it. A few thousand updates take about a minute
on one core.

With ``ckpt=<a GCIVL/GCIQL/HIQL checkpoint, or AM with agent.actor=true>`` the model predicts
that checkpoint's own frame embedding instead of the state (a latent model; images or
states, as the checkpoint reads them): the lookahead for image agents. It serves only that
checkpoint; ``data=`` must hold the frames the checkpoint reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DynamicsCommandConfig:
    data: str = "???"  # dataset folder recorded with the `state` field
    out: str = "???"  # model folder to write (replaced whole when it exists)
    steps: int = 3000  # updates; 10,000 or 20,000 did no better on stitch validation goals
    batch_size: int = 256  # transitions per member per update
    members: int = 5  # ensemble members (the lookahead averages their predictions' values)
    hidden: int = 256  # width of each member's two hidden layers
    seed: int = 0  # initial weights, minibatches and which transitions are held out
    threads: int = 1  # torch CPU threads
    holdout: int = 2000  # transitions kept out of training to report the model's error
    ckpt: str | None = None  # a value checkpoint: model its frame embedding, not the state


def run(cfg: DynamicsCommandConfig) -> dict[str, Any]:
    import numpy as np
    import torch

    from goalrl.agents.dynamics import (
        DynamicsConfig,
        embedded_transitions,
        save_dynamics,
        train_dynamics,
        transitions,
    )
    from goalrl.commands.evaluate import require_at_least
    from goalrl.data.storage.reader import EpisodeDataset
    from goalrl.errors import UserError

    for name in ("steps", "batch_size", "members", "hidden"):
        require_at_least(getattr(cfg, name), 1, name, "dynamics")
    require_at_least(cfg.holdout, 0, "holdout", "dynamics")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dataset = EpisodeDataset(cfg.data, verify_images=False)
    space, latent = None, {}
    if cfg.ckpt:
        space, latent = latent_space(cfg.ckpt, dataset)
    try:
        states, actions, nexts = (transitions(dataset) if space is None
                                  else embedded_transitions(space, dataset))
    except ValueError as err:
        raise UserError(f"data={cfg.data}: {err}") from err
    if len(states) <= cfg.holdout:
        raise UserError(f"data={cfg.data}: {len(states)} transitions, not more than "
                        f"holdout={cfg.holdout}")
    order = np.random.default_rng(cfg.seed).permutation(len(states))
    held, train = order[:cfg.holdout], order[cfg.holdout:]
    model = train_dynamics(states[train], actions[train], nexts[train],
                           DynamicsConfig(members=cfg.members, hidden=cfg.hidden),
                           steps=cfg.steps, batch=cfg.batch_size, seed=cfg.seed)
    report = {"transitions": int(len(train))}
    if cfg.holdout:  # mean absolute error (m, or embedding units) of the members' mean,
        # against "nothing moves"
        with torch.no_grad():
            pred = model.predict(torch.as_tensor(states[held]), torch.as_tensor(actions[held]))
        moved = np.abs(nexts[held] - states[held])  # (H, S)
        report["holdout_error"] = float(np.abs(pred.mean(0).numpy() - nexts[held]).mean())
        report["holdout_error_if_still"] = float(moved.mean())
    meta = {"dataset": str(dataset.root.resolve()), "dataset_fingerprint": dataset.fingerprint(),
            "steps": cfg.steps, "batch_size": cfg.batch_size, "seed": cfg.seed,
            "space": "latent" if space else "state", **latent, **report}
    folder = save_dynamics(model, cfg.out, meta)
    return {"out": str(folder), **report}


def latent_space(ckpt: str, dataset: Any) -> tuple[Any, dict[str, Any]]:
    """(LatentSpace of the checkpoint's value network, what the model's meta records of it);
    a UserError naming the field when the checkpoint has no such network or reads frames the
    dataset lacks."""
    import torch

    from goalrl.agents.lookahead import ActorQValue, LatentSpace
    from goalrl.errors import UserError
    from goalrl.reacher import load_checkpoint_agent

    agent, meta = load_checkpoint_agent(ckpt, torch.device("cpu"))
    try:
        space = LatentSpace(ActorQValue(agent) if meta["agent"] == "am" else agent)
    except ValueError as err:
        raise UserError(f"ckpt={ckpt}: {err}") from err
    if space.kind == "image" and tuple(dataset.image_shape) != tuple(meta["image_shape"]):
        raise UserError(f"data={dataset.root}: images of {tuple(dataset.image_shape)}; "
                        f"ckpt={ckpt} reads {tuple(meta['image_shape'])}")
    width = (meta["agent_config"].get("encoder") or {}).get("state_dim")
    if space.kind == "state" and dataset.state_dim != width:
        raise UserError(f"data={dataset.root}: states of {dataset.state_dim} values; "
                        f"ckpt={ckpt} reads {width}")
    return space, {"checkpoint": str(meta["path"]), "checkpoint_step": meta["step"],
                   "agent": meta["agent"], "observation": space.kind,
                   "embedding_digest": space.digest()}
