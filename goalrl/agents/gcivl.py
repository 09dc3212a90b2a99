"""GCIVL: goal-conditioned implicit V-learning (OGBench, Park et al. 2024), actor by AWR.

Value. V(s, g) with two heads, each fitted by expectile regression (IQL's in-sample "max")
toward y_k = r + gamma * mask * V_target_k(s', g), where r = 0 and mask = 0 when s is the goal
and r = -1 otherwise (``value_agent``). Value goals come from a mixture of the current state,
future states of the episode (geometric offset) and random dataset states (OGBench: 0.2 / 0.5 /
0.3), so V learns both to recognise a reached goal and to rank far ones. The target network
is a Polyak average of V. The value needs no action: it is learned from (s, s', g) alone, which
is why it can use the data's own (sub-optimal) transitions without an action maximisation.

Actor. A Gaussian policy by advantage-weighted regression on actor goals (future states of the
episode): weights exp(alpha * A) clipped at max_weight, A = V(s', g) - V(s, g) (heads averaged),
as OGBench's reference. With the reward term (A = r + gamma * V(s', g) - V(s, g)) the constant
r = -1 scaled every weight by exp(-alpha): a step of progress weighed about 1 and a standstill
1e-4, where OGBench's clip gives 100 and 1, and the actor fitted the data actions three times
worse (docs/benchmarks/ogbench_reference.md).

One optimiser over V and the actor; the actor loss reads V without gradient. The asymmetric
weight of the expectile uses each head's own error (IQL); OGBench takes its sign from the target
network's advantage, a small difference.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from goalrl.agents.base import autocast_context
from goalrl.agents.losses import PolyakAverage
from goalrl.agents.networks import GoalValueNetwork
from goalrl.agents.value_agent import GoalValueAgent, GoalValueConfig
from goalrl.agents.value_losses import expectile_loss


@dataclass
class GCIVLConfig(GoalValueConfig):
    """GCIVL's settings: those of every value agent (value_agent.GoalValueConfig), OGBench's
    defaults (alpha 10, expectile 0.9, gamma 0.99)."""


class GCIVLAgent(GoalValueAgent):
    """GCIVL with the interface of the other agents: ``update``, ``act``, state dicts, RNG."""

    def __init__(
        self,
        cfg: GCIVLConfig,
        image_shape: tuple[int, int, int],
        action_dim: int,
        proprio_dim: int | None = None,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        amp: bool = False,
    ) -> None:
        self._setup(cfg, image_shape, action_dim, proprio_dim, device, seed, amp)
        self.value = self.build_seeded(
            lambda: GoalValueNetwork(
                self.image_shape, cfg.encoder, proprio_dim=self.proprio_dim,
                head_hidden_dim=cfg.head_hidden_dim, num_heads=2,
            ).to(self.device),
            seed,
        )
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)
        self._setup_actor(cfg, seed)
        self.nets = {"value": self.value, "target_value": self.target_value}
        self._make_trainer({"value": self.value, "policy": self.policy},
                           [PolyakAverage(self.target_value, self.value)])

    def value_loss(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Expectile regression of both heads toward r + gamma * mask * V_target(s', g)."""
        with torch.no_grad(), autocast_context(self.device, self.amp):
            next_v = self.target_value(f["next_obs"], f["goal"], x["next_proprio"])  # (B, 2)
        target = x["reward"][:, None] + self.cfg.gamma * x["mask"][:, None] * next_v  # (B, 2)
        with autocast_context(self.device, self.amp):
            v = self.value(f["obs"], f["goal"], x["proprio"])  # (B, 2)
        # summed over the heads, as two separate losses would be
        loss = 2 * expectile_loss((target - v).flatten(), self.cfg.expectile).mean()
        return loss, {
            "value/loss": loss.detach(),
            "value/v_mean": v.detach().mean(),
            "value/v_max": v.detach().max(),
            "value/v_min": v.detach().min(),
        }

    def actor_loss(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """AWR with A = V(s', g_actor) - V(s, g_actor), V without gradient."""
        b = f["obs"].shape[0]
        proprio = x["proprio"]
        both = None if proprio is None else torch.cat([proprio, x["next_proprio"]])  # (2B, P)
        with torch.no_grad(), autocast_context(self.device, self.amp):
            # one encoder call: s and s' against the same B goals
            v = self.value(torch.cat([f["obs"], f["next_obs"]]), f["actor_goal"], both)
        v = v.float().mean(dim=-1)  # (2B,) heads averaged
        adv = v[b:] - v[:b]  # (B,)
        return self.awr_actor_loss(f["obs"], f["actor_goal"], proprio, x["action"], adv)

    def losses(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        value_loss, value_info = self.value_loss(f, x)
        actor_loss, actor_info = self.actor_loss(f, x)
        return value_loss + actor_loss, {**value_info, **actor_info}
