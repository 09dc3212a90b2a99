"""HIQL: hierarchical implicit Q-learning (Park et al. 2023, as in OGBench), both levels by AWR.

Value. GCIVL's V(s, g) (gcivl.py: expectile regression toward r + gamma * mask * V_target(s', g)
on a mixture of value goals), unchanged. Its Siamese encoder gives every frame an embedding
z(x) in (-1, 1)^D; V reads the goal only through z(g), so z is the goal representation the
policies share (the value is the only thing that trains it: both policies read it detached).

High level. pi_h(w | s, g), a Gaussian over representations w in R^D on actor goals g (future
states, uniform offset), fitted by AWR to z(s_{t+k}), the representation of the state k =
``subgoal_steps`` ahead (not past g or the episode's end; the sampler's SUBGOAL frame), with
advantage A_h = V(s_{t+k}, g) - V(s, g): subgoals that move toward g weigh more.

Low level. pi_l(a | s, w), a Gaussian over actions on the observation and a representation (the
policy's own encoder embeds s and fuses it with w in place of a goal embedding), fitted by AWR to
the data action with A_l = V(s', s_{t+k}) - V(s, s_{t+k}): actions that bring the subgoal nearer.
Both advantages follow OGBench (no reward term) and read the online value without gradient.

Acting: w = mean of pi_h(s, g), then the mean of pi_l(s, w). HIQL takes no proprio input: the
sampler has no proprio for the subgoal frame (with encoder.kind=state, put it in the state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from goalrl.agents.base import UpdateStats, add_exploration, autocast_context
from goalrl.agents.config import AgentConfigError
from goalrl.agents.gcivl import GCIVLAgent, GCIVLConfig
from goalrl.agents.losses import gaussian_nll
from goalrl.agents.networks import GaussianPolicyNetwork
from goalrl.agents.observations import act_frames
from goalrl.agents.value_losses import awr_weights


@dataclass
class HIQLConfig(GCIVLConfig):
    """HIQL's settings: GCIVL's (its value), OGBench's HIQL defaults (alpha 3 for both levels,
    expectile 0.7), the subgoal horizon and the high level's temperature."""

    alpha: float = 3.0  # low-level AWR temperature: exp(alpha * A_l)
    expectile: float = 0.7  # tau of the value's expectile regression
    high_alpha: float = 3.0  # high-level AWR temperature: exp(high_alpha * A_h)
    # k: the high level proposes the state k steps ahead (read by the sampler; OGBench: 10 on
    # its manipulation datasets, 25 to 100 on its mazes)
    subgoal_steps: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.subgoal_steps < 1:
            raise AgentConfigError(f"agent.subgoal_steps={self.subgoal_steps}: must be >= 1")


