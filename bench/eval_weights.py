"""Which weights should a checkpoint's policy act with? Evaluate it with others than its own.

A diagnostic behind ``agent.act_with_target`` (fine-tuning) and ``agent.ema_tau`` (pretraining).
Each mode puts other weights in the place the agent acts from, then evaluates the greedy policy
on held-out goals as ``goalrl eval`` does:

    own      the weights the checkpoint acts with in ``goalrl eval`` (its weight average if kept)
    latest   the online weights of the checkpoint, ignoring any weight average it keeps
    target   its Polyak-averaged target network (and a task agent's z_task target copy)
    average  the uniform average of the online weights of all the given checkpoints
             (stochastic weight averaging over a run's saved steps), evaluated once

    python bench/eval_weights.py target --ckpt <step dir> [<step dir> ...] --episodes 30
    python bench/eval_weights.py average --ckpt <run>/checkpoints/step_00{25..30}{000,500} ...
    python bench/eval_weights.py latest --ckpt <step dir> --cem 6,512,32   # a wider CEM search
    python bench/eval_weights.py own --ckpt <step dir> --act prior_mean    # the prior's mean

``--act`` overrides how an AM (or task) checkpoint acts (``agent.act_rule``): ``cem`` maximises
Q, ``prior_mean`` takes the mean of its behaviour prior (``agent.behaviour_prior``) without a
search, so one checkpoint shows what the Q-function's search adds over the prior.

One JSON line per evaluation: mode, step(s), success rate and 95% interval, median distance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from goalrl.evaluate import EVAL_SEED_OFFSET, evaluate_policy
from goalrl.train import agent_policy, load_agent, override_act_rule


def online_net(agent: Any) -> torch.nn.Module:
    """The network an agent trains: AM's and a task agent's ``q``, GCBC's ``policy``."""
    return agent.policy if hasattr(agent, "policy") else agent.q


@torch.no_grad()
def act_with(agent: Any, state: dict[str, torch.Tensor]) -> None:
    """Make ``agent`` act with the network weights ``state``: loaded into the online network,
    and any weight average the agent keeps for acting is dropped."""
    online_net(agent).load_state_dict(state)
    for average in ("q_ema", "policy_ema"):
        if getattr(agent, average, None) is not None:
            setattr(agent, average, None)


@torch.no_grad()
def use_target_weights(agent: Any) -> None:
    """Act with the target network (and z_task's target, for a task agent)."""
    act_with(agent, agent.q_target.state_dict())
    if hasattr(agent, "z_target"):
        agent.z.copy_(agent.z_target)


@torch.no_grad()
def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform average of network state dicts (floating tensors; others from the last one)."""
    if not states:
        raise ValueError("average_state needs at least one state dict")
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = (sum(s[key].double() for s in states) / len(states)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def set_act_cem(agent: Any, spec: str) -> None:
    """``"iterations,samples,elites"`` for acting (AM and task agents)."""
    try:
        iterations, samples, elites = (int(x) for x in spec.split(","))
    except ValueError as err:
        raise SystemExit(f"--cem {spec!r}: expected three integers, e.g. 6,512,32") from err
    cfg = agent.goal_agent.cfg if hasattr(agent, "goal_agent") else agent.cfg
    cfg.act_cem_iterations, cfg.act_cem_samples, cfg.act_cem_elites = iterations, samples, elites


def evaluate(agent: Any, meta: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if args.cem:
        set_act_cem(agent, args.cem)
    if args.act:
        override_act_rule(agent, args.act)
    result = evaluate_policy(meta["env_id"], agent_policy(agent), args.episodes,
                             image_size=meta["image_shape"][0], seed_start=args.seed,
                             progress=False)
    return {"mode": args.mode, "success": result["success_rate"], "ci95": result["ci95"],
            "median_final_distance": result["median_final_distance"],
            "episodes": args.episodes, "cem": args.cem, "act": args.act or "as trained"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["own", "latest", "target", "average"])
    ap.add_argument("--ckpt", nargs="+", required=True, help="checkpoints (run or step dirs)")
    ap.add_argument("--episodes", type=int, default=30, help="evaluation episodes each")
    ap.add_argument("--seed", type=int, default=EVAL_SEED_OFFSET, help="first env seed")
    ap.add_argument("--cem", default="", help="acting CEM as iterations,samples,elites")
    ap.add_argument("--act", choices=["cem", "prior_mean"], default="",
                    help="act by CEM on Q or with the behaviour prior's mean (agent.act_rule); "
                    "default: as the checkpoint says")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    if args.mode == "average":
        loaded = [load_agent(c, cpu) for c in args.ckpt]
        agent, meta = loaded[-1]
        act_with(agent, average_state([online_net(a).state_dict() for a, _ in loaded]))
        row = {"checkpoints": [m["path"] for _, m in loaded],
               "steps": [m["step"] for _, m in loaded], **evaluate(agent, meta, args)}
        print(json.dumps(row), flush=True)
        return
    for ckpt in args.ckpt:
        agent, meta = load_agent(ckpt, cpu)
        if args.mode == "target":
            use_target_weights(agent)
        elif args.mode == "latest":
            act_with(agent, online_net(agent).state_dict())
        row = {"checkpoint": meta["path"], "step": meta["step"], **evaluate(agent, meta, args)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
