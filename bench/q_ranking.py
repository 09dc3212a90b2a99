"""Which actions does a pretrained goal-conditioned checkpoint prefer where the object moved?

A diagnostic for the pretraining benchmark, read with privileged state from the play data.
It draws transitions (o_t, a_t) with a hindsight goal g = o_{t+k}, 5 <= k < 30, from the
same episode, keeping only those where some object moved at least 4 cm between t and t+k:
goals that cannot be reached by moving the arm alone. For each it compares

    data      the logged action a_t (the play policy on its way to move the object)
    arm copy  a straight move of the tcp toward the goal frame's tcp (gripper as logged):
              what a policy that matches only the pictured arm would do
    random    uniform in the action box

and prints, for an AM checkpoint, mean Q of each and how often Q(data) beats the others;
for any checkpoint (AM or GCBC), the cosine in xy between its greedy action and the data
and arm-copy actions. On Push, a Q-function that ranks the arm copy above the data action
gives a policy that goes to the pictured arm and leaves the object where it was.

    python bench/q_ranking.py --ckpt <run>/checkpoints/step_0005000 --data <play dataset>

Assumes the goalrl scenes' action layout: a[:3] is a tcp displacement in units of the env's
default ``max_step``, a[3] the gripper; proprio[:3] is the tcp position.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from goalrl.data.storage import EpisodeDataset
from goalrl.envs.goal_env import TabletopGoalEnv
from goalrl.train import load_agent

# metres per unit action: the scenes' default, read from the env so the two cannot drift apart
MAX_STEP = inspect.signature(TabletopGoalEnv).parameters["max_step"].default


def object_moving_pairs(
    ds: EpisodeDataset, count: int, seed: int, min_move: float = 0.04
) -> tuple[np.ndarray, np.ndarray]:
    """(t, g) frame indices (count,) each: same episode, 5 <= g - t < 30, an object moved."""
    rng = np.random.default_rng(seed)
    achieved = np.asarray(ds.achieved_goal)  # (N, 3 * objects)
    episode = ds.episode_of(np.arange(ds.num_frames))  # (N,)
    moved = lambda t, g: np.abs(achieved[g] - achieved[t]).reshape(-1, 3)[:, :2]  # noqa: E731
    pairs: list[tuple[int, int]] = []
    for _ in range(200 * count):
        t = int(rng.integers(ds.num_frames))
        g = t + int(rng.integers(5, 30))
        if g < ds.num_frames and episode[g] == episode[t]:
            if np.linalg.norm(moved(t, g), axis=1).max() >= min_move:
                pairs.append((t, g))
                if len(pairs) == count:
                    break
    if len(pairs) < count:
        raise SystemExit(f"{ds.root}: only {len(pairs)} object-moving pairs found, wanted {count}")
    t, g = (np.array(x) for x in zip(*pairs, strict=True))
    return t, g


def toward(delta: np.ndarray, grip: np.ndarray) -> np.ndarray:
    """Actions (B, 4): a tcp move along delta (B, 3) metres, at most one unit per axis."""
    d = delta / MAX_STEP
    d = d / np.maximum(1.0, np.abs(d).max(axis=1, keepdims=True))
    return np.concatenate([d, grip[:, None]], axis=1).astype(np.float32)


def xy_cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosine between the xy parts of actions (B, A) and (B, A) -> (B,)."""
    num = (x[:, :2] * y[:, :2]).sum(1)
    return num / (np.linalg.norm(x[:, :2], axis=1) * np.linalg.norm(y[:, :2], axis=1) + 1e-8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ckpt", required=True, help="checkpoint folder (AM or GCBC)")
    p.add_argument("--data", required=True, help="play dataset with proprio and achieved_goal")
    p.add_argument("--count", type=int, default=256)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    agent = load_agent(args.ckpt)[0]
    ds = EpisodeDataset(args.data)
    if ds.proprio_dim is None or ds.goal_dim is None:
        raise SystemExit(f"{ds.root}: needs proprio and achieved_goal fields")
    t, g = object_moving_pairs(ds, args.count, args.seed)
    proprio, actions = np.asarray(ds.proprio), np.asarray(ds.actions)
    obs, goal = ds.images(t), ds.images(g)
    data = actions[t].astype(np.float32)  # (B, A)
    copy = toward(proprio[g, :3] - proprio[t, :3], data[:, 3])  # (B, A)
    greedy = np.asarray(agent.act(obs, goal))  # (B, A)
    out = {
        "ckpt": args.ckpt,
        "pairs": len(t),
        "greedy_xy_cos_to_data": float(xy_cosine(greedy, data).mean()),
        "greedy_xy_cos_to_arm_copy": float(xy_cosine(greedy, copy).mean()),
        "data_xy_cos_to_arm_copy": float(xy_cosine(data, copy).mean()),
    }
    if hasattr(agent, "q_values"):
        rand = np.random.default_rng(args.seed).uniform(-1, 1, data.shape).astype(np.float32)
        q = agent.q_values(obs, goal, np.stack([data, copy, rand], axis=1))  # (B, 3)
        out |= {
            "mean_q": dict(zip(["data", "arm_copy", "random"], q.mean(0).round(4).tolist(),
                               strict=True)),
            "frac_q_data_above_arm_copy": float((q[:, 0] > q[:, 1]).mean()),
            "frac_q_data_above_random": float((q[:, 0] > q[:, 2]).mean()),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
