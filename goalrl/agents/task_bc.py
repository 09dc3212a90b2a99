"""Behaviour cloning of a task from its successful labeled episodes: pi(a | o; z_task).

The fine-tuning baseline that uses no value at all: the GCBC policy network (the same encoder,
fusion and Gaussian head as ``gcbc.py``) with the goal embedding swapped for one learned task
vector z_task (D,), as the task Q does (goalrl.agents.task_q), trained by the beta-NLL of the
actions of the successful labeled episodes (goalrl.data.task, ``successful_only``: the
sampler draws nothing else). No goal image is read at training or test time: the task is
given by which episodes its reward calls successful. It acts with the Gaussian's mean. With a
state encoder (``gcbc.encoder.kind=state``) o is the state vector, not the camera image.

From a GCBC checkpoint (or the policy of a value agent with the same network) every weight
carries over and z_task starts from the mean goal embedding of the successful final frames,
so before any update it reads "reach a state like those"; from scratch z_task starts at 0.

The agent composes a ``GCBCAgent`` (network, generator) with its weight average off: z_task
and the policy move together, so both act as the last update left them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from goalrl.agents.base import (
    AgentBase,
    UpdateStats,
    add_exploration,
    autocast_context,
    make_adamw,
    to_tensor,
)
from goalrl.agents.config import config_from_dict
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig
from goalrl.agents.losses import gaussian_nll
from goalrl.agents.observations import act_observations, batch_frames, mean_goal_embedding
from goalrl.data import keys as K


@dataclass
class TaskBCConfig:
    """Hyper-parameters of task behaviour cloning (network shape and NLL settings: ``gcbc``)."""

    lr: float = 3e-4  # Adam learning rate of the policy network (encoder included)
    z_lr: float = 1e-3  # Adam learning rate of the task embedding z_task
    max_grad_norm: float = 0.0  # clip the global gradient norm (0 = no clipping)
    # network shape, augmentation, log-std bounds and the NLL's beta; with init=<ckpt> the
    # shape comes from the checkpoint
    gcbc: GCBCConfig = field(default_factory=GCBCConfig)

    @property
    def encoder(self) -> Any:
        """The network's encoder config (AgentBase reads ``cfg.encoder``)."""
        return self.gcbc.encoder

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "agent") -> TaskBCConfig:
        """Rebuild from ``asdict`` output (checkpoint metadata); unknown keys are ignored."""
        gcbc = GCBCConfig.from_dict(values.get("gcbc") or {}, where=f"{where}.gcbc")
        return config_from_dict(cls, values, where=where, nested={"gcbc": gcbc})


