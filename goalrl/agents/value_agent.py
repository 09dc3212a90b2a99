"""What the value-based goal-conditioned agents (GCIVL, GCIQL) share: their common settings, the
goal-conditioned Gaussian actor that acts, the AWR actor loss, and save/restore of named nets.

The agents differ only in their value functions (gcivl.py: V(s, g); gciql.py: Q(s, a, g) and
V(s, g)) and in how the actor is extracted from them. Rewards follow OGBench: r = 0 when o_t is
the goal, -1 otherwise, and the bootstrap is masked at the goal, so V(s, g) is minus the
discounted number of steps to g.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from goalrl.agents.base import (
    AgentBase,
    UpdateStats,
    add_exploration,
    autocast_context,
    batch_proprio,
    make_adamw,
    to_tensor,
)
from goalrl.agents.config import AgentConfigError, EncoderConfig, config_from_dict
from goalrl.agents.losses import PolyakAverage, gaussian_nll
from goalrl.agents.networks import GaussianPolicyNetwork
from goalrl.agents.observations import act_frames, batch_frames, goal_reached
from goalrl.agents.value_losses import awr_weights, ddpg_bc_actor_loss
from goalrl.data import keys as K
from goalrl.data.sampler import GoalMixture, actor_goal_mixture


@dataclass
class GoalActorConfig:
    """Settings of every agent here with a goal-conditioned Gaussian actor (GCIVL, GCIQL, and
    W7's CRL and HIQL); ``GoalValueConfig`` adds those of a value learned by expectile."""

    lr: float = 3e-4  # Adam learning rate of every network (encoders included)
    weight_decay: float = 0.0  # AdamW-style decoupled weight decay (0 = plain Adam)
    max_grad_norm: float = 0.0  # clip the global gradient norm to this value (0 = no clipping)
    gamma: float = 0.99  # discount: V = -(1 - gamma^k) / (1 - gamma) for a goal k steps away
    alpha: float = 10.0  # actor temperature: AWR's exp(alpha * A) (DDPG+BC: the BC weight)
    # Polyak rate of policy_ema, the actor's weight average that acts (as GCBCConfig.ema_tau);
    # 0 acts with the latest weights
    ema_tau: float = 0.0005
    augment: bool = True  # DrQ random shift of every image of a sample (one shift per sample)
    pad: int = 4  # random-shift padding in pixels
    log_std_min: float = -5.0  # lower bound of the actor's log std
    log_std_max: float = 1.0  # upper bound of the actor's log std
    # beta-NLL weight of the actor's likelihood (losses.gaussian_nll; as GCBCConfig.nll_beta)
    nll_beta: float = 1.0
    head_hidden_dim: int = 256  # width of the value/critic heads
    # where the value's goals come from: current / future / random (OGBench 0.2 / 0.5 / 0.3)
    value_goals: GoalMixture = field(default_factory=GoalMixture)
    # where the actor's goals come from (OGBench: future frames of the episode, uniform)
    actor_goals: GoalMixture = field(default_factory=actor_goal_mixture)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # encoder of every network

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma < 1.0:
            raise AgentConfigError(f"agent.gamma={self.gamma}: must be in (0, 1)")

    @property
    def act_rule(self) -> str:
        """How these agents act, as eval reports it: the actor's mean (not a config field)."""
        return "actor"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "agent") -> Any:
        """From ``asdict`` output (checkpoint metadata); goal mixtures rebuilt from their dicts."""
        nested = {
            name: GoalMixture(**values[name]) if isinstance(values[name], Mapping) else values[name]
            for name in ("value_goals", "actor_goals")
            if name in values
        }
        return config_from_dict(cls, values, where=where, nested=nested)


