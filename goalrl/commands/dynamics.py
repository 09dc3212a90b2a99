"""``goalrl dynamics``: train the one-step model that act_rule=model_lookahead acts through.

``goalrl dynamics data=datasets/push-noisy-state out=runs/push-noisy-dynamics`` fits an
ensemble of MLPs to the dataset's (state, action, next state) transitions (goalrl.agents.
dynamics; no goals, no rewards) and writes the model folder. ``goalrl eval ckpt=<a state
GCIVL/GCIQL/HIQL/QRL checkpoint> act_rule=model_lookahead dynamics=runs/push-noisy-dynamics``
then acts on the checkpoint's value through it. A few thousand updates take about a minute
on one core.
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


def run(cfg: DynamicsCommandConfig) -> dict[str, Any]:
    import numpy as np
    import torch

    from goalrl.agents.dynamics import (
        DynamicsConfig,
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
    try:
        states, actions, nexts = transitions(dataset)
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
    if cfg.holdout:  # mean absolute error (m) of the members' mean, against "nothing moves"
        with torch.no_grad():
            pred = model.predict(torch.as_tensor(states[held]), torch.as_tensor(actions[held]))
        moved = np.abs(nexts[held] - states[held])  # (H, S)
        report["holdout_error"] = float(np.abs(pred.mean(0).numpy() - nexts[held]).mean())
        report["holdout_error_if_still"] = float(moved.mean())
    meta = {"dataset": str(dataset.root.resolve()), "dataset_fingerprint": dataset.fingerprint(),
            "steps": cfg.steps, "batch_size": cfg.batch_size, "seed": cfg.seed, **report}
    folder = save_dynamics(model, cfg.out, meta)
    return {"out": str(folder), **report}
