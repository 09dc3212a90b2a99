"""GCIQL: goal-conditioned implicit Q-learning (IQL, Kostrikov et al. 2022, as OGBench runs it).

Critic. Q(s, a, g) with two heads and V(s, g), IQL's split: V is fitted to the target critic's
min over heads at the *data's* action by expectile regression, and each Q head to
r + gamma * mask * V(s', g) by squared error. The max over actions is never taken outside the
data: the expectile of Q over the data's actions stands in for it. Rewards and value goals are
those of GCIVL (value_agent: r = 0 and no bootstrap at the goal, -1 elsewhere).

Actor, by ``actor_loss``:
- ``ddpgbc`` (default, OGBench's for GCIQL): maximise Q(s, mu(s, g), g) at the actor's mean,
  the Q term normalised by its batch mean magnitude, plus alpha times the actor's negative
  log-likelihood of the data action (value_losses.ddpg_bc_actor_loss). Park et al. 2024 found
  this extraction beats AWR when the value is good. The critic is frozen for this term: its
  gradient reaches only the actor.
- ``awr``: advantage-weighted regression with A = min_k Q_target_k(s, a, g) - V(s, g).
Defaults are those of OGBench's reference get_config (impls/agents/gciql.py): ddpgbc, alpha 0.3,
expectile 0.9, gamma 0.99; its per-dataset runs tune alpha (see the paper's hyper-parameter table
before citing one). With awr, ``alpha`` is a temperature as in GCIVL (e.g. 3 to 10). One
difference: OGBench's actor has a constant std (const_std), goalrl's a learned one, so the BC
term here is a beta-NLL (``nll_beta``) rather than a fixed-variance squared error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call

from goalrl.agents.base import autocast_context
from goalrl.agents.config import AgentConfigError
from goalrl.agents.losses import PolyakAverage
from goalrl.agents.networks import GoalQNetwork, GoalValueNetwork
from goalrl.agents.value_agent import GoalValueAgent, GoalValueConfig
from goalrl.agents.value_losses import expectile_loss

ACTOR_LOSSES = ("ddpgbc", "awr")


@dataclass
class GCIQLConfig(GoalValueConfig):
    """GCIQL's settings: those of every value agent (value_agent.GoalValueConfig) and the
    actor's extraction."""

    alpha: float = 0.3  # DDPG+BC: weight of the BC term; AWR: temperature of exp(alpha * A)
    actor_loss: str = "ddpgbc"  # how the actor is read from Q: ddpgbc or awr

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.actor_loss not in ACTOR_LOSSES:
            raise AgentConfigError(
                f"agent.actor_loss={self.actor_loss!r}: must be one of {', '.join(ACTOR_LOSSES)}"
            )


class GCIQLAgent(GoalValueAgent):
    """GCIQL with the interface of the other agents: ``update``, ``act``, state dicts, RNG."""

    def __init__(
        self,
        cfg: GCIQLConfig,
        image_shape: tuple[int, int, int],
        action_dim: int,
        proprio_dim: int | None = None,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        amp: bool = False,
    ) -> None:
        self._setup(cfg, image_shape, action_dim, proprio_dim, device, seed, amp)
        self.critic = self.build_seeded(
            lambda: GoalQNetwork(
                self.image_shape, self.action_dim, cfg.encoder, proprio_dim=self.proprio_dim,
                head_hidden_dim=cfg.head_hidden_dim, num_heads=2,
            ).to(self.device),
            seed,
        )
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = self.build_seeded(
            lambda: GoalValueNetwork(
                self.image_shape, cfg.encoder, proprio_dim=self.proprio_dim,
                head_hidden_dim=cfg.head_hidden_dim, num_heads=1,
            ).to(self.device),
            seed + 2,
        )
        self._setup_actor(cfg, seed)
        self.nets = {"critic": self.critic, "target_critic": self.target_critic,
                     "value": self.value}
        self._make_trainer({"critic": self.critic, "value": self.value, "policy": self.policy},
                           [PolyakAverage(self.target_critic, self.critic)])

    def value_loss(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """V(s, g) toward min_k Q_target_k(s, a, g) by expectile regression."""
        with torch.no_grad(), autocast_context(self.device, self.amp):
            q = self.target_critic(f["obs"], f["goal"], x["action"], x["proprio"])  # (B, 2)
        with autocast_context(self.device, self.amp):
            v = self.value(f["obs"], f["goal"], x["proprio"])[:, 0]  # (B,)
        loss = expectile_loss(q.float().min(dim=-1).values - v, self.cfg.expectile).mean()
        return loss, {"value/loss": loss.detach(), "value/v_mean": v.detach().mean(),
                      "value/v_max": v.detach().max(), "value/v_min": v.detach().min()}

    def critic_loss(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each Q head toward r + gamma * mask * V(s', g) (squared error, summed over heads)."""
        with torch.no_grad(), autocast_context(self.device, self.amp):
            next_v = self.value(f["next_obs"], f["goal"], x["next_proprio"])[:, 0].float()  # (B,)
        target = x["reward"] + self.cfg.gamma * x["mask"] * next_v  # (B,)
        with autocast_context(self.device, self.amp):
            q = self.critic(f["obs"], f["goal"], x["action"], x["proprio"]).float()  # (B, 2)
        loss = (q - target[:, None]).square().sum(dim=-1).mean()
        return loss, {"critic/loss": loss.detach(), "critic/q_mean": q.detach().mean(),
                      "critic/q_max": q.detach().max(), "critic/q_min": q.detach().min()}

    def actor_loss(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """DDPG+BC or AWR on the actor's goals (``actor_loss``)."""
        obs, goal, action, proprio = f["obs"], f["actor_goal"], x["action"], x["proprio"]
        if self.cfg.actor_loss == "awr":
            with torch.no_grad(), autocast_context(self.device, self.amp):
                q = self.target_critic(obs, goal, action, proprio).float().min(dim=-1).values
                adv = q - self.value(obs, goal, proprio)[:, 0].float()  # (B,)
            return self.awr_actor_loss(obs, goal, proprio, action, adv)
        # the critic as a fixed function of the action: its weights detached, so this term's
        # gradient reaches only the actor
        frozen = {name: p.detach() for name, p in self.critic.named_parameters()}
        with autocast_context(self.device, self.amp):
            mean, log_std = self.policy(obs, goal, proprio)  # (B, A) each
            q_pi = functional_call(self.critic, frozen, (obs, goal, mean, proprio))  # (B, 2)
        q_pi = q_pi.float().min(dim=-1).values  # (B,)
        return self.ddpg_bc_loss(q_pi, mean, log_std, action)

    def losses(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        value_loss, value_info = self.value_loss(f, x)
        critic_loss, critic_info = self.critic_loss(f, x)
        actor_loss, actor_info = self.actor_loss(f, x)
        return value_loss + critic_loss + actor_loss, {**value_info, **critic_info, **actor_info}
