"""What an agent feeds its encoder: camera frames or low-dim states, read from a batch or given
to ``act``; one place that knows both kinds (``EncoderConfig.kind``).

Batches carry the same frames under an image key or a state key (goalrl.data.keys): o_t, o_{t+1},
the goal, the actor's goal, the subgoal. Images get the DrQ random shift, one shift per sample
shared by all of a sample's frames (a shared shift keeps obs and goal comparable: a reached goal
still looks like the observation); states are used as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from goalrl.agents.augment import sample_shifts, shift_images
from goalrl.agents.base import batch_images, to_tensor
from goalrl.data import keys as K

# frame name -> batch key, per observation kind
FRAME_KEYS: dict[str, dict[str, str]] = {
    "image": {"obs": K.OBS_IMAGE, "next_obs": K.NEXT_OBS_IMAGE, "goal": K.GOAL_IMAGE,
              "actor_goal": K.ACTOR_GOAL_IMAGE, "subgoal": K.SUBGOAL_IMAGE},
    "state": {"obs": K.OBS_STATE, "next_obs": K.NEXT_OBS_STATE, "goal": K.GOAL_STATE,
              "actor_goal": K.ACTOR_GOAL_STATE, "subgoal": K.SUBGOAL_STATE},
}


def batch_frames(
    batch: Mapping[str, Any],
    kind: str,
    names: Sequence[str],
    device: torch.device,
    *,
    generator: torch.Generator | None = None,
    pad: int = 0,
) -> dict[str, torch.Tensor]:
    """The frames ``names`` (e.g. "obs", "goal") of ``batch`` as tensors on ``device``.

    Images: (B, H, W, 3) uint8, shifted (one shift per sample for all of them) when ``pad`` > 0
    and a generator is given. States: (B, S) float32. "actor_goal" falls back to the goal when
    the batch has no separate actor goal (a sampler without goal mixtures).
    """
    where = FRAME_KEYS[kind]
    frames = {}
    for name in names:
        key = where[name]
        if name == "actor_goal" and key not in batch:
            key = where["goal"]
        if key not in batch:
            raise KeyError(f"batch has no {key!r}: the agent's encoder.kind is {kind!r}; sample "
                           f"with observation={kind!r}")
        frames[name] = to_tensor(batch[key], device)
    if kind == "state":
        return {name: x.float() for name, x in frames.items()}  # (B, S) each
    if pad > 0 and generator is not None:
        first = next(iter(frames.values()))
        shifts = sample_shifts(first.shape[0], pad, generator, device)  # (B, 2)
        frames = {n: shift_images(x, shifts, pad, channels_last=True) for n, x in frames.items()}
    return frames


@torch.no_grad()
def mean_goal_embedding(
    net: torch.nn.Module, images: Any, device: torch.device, chunk: int = 256
) -> torch.Tensor:
    """Mean of ``net.encode_goal`` over frames (M, H, W, 3) or states (M, S), in chunks: z (D,)
    (a task embedding's start: goalrl.agents.task_q)."""
    if len(images) == 0:
        raise ValueError("no success frames to initialise the task embedding from")
    total = None
    for i in range(0, len(images), chunk):
        x = to_tensor(images[i : i + chunk], device)  # (m, H, W, 3) or (m, S)
        part = net.encode_goal(x).float().sum(dim=0)  # (D,)
        total = part if total is None else total + part
    return total / len(images)


def goal_reached(batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
    """(B,) bool: o_t is the value goal itself (its index is the frame's)."""
    return to_tensor(batch[K.FRAME_INDEX], device) == to_tensor(batch[K.GOAL_INDEX], device)


def act_observations(obs: Any, kind: str, device: torch.device) -> tuple[torch.Tensor, bool]:
    """The observation of an ``act`` that reads no goal (a task agent): images (B, H, W, 3) as
    ``base.batch_images``, states (B, S) float32; an unbatched one gets a batch axis."""
    if kind == "image":
        x, _, single = batch_images(obs, None, device)
        return x, single
    x = to_tensor(obs, device).float()
    single = x.ndim == 1
    return (x[None] if single else x), single  # (B, S)


def act_frames(
    obs: Any, goal: Any, kind: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Inputs of ``act``: obs and goal as (B, ...) tensors and whether the call was unbatched.

    Images as ``base.batch_images``; states (B, S) or one (S,), a single goal broadcast."""
    if kind == "image":
        return batch_images(obs, goal, device)
    obs_t = to_tensor(obs, device).float()
    single = obs_t.ndim == 1
    obs_t = obs_t[None] if single else obs_t  # (B, S)
    goal_t = to_tensor(goal, device).float()
    goal_t = goal_t[None].expand(obs_t.shape[0], -1) if goal_t.ndim == 1 else goal_t  # (B, S)
    return obs_t, goal_t, single


def observation_kind(encoder: Any, dataset: Any) -> str:
    """What a run's agent reads from ``dataset``: "image" or "state". For state, fills in
    ``encoder.state_dim`` (the width of its state vectors, goalrl.envs.state) when None, and
    refuses a given one that does not match, naming the field."""
    from goalrl.agents.config import AgentConfigError

    if encoder.kind != "state":
        return "image"
    from goalrl.envs.state import state_width

    width = state_width(dataset)
    if width == 0:
        raise AgentConfigError(f"agent.encoder.kind=state: dataset {dataset.root} records no "
                               "state (neither proprio nor achieved_goal)")
    if encoder.state_dim is None:
        encoder.state_dim = width
    elif encoder.state_dim != width:
        raise AgentConfigError(f"agent.encoder.state_dim={encoder.state_dim}: dataset "
                               f"{dataset.root} has {width}-d states")
    return "state"