def awr_gaussian_loss(
    mean: torch.Tensor,
    log_std: torch.Tensor,
    target: torch.Tensor,
    adv: torch.Tensor,
    alpha: float,
    *,
    max_weight: float,
    beta: float,
    prefix: str,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """AWR of a Gaussian (B, X) toward ``target`` (B, X): mean of exp(alpha * A) (clipped) times
    the (beta-)NLL of the target; diagnostics under ``prefix``."""
    weight = awr_weights(adv, alpha, max_weight)  # (B,)
    loss = (weight * gaussian_nll(target, mean, log_std, beta)).mean()
    return loss, {
        f"{prefix}/loss": loss.detach(),
        f"{prefix}/adv": adv.mean(),
        f"{prefix}/weight": weight.mean(),
        f"{prefix}/mse": ((mean - target) ** 2).mean().detach(),
        f"{prefix}/std": log_std.exp().mean().detach(),
    }


class HIQLAgent(GCIVLAgent):
    """HIQL with the interface of the other agents: ``update``, ``act``, state dicts, RNG.

    ``policy`` (and ``policy_ema``) is the low level; ``high_policy`` the high level.
    """

    frame_names = ("obs", "next_obs", "goal", "actor_goal", "subgoal")  # what ``losses`` reads

    def __init__(
        self,
        cfg: HIQLConfig,
        image_shape: tuple[int, int, int],
        action_dim: int,
        proprio_dim: int | None = None,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        amp: bool = False,
    ) -> None:
        if proprio_dim and cfg.encoder.use_proprio:
            raise AgentConfigError(
                "agent.encoder.use_proprio=true: HIQL takes no proprio (the subgoal frame has "
                "none); with encoder.kind=state the state vector carries it"
            )
        super().__init__(cfg, image_shape, action_dim, proprio_dim, device, seed=seed, amp=amp)
        rep_dim = cfg.encoder.embed_dim  # D: the value's goal representation z
        self.high_policy = self.build_seeded(
            lambda: GaussianPolicyNetwork(
                self.image_shape,
                rep_dim,
                cfg.encoder,
                log_std_min=cfg.log_std_min,
                log_std_max=cfg.log_std_max,
            ).to(self.device),
            seed + 2,  # neither the value's nor the low level's initial weights
        )
        self.high_policy_ema, self._high_averager = self.make_weight_average(
            self.high_policy, cfg.ema_tau
        )
        self.nets["high_policy"] = self.high_policy
        if self.high_policy_ema is not None:
            self.nets["high_policy_ema"] = self.high_policy_ema
        # the optimiser again, now over the high level too (GCIVL's had value and low level)
        self._make_trainer(
            {"value": self.value, "policy": self.policy, "high_policy": self.high_policy},
            self._targets,
        )

    def advantages(self, f: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Subgoal representation w (B, D) and both advantages (B,), from the online value
        without gradient (heads averaged); one encoder call for the four frames."""
        b, value = f["obs"].shape[0], self.value
        frames = torch.cat([f["obs"], f["next_obs"], f["subgoal"], f["actor_goal"]])
        with torch.no_grad(), autocast_context(self.device, self.amp):
            s, s_next, s_sub, g = value.encoder.embed_frames(frames).split(b)  # (B, D) each

            def v(h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
                return value.v_head(value.fuse(h, z)).float().mean(dim=-1)  # (B,)

            low_adv = v(s_next, s_sub) - v(s, s_sub)
            high_adv = v(s_sub, g) - v(s, g)
        return {"subgoal_rep": s_sub.float(), "low_adv": low_adv, "high_adv": high_adv}

    def low_level(self, policy: GaussianPolicyNetwork, obs: torch.Tensor, rep: torch.Tensor):
        """pi_l's mean and log_std (B, A) at observations and subgoal representations (B, D)."""
        h = policy.encode_obs(obs)  # (B, D)
        return policy.dist_params(policy.fuse(h, rep.to(h.dtype)))

    def losses(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        value_loss, info = self.value_loss(f, x)
        a = self.advantages(f)
        awr = dict(max_weight=cfg.max_weight, beta=cfg.nll_beta)
        with autocast_context(self.device, self.amp):
            low = self.low_level(self.policy, f["obs"], a["subgoal_rep"])  # (B, A) each
            high = self.high_policy(f["obs"], f["actor_goal"])  # (B, D) each
        low_loss, low_info = awr_gaussian_loss(
            *low, x["action"], a["low_adv"], cfg.alpha, prefix="actor_low", **awr
        )
        high_loss, high_info = awr_gaussian_loss(
            *high, a["subgoal_rep"], a["high_adv"], cfg.high_alpha, prefix="actor_high", **awr
        )
        return value_loss + low_loss + high_loss, {**info, **low_info, **high_info}

    def update(self, batch: Mapping[str, Any]) -> UpdateStats:
        """GCIVL's step over value and both levels, then the high level's weight average."""
        stats = super().update(batch)
        self.update_weight_average(self._high_averager, self.cfg.ema_tau)
        return stats

    @torch.no_grad()
    def act(
        self, obs_image: Any, goal_image: Any, proprio: Any = None, *, explore_std: float = 0.0
    ) -> np.ndarray:
        """The low level's mean action toward the high level's mean subgoal representation;
        (B, A), or (A,) for one unbatched obs; from the weight averages when kept."""
        obs, goal, single = act_frames(obs_image, goal_image, self.kind, self.device)
        high = self.high_policy if self.high_policy_ema is None else self.high_policy_ema
        low = self.policy if self.policy_ema is None else self.policy_ema
        with autocast_context(self.device, self.amp):
            rep, _ = high(obs, goal)  # (B, D)
            mean, _ = self.low_level(low, obs, rep)  # (B, A)
        out = add_exploration(mean, explore_std, self.generator).float().cpu().numpy()
        return out[0] if single else out