@dataclass
class GoalValueConfig(GoalActorConfig):
    """Settings of the agents whose value is fitted by expectile regression with a target network
    (GCIVL, GCIQL, HIQL); their own configs add or re-default some."""

    expectile: float = 0.9  # tau of the expectile regression (0.5 = mean; higher = optimistic)
    max_weight: float = 100.0  # AWR weights are clipped at this value
    tau: float = 0.005  # Polyak rate of the target network

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.expectile < 1.0:
            raise AgentConfigError(f"agent.expectile={self.expectile}: must be in (0, 1)")


class TrainedNets(nn.Module):
    """The networks one optimiser trains, as one module whose forward is the agent's loss: so
    DistributedDataParallel, which wraps ``train_net``, sees every trained weight and averages
    all their gradients (the target networks and the acting average are not in it)."""

    def __init__(self, nets: dict[str, nn.Module], loss: Any) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(nets)
        self._loss = loss  # the agent's ``losses`` method, run on these same modules

    def forward(self, *args: Any) -> Any:
        return self._loss(*args)


def policy_stats(mean: torch.Tensor, log_std: torch.Tensor,
                 action: torch.Tensor) -> dict[str, torch.Tensor]:
    """Actor diagnostics: squared error of its mean (B, A) to the data action, mean std."""
    return {"actor/mse": ((mean - action) ** 2).mean().detach(),
            "actor/std": log_std.exp().mean().detach()}


