"""Can a pretrained goal-conditioned Q do the grasp task without a goal image of this scene?

A diagnostic for the fine-tuning benchmark. ``goalrl finetune`` replaces the goal embedding
with one task vector, initialised from the goal embeddings of the labeled data's success
frames. This probe rolls out the *pretrained* checkpoint's CEM policy on ``--env`` with four
goal embeddings, no fine-tuning at all:

    goal image      the env's own goal image of this episode (what pretraining is scored on)
    mean            z = mean of encode_goal(success frames): fine-tuning's initial task vector
    regressed       z = MLP(encode_obs(o)), fitted to map every frame of a successful labeled
                    episode to the embedding of its final frame (a goal proposal from 1 view)
    best success    every success frame's z is scored, and each step acts toward the one
                    whose greedy Q is highest (the task as "reach any of these states")
    this frame      z = encode_goal(o) + the mean (success frame - first frame) difference
      + shift       of the labeled episodes: "this scene, done", if the embedding adds up

    python bench/task_goal_probe.py --ckpt <pretrain run> --data <labeled grasp data>

If only "goal image" succeeds, the pretrained Q reaches goals of the scene it sees but does
not transfer to success frames of other scenes, and a single task vector starts from nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from goalrl.agents.base import to_tensor
from goalrl.data.storage import EpisodeDataset
from goalrl.evaluate import evaluate_policy
from goalrl.finetune import success_frame_indices
from goalrl.train import agent_policy, load_agent


def success_episode_frames(ds: EpisodeDataset) -> tuple[np.ndarray, np.ndarray]:
    """(frames (M,), their episode's final success frame (M,)) over the successful episodes."""
    finals = success_frame_indices(ds)  # (S,)
    starts = ds.episode_starts[ds.episode_of(finals)]  # (S,)
    frames = [np.arange(s, f + 1) for s, f in zip(starts, finals, strict=True)]
    owner = [np.full(f - s + 1, f) for s, f in zip(starts, finals, strict=True)]
    if not frames:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(frames), np.concatenate(owner)


def fit_goal_regressor(
    h: torch.Tensor, z: torch.Tensor, steps: int = 2000, seed: int = 0
) -> torch.nn.Module:
    """MLP h (M, Dh) -> z (M, D) in (-1, 1) by squared error (Adam, batches of 128)."""
    torch.manual_seed(seed)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(h.shape[1], 256), torch.nn.ReLU(),
        torch.nn.Linear(256, z.shape[1]), torch.nn.Tanh(),
    )
    opt = torch.optim.Adam(mlp.parameters(), 1e-3)
    for _ in range(steps):
        idx = torch.randint(len(h), (min(128, len(h)),))
        loss = (mlp(h[idx]) - z[idx]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mlp.requires_grad_(False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True, help="pretrained AM checkpoint (run or step dir)")
    ap.add_argument("--data", required=True, help="reward-labeled dataset (goalrl format)")
    ap.add_argument("--env", default="goalrl/Grasp-v0")
    ap.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args()

    agent, _ = load_agent(args.ckpt)
    q = agent.q
    ds = EpisodeDataset(args.data)
    frames, finals = success_episode_frames(ds)
    if len(frames) == 0:
        raise SystemExit(f"{args.data}: no successful episode to take success frames from")
    prop = (lambda idx: None) if agent.proprio_dim is None else (
        lambda idx: torch.as_tensor(ds.proprio[idx]).float())

    def encode_obs(images: np.ndarray, proprio: torch.Tensor | None) -> torch.Tensor:
        return q.encode_obs(to_tensor(images, agent.device), proprio)  # (B, Dh)

    with torch.no_grad():
        final_ids, inverse = np.unique(finals, return_inverse=True)
        z_success = q.encode_goal(to_tensor(ds.images(final_ids), agent.device)).float()  # (S, D)
        h = torch.cat([encode_obs(ds.images(frames[i:i + 256]), prop(frames[i:i + 256]))
                       for i in range(0, len(frames), 256)])  # (M, Dh)
        # (D,) mean step from an episode's first frame to its success frame, in goal space
        starts = ds.episode_starts[ds.episode_of(final_ids)]  # (S,)
        z_first = q.encode_goal(to_tensor(ds.images(starts), agent.device)).float()  # (S, D)
        shift = (z_success - z_first).mean(0, keepdim=True)  # (1, D)
    regressor = fit_goal_regressor(h, z_success[inverse])

    def policy_toward(z_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        """CEM toward the best of z_of(h_o (1, Dh), o (1, H, W, 3)) -> goal embeddings (G, D)."""
        def policy(obs_image: np.ndarray, goal_image: np.ndarray, proprio: np.ndarray):
            with torch.no_grad():
                p = None if agent.proprio_dim is None else torch.as_tensor(proprio[None]).float()
                o = to_tensor(obs_image[None], agent.device)  # (1, H, W, 3)
                h_o = encode_obs(obs_image[None], p)  # (1, Dh)
                z = z_of(h_o, o)  # (G, D)
                e = q.fuse(h_o.expand(len(z), -1), z)  # (G, F)
                actions, qs = agent.act_on_embedding(e, False, return_q=True)
            best = int(np.argmax(qs))
            return actions[best], float(qs[best])
        return policy

    policies = {
        "goal image": agent_policy(agent),
        "mean": policy_toward(lambda h_o, o: z_success.mean(0, keepdim=True)),
        "regressed": policy_toward(lambda h_o, o: regressor(h_o)),
        "best success": policy_toward(lambda h_o, o: z_success),
        "this frame + shift": policy_toward(
            lambda h_o, o: (q.encode_goal(o).float() + shift).clamp(-1, 1)),
    }
    results = {}
    for name, policy in policies.items():
        r = evaluate_policy(args.env, policy, args.episodes, progress=False)
        results[name] = {"success_rate": r["success_rate"], "ci95": r["ci95"],
                         "mean_final_distance": r["mean_final_distance"]}
    print(f"{len(final_ids)} successful labeled episodes, {len(frames)} frames; "
          f"{args.episodes} episodes of {args.env} per row\n")
    print("| goal embedding | success | 95% interval | final distance |\n|---|---:|---:|---:|")
    for name, r in results.items():
        lo, hi = r["ci95"]
        print(f"| {name} | {100 * r['success_rate']:.0f}% | {100 * lo:.0f}–{100 * hi:.0f}% "
              f"| {r['mean_final_distance']:.3f} m |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
