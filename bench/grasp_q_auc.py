"""Does a fine-tuned task Q tell a grasp that will hold from one that will not?

A diagnostic for the fine-tuning benchmark. Each labeled grasp attempt closes its gripper
once; whether the object is then lifted is decided by where the fingers are at that frame.
This scores Q(o_t, a_t) of a task checkpoint at the closing frame of every episode of a
labeled dataset (use one the checkpoint was *not* trained on) and reports the AUC between
episodes that ended lifted and episodes that did not: 0.5 is chance, 1.0 a perfect ranking.

    python bench/grasp_q_auc.py --ckpt <finetune run> --data <held-out labeled grasp data>

An AUC near its training-set value on held-out scenes means the Q sees grasp quality; an AUC
near 0.5 means it memorised its scenes and its greedy policy cannot pick a good grasp.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from goalrl.data.episode_goals import GoalImageRenderer
from goalrl.data.storage import EpisodeDataset
from goalrl.data.task import task_success
from goalrl.train import load_agent

GRIP = 3  # action index of the gripper command: -1 open, +1 closed


def closing_frames(
    actions: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Frame index of each episode's first closing command (-1 if it never closes): (E,).

    ``actions`` (N, A) frame-aligned (an episode's last frame has no action), episodes tile
    [0, N) as ``starts`` (E,) and ``lengths`` (E,).
    """
    out = np.full(len(starts), -1, dtype=np.int64)
    for e, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        closed = np.flatnonzero(actions[s : s + n - 1, GRIP] > 0)
        if len(closed):
            out[e] = s + closed[0]
    return out


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a random positive > a random negative), ties counted half (Mann-Whitney)."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True, help="fine-tuned task checkpoint (run or step dir)")
    ap.add_argument("--data", required=True, help="labeled grasp dataset (goalrl format)")
    args = ap.parse_args()

    agent, _ = load_agent(args.ckpt)
    ds = EpisodeDataset(args.data)
    actions = np.asarray(ds.actions)
    starts, lengths = np.asarray(ds.episode_starts), np.asarray(ds.episode_lengths)
    frames = closing_frames(actions, starts, lengths)
    success = task_success(ds)[ds.episode_ends]  # (E,) the episode ends with the object up
    keep = frames >= 0
    frames, success = frames[keep], success[keep]
    prop = None if agent.proprio_dim is None else np.asarray(ds.proprio[frames])
    goals = None  # (M, H, W, 3): each attempt's goal image, for goal-image task checkpoints
    if getattr(agent, "uses_goal_image", False):
        with GoalImageRenderer(ds.meta["env_id"], ds.image_shape[0]) as renderer:
            goals = renderer.goal_images(ds)[keep]
    q = np.asarray(agent.q_values(ds.images(frames), goals, actions[frames], prop))  # (M,)
    result = {
        "episodes": int(len(frames)), "lifted": int(success.sum()),
        "q_lifted": float(q[success].mean()), "q_dropped": float(q[~success].mean()),
        "auc": auc(q[success], q[~success]),
    }
    print(f"{result['episodes']} grasp attempts, {result['lifted']} lifted; Q at the closing "
          f"frame: lifted {result['q_lifted']:.3f}, not lifted {result['q_dropped']:.3f}; "
          f"AUC {result['auc']:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
