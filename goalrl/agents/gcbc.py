"""Goal-conditioned behaviour cloning: maximise log pi(a_t | o_t, g) on hindsight-relabeled goals.

The baseline that Actionable Models must beat on the same data. It uses the same Siamese encoder
and fusion as the Q network, then a diagonal Gaussian with a tanh-squashed mean and an (o, g)-
dependent std, trained by negative log-likelihood. A Gaussian rather than plain MSE because play
data is multimodal: the learned std absorbs the spread instead of the loss scale, and the mean is
still the MSE-optimal action. Acting uses the mean (plus optional exploration noise).

The NLL is beta-weighted (``nll_beta``, Seitzer et al. 2022). Plain NLL divides the mean's
gradient by the predicted variance, so the samples the policy cannot explain yet get the least
push: on Push those are the ones that depend on where the small object is, while the arm's own
motion is learned first and with a small std. The policy then copies the pictured arm and never
learns the object. beta 1 gives the mean the squared-error gradient of every sample.

Chained samples (goal from another episode) carry no information about which action leads to the
goal, so they get weight 0; a sampler configured for AM can be reused as is. Observation and goal
share one random shift per sample, as in ``am.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from goalrl.agents.base import (
    AgentBase,
    UpdateStats,
    add_exploration,
    autocast_context,
    batch_proprio,
    make_adamw,
    to_tensor,
)
from goalrl.agents.config import EncoderConfig, config_from_dict
from goalrl.agents.losses import gaussian_nll
from goalrl.agents.networks import GaussianPolicyNetwork
from goalrl.agents.observations import act_frames, batch_frames
from goalrl.data import keys as K


@dataclass
class GCBCConfig:
    """Hyper-parameters of goal-conditioned behaviour cloning."""

    lr: float = 3e-4  # Adam learning rate (encoder included)
    weight_decay: float = 0.0  # AdamW-style decoupled weight decay (0 = plain Adam)
    max_grad_norm: float = 0.0  # clip the global gradient norm to this value (0 = no clipping)
    # Polyak rate of policy_ema, the weight average that acts (as AMConfig.ema_tau); 0 acts with
    # the latest weights
    ema_tau: float = 0.0005
    augment: bool = True  # DrQ random shift of obs and goal (one shift per sample)
    pad: int = 4  # random-shift padding in pixels
    log_std_min: float = -5.0  # lower bound of the policy's log std
    log_std_max: float = 1.0  # upper bound of the policy's log std
    # beta-NLL weight (losses.gaussian_nll): 0 is plain NLL, 1 gives the mean an MSE gradient
    nll_beta: float = 1.0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # image/proprio encoder shape

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "agent") -> GCBCConfig:
        """From ``asdict`` output, nested or the old flat layout (``config.config_from_dict``)."""
        return config_from_dict(cls, values, where=where)


class GCBCAgent(AgentBase):
    """GCBC with the same interface as ``AMAgent``: ``update``, ``act``, state dicts, RNG."""

    def __init__(
        self,
        cfg: GCBCConfig,
        image_shape: tuple[int, int, int],
        action_dim: int,
        proprio_dim: int | None = None,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        amp: bool = False,
    ) -> None:
        self._setup(cfg, image_shape, action_dim, proprio_dim, device, seed, amp)
        self.policy = self.build_seeded(
            lambda: GaussianPolicyNetwork(
                self.image_shape,
                self.action_dim,
                cfg.encoder,
                proprio_dim=self.proprio_dim,
                log_std_min=cfg.log_std_min,
                log_std_max=cfg.log_std_max,
            ).to(self.device),
            seed,
        )
        # the acting weight average and its averager; None when ema_tau = 0
        self.policy_ema, self._ema_averager = self.make_weight_average(self.policy, cfg.ema_tau)
        # gradients flow through train_net: the policy, or DistributedDataParallel(policy)
        self.train_net: torch.nn.Module = self.policy
        self._params = list(self.policy.parameters())  # listed once: clipped every update
        self.optimizer = make_adamw(
            self._params, self.device, lr=cfg.lr, weight_decay=cfg.weight_decay
        )

    def _proprio(self, x: Any) -> torch.Tensor | None:
        return batch_proprio(x, self.proprio_dim, self.device)

    def update(self, batch: Mapping[str, Any]) -> UpdateStats:
        """One gradient step of Gaussian NLL; returns ``actor/...`` diagnostics (read from the
        device on first access)."""
        cfg, dev = self.cfg, self.device
        # (B, H, W, 3) uint8 images, shifted alike, or (B, S) states (encoder.kind)
        augment = cfg.augment and cfg.pad > 0
        frames = batch_frames(batch, cfg.encoder.kind, ("obs", "goal"), dev,
                              generator=self.generator if augment else None, pad=cfg.pad)
        obs, goal = frames["obs"], frames["goal"]
        action = to_tensor(batch[K.ACTION], dev).float()  # (B, A)
        proprio = self._proprio(batch.get(K.OBS_PROPRIO)) if self.proprio_dim else None
        if K.CHAINED in batch:
            weight = (~to_tensor(batch[K.CHAINED], dev).bool()).float()  # (B,)
        else:
            weight = torch.ones(action.shape[0], device=dev)

        with autocast_context(dev, self.amp):
            mean, log_std = self.train_net(obs, goal, proprio)  # (B, A) each, float32
        nll = gaussian_nll(action, mean, log_std, cfg.nll_beta)  # (B,)
        loss = (nll * weight).sum() / weight.sum().clamp_min(1.0)

        grad_norm = self.apply_gradients(loss, self._params, cfg.max_grad_norm)
        self.step += 1
        self.update_weight_average(self._ema_averager, cfg.ema_tau)

        with torch.no_grad():
            w = weight / weight.sum().clamp_min(1.0)
            stats = {
                "actor/loss": loss.detach(),
                "actor/mse": (((mean - action) ** 2).mean(dim=-1) * w).sum(),
                "actor/std": (log_std.exp().mean(dim=-1) * w).sum(),
                "actor/frac_used": weight.mean(),
                "actor/grad_norm": grad_norm,
            }
        return UpdateStats(stats)

    @torch.no_grad()
    def act(
        self,
        obs_image: Any,
        goal_image: Any,
        proprio: Any = None,
        *,
        explore_std: float = 0.0,
    ) -> np.ndarray:
        """Mean action (B, A) for obs (B, H, W, 3), or (A,) for one unbatched obs (H, W, 3)
        (states (B, S) or (S,) with encoder.kind=state); from the weight average policy_ema
        when kept."""
        obs, goal, single = act_frames(obs_image, goal_image, self.cfg.encoder.kind, self.device)
        policy = self.policy if self.policy_ema is None else self.policy_ema
        with autocast_context(self.device, self.amp):
            mean, _ = policy(obs, goal, self._proprio(proprio))  # (B, A)
        out = add_exploration(mean, explore_std, self.generator).float().cpu().numpy()
        return out[0] if single else out

    def state_dict(self) -> dict[str, Any]:
        """Policy, its weight average, optimiser, step, RNG state and config."""
        average = {} if self.policy_ema is None else {"policy_ema": self.policy_ema.state_dict()}
        return {"policy": self.policy.state_dict(), **average, **self.training_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.load_weight_average(self.policy_ema, state, "policy_ema", "policy")
        self.load_training_state(state)
