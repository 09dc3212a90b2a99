"""Does a checkpoint's policy do better acting with its Polyak-averaged target weights?

A diagnostic behind ``agent.act_with_target`` (fine-tuning) and the note on it for
pretraining. Every Q checkpoint stores the target network it trained against. This loads
each given checkpoint, puts the target weights (and a task agent's z_task target copy) in
place of the latest ones, and evaluates the greedy policy on held-out goals, as ``goalrl
eval`` does. Compare the result with the checkpoint's own evaluation.

    python bench/eval_target_weights.py --ckpt <step dir> [<step dir> ...] --episodes 30

One JSON line per checkpoint: its step, success rate with the target weights and 95% interval.
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
from goalrl.train import agent_policy, load_agent


@torch.no_grad()
def use_target_weights(agent: Any) -> None:
    """Copy the target network (and z_task's target, for a task agent) over the online one and
    over the weight average an AM agent acts with."""
    agent.q.load_state_dict(agent.q_target.state_dict())
    if getattr(agent, "q_ema", None) is not None:
        agent.q_ema.load_state_dict(agent.q_target.state_dict())
    if hasattr(agent, "z_target"):
        agent.z.copy_(agent.z_target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", nargs="+", required=True, help="checkpoints (run or step dirs)")
    ap.add_argument("--episodes", type=int, default=30, help="evaluation episodes each")
    ap.add_argument("--seed", type=int, default=EVAL_SEED_OFFSET, help="first env seed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for ckpt in args.ckpt:
        agent, meta = load_agent(ckpt, torch.device("cpu"))
        use_target_weights(agent)
        result = evaluate_policy(meta["env_id"], agent_policy(agent), args.episodes,
                                 image_size=meta["image_shape"][0], seed_start=args.seed,
                                 progress=False)
        print(json.dumps({"checkpoint": meta["path"], "step": meta["step"],
                          "target_success": result["success_rate"], "ci95": result["ci95"]}),
              flush=True)


if __name__ == "__main__":
    main()
