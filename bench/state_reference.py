"""A privileged-state reference learner for the pretraining benchmark.

Goal-conditioned behaviour cloning on low-dimensional state instead of images, trained on the
same play data with the same hindsight goals and the same update budget as the image
learners:

    state s_t = [proprio (tcp xyz, opening, yaw), achieved_goal (every object's xyz)]
    goal  g   = [tcp xyz, achieved_goal] of the goal frame: what a goal image pictures

It reads the objects' coordinates that an image learner has to find in pixels, so it tells
whether a result is limited by vision or by the data and the update budget: when even this
learner stays at the floor, more updates (or a GPU) come before any change to the encoder.

`bench/pretrain.py` adds it as a reference row at each profile's budget; alone, for other
budgets (prints one JSON line; evaluation seeds from 1,000,000 up, as `goalrl eval`):

    python bench/state_reference.py --data <play dataset> --steps 5000 --batch-size 256

With ``--out PATH`` the same summary is also written to PATH in the form of a ``goalrl eval``
summary.json (per-rollout rows included), so ``bench/goal_overlap.py`` can pair it with the
image learners on the same goals; ``--eval-seed`` starts the goals elsewhere (as ``goalrl eval
seed=``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from goalrl.agents.gcbc import GCBCConfig
from goalrl.cli import write_json_atomic
from goalrl.data.sampler import (
    episode_ends,
    episode_of,
    sample_hindsight_goals,
    sample_transitions,
)
from goalrl.data.storage import EpisodeDataset


def state_features(ds: EpisodeDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame state (N, P + G) and goal features (N, 3 + G) of a dataset, float32."""
    if ds.proprio_dim is None or ds.goal_dim is None:
        raise ValueError(f"{ds.root}: the state reference needs proprio and achieved_goal")
    proprio = np.asarray(ds.proprio, dtype=np.float32)  # (N, P), tcp xyz first
    achieved = np.asarray(ds.achieved_goal, dtype=np.float32)  # (N, G)
    return np.concatenate([proprio, achieved], 1), np.concatenate([proprio[:, :3], achieved], 1)


def goal_features(env: Any) -> np.ndarray:
    """The goal of a (unwrapped) goalrl env as ``state_features`` builds it: (3 + G,)."""
    return np.concatenate([env.goal_layout.tcp, env.goal]).astype(np.float32)


class StateGCBC(nn.Module):
    """MLP on standardised [state, goal] (B, S + G') -> actions (B, A) in [-1, 1].

    Positions in metres span a few tenths, so the inputs are standardised with the data's
    mean and std: without it the first layer learns several times slower.
    """

    def __init__(self, inputs: np.ndarray, action_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(inputs.mean(0)))
        self.register_buffer("std", torch.from_numpy(inputs.std(0) + 1e-3))
        self.net = nn.Sequential(
            nn.Linear(inputs.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, action_dim), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def train_state_gcbc(
    ds: EpisodeDataset, steps: int, batch_size: int, *, lr: float = GCBCConfig.lr,
    gamma: float = 0.9, seed: int = 0,
) -> nn.Module:
    """An MLP pi(s, g) -> a in [-1, 1], fitted by mean squared error on hindsight goals.

    Squared error is the mean's gradient of the image GCBC's beta-NLL at beta 1 (its default).
    """
    states, goals = state_features(ds)
    actions = torch.from_numpy(np.asarray(ds.actions, dtype=np.float32))  # (N, A)
    starts, lengths = np.asarray(ds.episode_starts), np.asarray(ds.episode_lengths)
    ends = episode_ends(starts, lengths)  # (E,)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = StateGCBC(np.concatenate([states, goals], 1), actions.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        t = sample_transitions(rng, starts, lengths, batch_size)  # (B,)
        end = ends[episode_of(t, starts)]  # (B,) the last frame of each one's episode
        g = sample_hindsight_goals(rng, t, end, "geometric", gamma)  # (B,)
        x = torch.from_numpy(np.concatenate([states[t], goals[g]], 1))  # (B, S + G')
        loss = ((net(x) - actions[t]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def state_policy(net: nn.Module, env: Any):
    """An ``evaluate.Policy`` that reads the (unwrapped) env's state instead of the images."""

    @torch.no_grad()
    def act(obs_image: Any, goal_image: Any, proprio: Any) -> tuple[np.ndarray, None]:
        s = np.concatenate([env.arm.proprio(), env.achieved_goal(), goal_features(env)])
        return net(torch.from_numpy(s.astype(np.float32))[None])[0].numpy(), None

    return act


def evaluate_state_gcbc(
    net: nn.Module, env_id: str, episodes: int, image_size: int = 32,
    seed_start: int | None = None,
) -> dict[str, Any]:
    """Rollouts of ``state_policy`` on the held-out goals of ``goalrl eval``.

    The policy never looks at the images, so their size changes only the render cost.
    """
    import gymnasium as gym

    import goalrl  # noqa: F401  (registers the scenes)
    from goalrl.evaluate import EVAL_SEED_OFFSET, run_rollout, summarize_rollouts

    start = EVAL_SEED_OFFSET if seed_start is None else seed_start
    env = gym.make(env_id, image_size=image_size)
    policy = state_policy(net, env.unwrapped)
    rollouts = [run_rollout(env, policy, start + i) for i in range(episodes)]
    env.close()
    return summarize_rollouts(env_id, rollouts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="a goalrl play dataset with proprio")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=GCBCConfig.lr, help="as image GCBC's default")
    p.add_argument("--episodes", type=int, default=40, help="evaluation episodes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-seed", type=int, default=None,
                   help="first env seed of the goals (default: goalrl eval's, 1,000,000)")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the summary here (a goalrl eval summary.json, for "
                        "bench/goal_overlap.py)")
    args = p.parse_args()
    torch.set_num_threads(1)
    with EpisodeDataset(args.data) as ds:
        env_id = ds.meta["env_id"]
        net = train_state_gcbc(ds, args.steps, args.batch_size, lr=args.lr, seed=args.seed)
    result = evaluate_state_gcbc(net, env_id, args.episodes, seed_start=args.eval_seed)
    summary = {**vars(args), "out": None if args.out is None else str(args.out), **result}
    if args.out is not None:
        write_json_atomic(args.out, summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