class GoalValueAgent(AgentBase):
    """Base of GCIVL and GCIQL: the actor, acting, batch inputs, AWR, the update step and
    state dicts.

    A subclass builds its value networks in ``__init__``, calls ``_setup_actor``, lists its
    networks in ``self.nets`` (name -> module, saved under that name), calls ``_make_trainer``
    with the ones it trains and its target averagers, and implements ``losses``.
    """

    nets: dict[str, nn.Module]
    frame_names = ("obs", "next_obs", "goal", "actor_goal")  # the frames ``losses`` reads

    def _setup_actor(self, cfg: GoalValueConfig, seed: int) -> None:
        self.kind = cfg.encoder.kind  # "image" or "state": what obs and goals are
        self.policy = self.build_seeded(
            lambda: GaussianPolicyNetwork(
                self.image_shape, self.action_dim, cfg.encoder, proprio_dim=self.proprio_dim,
                log_std_min=cfg.log_std_min, log_std_max=cfg.log_std_max,
            ).to(self.device),
            seed + 1,  # not the value's initial weights
        )
        self.policy_ema, self._ema_averager = self.make_weight_average(self.policy, cfg.ema_tau)

    def _make_trainer(self, trained: dict[str, nn.Module], targets: list[PolyakAverage]) -> None:
        """One optimiser over ``trained``; ``targets`` are moved after each step."""
        self.train_net: nn.Module = TrainedNets(trained, self.losses)  # DDP may wrap it
        self._targets = targets
        self._params = [p for net in trained.values() for p in net.parameters()]  # clipped
        self.optimizer = make_adamw(
            self._params, self.device, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )

    def losses(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and ``value/``, ``critic/``, ``actor/`` diagnostics, from the frames ``f``
        and the other inputs ``x`` (``batch_inputs``)."""
        raise NotImplementedError

    def batch_inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Everything ``losses`` reads besides frames: action (B, A), proprio and next_proprio
        (B, P) or None, reward and mask (B,) for the value goal."""
        reward, mask = self.rewards(batch)
        uses_proprio = self.proprio_dim is not None
        return {
            "action": to_tensor(batch[K.ACTION], self.device).float(),
            "proprio": self.proprio(batch.get(K.OBS_PROPRIO)) if uses_proprio else None,
            "next_proprio": self.proprio(batch.get(K.NEXT_OBS_PROPRIO)) if uses_proprio else None,
            "reward": reward, "mask": mask,
        }

    def update(self, batch: Mapping[str, Any]) -> UpdateStats:
        """One gradient step on every trained network; diagnostics read on first access."""
        f = self.frames(batch, self.frame_names)
        loss, info = self.train_net(f, self.batch_inputs(batch))
        grad_norm = self.apply_gradients(loss, self._params, self.cfg.max_grad_norm)
        self.step += 1
        for target in self._targets:
            target(self.cfg.tau)
        self.update_weight_average(self._ema_averager, self.cfg.ema_tau)
        return UpdateStats({**info, "grad_norm": grad_norm})

    def frames(self, batch: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The batch's frames ``names``, shifted as one when images are augmented."""
        cfg = self.cfg
        augment = cfg.augment and cfg.pad > 0 and self.kind == "image"
        return batch_frames(batch, self.kind, names, self.device,
                            generator=self.generator if augment else None, pad=cfg.pad)

    def proprio(self, x: Any) -> torch.Tensor | None:
        return batch_proprio(x, self.proprio_dim, self.device)

    def rewards(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(reward (B,), mask (B,)): 0 and 0 where o_t is the value goal, -1 and 1 elsewhere."""
        at_goal = goal_reached(batch, self.device).float()  # (B,)
        return at_goal - 1.0, 1.0 - at_goal

    def awr_actor_loss(
        self,
        obs: torch.Tensor,
        goal: torch.Tensor,
        proprio: torch.Tensor | None,
        action: torch.Tensor,
        adv: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Advantage-weighted regression: mean of exp(alpha * A) (clipped) * -log pi(a | s, g)."""
        weight = awr_weights(adv, self.cfg.alpha, self.cfg.max_weight)  # (B,)
        with autocast_context(self.device, self.amp):
            mean, log_std = self.policy(obs, goal, proprio)  # (B, A) each
        nll = gaussian_nll(action, mean, log_std, self.cfg.nll_beta)  # (B,)
        loss = (weight * nll).mean()
        return loss, {
            "actor/loss": loss.detach(),
            "actor/adv": adv.mean(),
            "actor/weight": weight.mean(),
            **policy_stats(mean, log_std, action),
        }

    def ddpg_bc_loss(
        self, q: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """DDPG+BC from the critic's value ``q`` (B,) at the actor's ``mean`` (B, A): -q over
        its batch magnitude + alpha * -log pi(data action)."""
        nll = gaussian_nll(action, mean, log_std, self.cfg.nll_beta)  # (B,)
        loss = ddpg_bc_actor_loss(q, nll, self.cfg.alpha)
        return loss, {
            "actor/loss": loss.detach(),
            "actor/q": q.detach().mean(),
            "actor/nll": nll.detach().mean(),
            **policy_stats(mean, log_std, action),
        }

    @torch.no_grad()
    def act(
        self, obs_image: Any, goal_image: Any, proprio: Any = None, *, explore_std: float = 0.0
    ) -> np.ndarray:
        """The actor's mean action (B, A), or (A,) for one unbatched obs; from the weight
        average policy_ema when kept. Observations and goals are images (B, H, W, 3) or, with
        encoder.kind=state, states (B, S)."""
        obs, goal, single = act_frames(obs_image, goal_image, self.kind, self.device)
        policy = self.policy if self.policy_ema is None else self.policy_ema
        with autocast_context(self.device, self.amp):
            mean, _ = policy(obs, goal, self.proprio(proprio))  # (B, A)
        out = add_exploration(mean, explore_std, self.generator).float().cpu().numpy()
        return out[0] if single else out

    def state_dict(self) -> dict[str, Any]:
        """Every named net, the actor and its weight average, optimiser, step, RNG and config."""
        nets = {name: net.state_dict() for name, net in self.nets.items()}
        average = {} if self.policy_ema is None else {"policy_ema": self.policy_ema.state_dict()}
        return {**nets, "policy": self.policy.state_dict(), **average, **self.training_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state[name])
        self.policy.load_state_dict(state["policy"])
        self.load_weight_average(self.policy_ema, state, "policy_ema", "policy")
        self.load_training_state(state)