class TaskBCAgent(AgentBase):
    """pi(a | o; z_task): ``update(batch, aux_batch=None)``, ``act(obs)``, state dicts."""

    uses_goal_image = False  # the task is given by its reward only

    def __init__(
        self,
        cfg: TaskBCConfig,
        image_shape: tuple[int, int, int],
        action_dim: int,
        proprio_dim: int | None = None,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        amp: bool = False,
    ) -> None:
        self.cfg, self.amp = cfg, bool(amp)
        self.bc = GCBCAgent(replace(cfg.gcbc, ema_tau=0.0), image_shape, action_dim, proprio_dim,
                            device, seed=seed, amp=amp)
        self.bc.optimizer = None  # this agent's optimiser steps the shared network
        b = self.bc
        self.device, self.image_shape = b.device, b.image_shape
        self.action_dim, self.proprio_dim = b.action_dim, b.proprio_dim
        self.policy, self.generator = b.policy, b.generator
        dim = cfg.gcbc.encoder.embed_dim
        self.z = torch.nn.Parameter(torch.zeros(dim, device=self.device))  # (D,) task embedding
        self._params = [*self.policy.parameters(), self.z]
        self.optimizer = make_adamw(
            [{"params": self._params[:-1], "lr": cfg.lr},
             {"params": [self.z], "lr": cfg.z_lr, "weight_decay": 0.0}],
            self.device, lr=cfg.lr, weight_decay=cfg.gcbc.weight_decay,
        )
        self.step = 0

    @property
    def observation(self) -> str:
        """What the network reads: "image" (camera frames) or "state" (EncoderConfig.kind)."""
        return self.cfg.gcbc.encoder.kind

    # --- initialisation ---

    def load_pretrained(self, agent_state: Mapping[str, Any]) -> None:
        """A GCBC policy (its weight average where it kept one), or a task BC agent's weights
        and z_task."""
        self.policy.load_state_dict(agent_state.get("policy_ema", agent_state["policy"]))
        if "z" in agent_state:
            with torch.no_grad():
                self.z.copy_(torch.as_tensor(agent_state["z"], device=self.device).float())

    @torch.no_grad()
    def init_task_embedding(self, images: np.ndarray, chunk: int = 256) -> torch.Tensor:
        """z_task = mean goal embedding of success frames (M, H, W, 3) or their states (M, S);
        returns z (D,)."""
        self.z.copy_(mean_goal_embedding(self.policy, images, self.device, chunk))
        return self.z.detach().clone()

    # --- training ---

    def _dist(self, obs: torch.Tensor, proprio: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """mean, log_std (B, A) of pi(. | o; z_task) for obs (B, H, W, 3) or states (B, S)."""
        h = self.policy.encode_obs(obs, proprio)  # (B, D + Dp)
        e = self.policy.fuse(h, self.z.to(h.dtype).expand(obs.shape[0], -1))  # (B, F)
        return self.policy.dist_params(e)

    def update(
        self, batch: Mapping[str, Any], aux_batch: Mapping[str, Any] | None = None
    ) -> UpdateStats:
        """One NLL step on a batch of successful transitions (OBS_IMAGE (B, H, W, 3), or
        OBS_STATE (B, S) with ``encoder.kind=state``; ACTION (B, A), proprio if the network
        reads it); ``aux_batch`` is not used (no value to keep), so fine-tuning gives this
        agent none."""
        cfg, dev = self.cfg.gcbc, self.device
        augment = cfg.augment and cfg.pad > 0 and self.observation == "image"
        obs = batch_frames(batch, self.observation, ("obs",), dev,
                           generator=self.generator if augment else None, pad=cfg.pad)["obs"]
        action = to_tensor(batch[K.ACTION], dev).float()  # (B, A)
        proprio = self.bc._proprio(batch.get(K.OBS_PROPRIO)) if self.proprio_dim else None
        with autocast_context(dev, self.amp):
            mean, log_std = self._dist(obs, proprio)  # (B, A) each
        loss = gaussian_nll(action, mean.float(), log_std.float(), cfg.nll_beta).mean()
        grad_norm = self.apply_gradients(loss, self._params, self.cfg.max_grad_norm)
        self.step += 1
        with torch.no_grad():
            stats = {
                "bc/loss": loss.detach(),
                "bc/mse": ((mean.float() - action) ** 2).mean(),
                "bc/std": log_std.float().exp().mean(),
                "bc/grad_norm": grad_norm,
                "bc/z_norm": self.z.detach().norm(),
            }
        return UpdateStats(stats)

    # --- inference ---

    @torch.no_grad()
    def act(
        self,
        obs_image: Any,
        goal_image: Any = None,
        proprio: Any = None,
        *,
        explore_std: float = 0.0,
    ) -> np.ndarray:
        """Mean action (B, A) for obs (B, H, W, 3), or (A,) for one (H, W, 3); states (B, S) or
        (S,) with ``encoder.kind=state``; ``goal_image`` is never read (the signature is the
        other agents')."""
        obs, single = act_observations(obs_image, self.observation, self.device)
        with autocast_context(self.device, self.amp):
            mean, _ = self._dist(obs, self.bc._proprio(proprio))  # (B, A)
        out = add_exploration(mean, explore_std, self.generator).float().cpu().numpy()
        return out[0] if single else out

    # --- checkpoints ---

    def state_dict(self) -> dict[str, Any]:
        """Policy, task embedding, optimiser, step, RNG and config."""
        return {"policy": self.policy.state_dict(), "z": self.z.detach().clone(),
                **self.training_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        with torch.no_grad():
            self.z.copy_(state["z"].to(self.device))
        self.load_training_state(state)
