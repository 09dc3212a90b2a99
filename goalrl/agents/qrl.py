"""QRL: quasimetric RL (Wang et al. 2023, "Optimal Goal-Reaching Reinforcement Learning via
Quasimetric Learning"), as OGBench runs it (impls/agents/qrl.py), with a DDPG+BC or AWR actor.

Value. A distance d(s, g) >= 0, read as the number of steps from s to g (V = -d). Every frame
gets one embedding z = phi(x) (frame encoder, then an MLP; no (s, g) fusion: a quasimetric must
compare two embeddings), and d(s, g) = IQE(z_s, z_g), an interval quasimetric embedding (Wang &
Isola 2022): z is cut into components of ``iqe_dim`` coordinates; component j's distance is
the length of the union of the intervals [z_s,i, max(z_s,i, z_g,i)] over its coordinates i, and
d mixes their mean and max with a learned weight. d(x, x) = 0, d >= 0 and the triangle
inequality hold by construction, and d(s, g) != d(g, s) in general: a one-way door costs one
step forward and many back. QRL's insight: among quasimetrics, the optimal cost-to-go is the
one that makes every pair of states as far apart as possible while no single transition is
longer than its cost. So d is fitted by
- pushing random (s, g) pairs apart: minimise push_scale * softplus((push_offset - d) /
  push_scale), i.e. maximise a concave increasing transform of d that rewards distances beyond
  the offset less and less (``push_loss``; value goals are random dataset states);
- subject to the local constraint E[relu(d(s, s') - 1)^2] <= epsilon on the data's transitions
  (``step_violation``; OGBench writes the 1 as -r, which is 1 on all rows but those whose random
  goal is s itself), held by a Lagrange multiplier lambda = exp(log_lambda): the value loss is
  push + lambda * violation (lambda a constant there), and lambda has its own loss
  lambda * (epsilon - violation) (violation a constant there), so gradient descent raises lambda
  while the constraint is violated and lowers it otherwise (``constrained_value_loss``).
There is no bootstrap and no target network: the constraint is local, the push global.

Latent dynamics (actor_loss=ddpgbc only). z' ~ T(z_s, a) = z_s + MLP([z_s, a]), trained by the
symmetric quasimetric error (d(z_s', T) + d(T, z_s')) / 2 (``latent_dynamics_loss``), whose
gradient also shapes phi, as in QRL and OGBench.

Actor. A Gaussian policy on actor goals (future states of the episode, uniform offset):
- ``ddpgbc`` (default; QRL's own and OGBench's): maximise Q = -d(T(z_s, mean of pi), z_g), read
  through the learned dynamics with phi, T and the IQE weights all frozen (gradients reach only
  the actor), plus alpha times the data action's NLL (``value_losses.ddpg_bc_actor_loss``, Q
  normalised by its batch magnitude). OGBench acts with a constant std and so uses a squared
  error; goalrl's actor learns its std, so the BC term is a beta-NLL (``nll_beta``).
- ``awr``: advantage-weighted regression with A = d(s, g) - d(s', g) (OGBench's, no reward).
One optimiser over phi, T, lambda and the actor, as OGBench.

Proprio is refused (agent.encoder.use_proprio): a goal frame has none, and phi must embed
states and goals alike; with encoder.kind=state the state vector carries it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from goalrl.agents.am_actor import call_frozen
from goalrl.agents.base import autocast_context
from goalrl.agents.config import AgentConfigError, EncoderConfig
from goalrl.agents.networks import frame_encoder
from goalrl.agents.value_agent import GoalActorConfig, GoalValueAgent
from goalrl.data.sampler import GoalMixture

ACTOR_LOSSES = ("ddpgbc", "awr")

# --- pure functions ---------------------------------------------------------------------------


def iqe_components(x: torch.Tensor, y: torch.Tensor, iqe_dim: int) -> torch.Tensor:
    """Per-component IQE distances (..., C) from x to y (..., C * iqe_dim): component j's is the
    length of the union of the intervals [x_i, max(x_i, y_i)] over its coordinates i (empty where
    y_i <= x_i).

    The union is a row of disjoint blocks, so its length is the sum of the blocks' right ends
    minus the sum of their left ends: linear in x and y with coefficients in {-1, 0, 1} that
    change only at ties. The coefficients are found without gradient (a sort by left end and a
    running max of right ends), so the backward pass is one multiply: 3.4 ms forward and
    backward at B = 256, L = 256 on one thread, against 4.9-8.2 ms for the same sums taken
    through sort and cummax under autograd (a shared, loaded machine).
    """
    dtype = torch.promote_types(x.dtype, torch.float32)  # float32 at least (bfloat16 autocast)
    x = x.to(dtype).unflatten(-1, (-1, iqe_dim))  # (..., C, k)
    y = y.to(dtype).unflatten(-1, (-1, iqe_dim))
    with torch.no_grad():
        start, order = x.sort(dim=-1)  # left ends, sorted; order: their coordinates
        up = y > x  # the interval is [x_i, y_i], not empty
        end = torch.where(up, y, x).gather(-1, order)  # right ends in sorted order
        reach, reach_at = end.cummax(dim=-1)  # right end of the union so far, and whose
        opens = torch.ones_like(up)  # a block starts here: past all that came before
        opens[..., 1:] = start[..., 1:] > reach[..., :-1]
        closes = torch.ones_like(up)  # a block ends here: the next one opens a new block
        closes[..., :-1] = opens[..., 1:]
        closer = order.gather(-1, reach_at)  # the coordinate whose end is the block's end
        closer_up = up.gather(-1, closer)  # that end is its y (else an empty interval's x)
        closes = closes.to(x.dtype)
        coef_x = torch.zeros_like(x).scatter_add_(-1, order, -opens.to(x.dtype))
        coef_x.scatter_add_(-1, closer, closes * ~closer_up)
        coef_y = torch.zeros_like(y).scatter_add_(-1, closer, closes * closer_up)
    return (coef_x * x + coef_y * y).sum(dim=-1)


def iqe_distance(
    x: torch.Tensor, y: torch.Tensor, iqe_dim: int, mean_weight: torch.Tensor | float
) -> torch.Tensor:
    """IQE quasimetric d(x, y) (...,): mean_weight * mean + (1 - mean_weight) * max of the
    components (QRL's "maxmean"); x, y (..., L) with L a multiple of ``iqe_dim``."""
    comps = iqe_components(x, y, iqe_dim)  # (..., C)
    return mean_weight * comps.mean(dim=-1) + (1.0 - mean_weight) * comps.amax(dim=-1)


def push_loss(dist: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
    """Scalar: mean of scale * softplus((offset - d) / scale) over random pairs' distances (B,).
    Decreasing and convex in d, so minimising it pushes d up, less and less past ``offset``."""
    return (scale * F.softplus((offset - dist.float()) / scale)).mean()


def step_violation(step_dist: torch.Tensor, step_cost: float = 1.0) -> torch.Tensor:
    """Scalar: mean of relu(d(s, s') - cost)^2 over transitions (B,); 0 when none is longer
    than its cost."""
    return (step_dist.float() - step_cost).relu().square().mean()


def constrained_value_loss(
    push: torch.Tensor, violation: torch.Tensor, lam: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(value loss, dual loss), scalars. Value: push + lambda * violation with lambda a constant;
    dual: lambda * (epsilon - violation) with the violation a constant, so descent on lambda
    raises it while violation > epsilon and lowers it below."""
    value = push + lam.detach() * violation
    dual = lam * (epsilon - violation.detach())
    return value, dual


def latent_dynamics_loss(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """Scalar: mean of (d(z', T(z, a)) + d(T(z, a), z')) / 2 from both directions' (B,)."""
    return (forward.float() + backward.float()).mean() / 2


# --- networks ---------------------------------------------------------------------------------


def layer_norm_mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Two hidden ReLU + LayerNorm layers (OGBench's layer_norm MLP), then a linear output."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.LayerNorm(hidden_dim),
        nn.Linear(hidden_dim, hidden_dim), nn.ReLU(inplace=True), nn.LayerNorm(hidden_dim),
        nn.Linear(hidden_dim, out_dim),
    )


class QuasimetricValue(nn.Module):
    """d(s, g) = IQE(phi(s), phi(g)); phi = frame encoder then an MLP to L = ``latent_dim``."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        encoder: EncoderConfig,
        *,
        hidden_dim: int,
        latent_dim: int,
        iqe_dim: int,
    ) -> None:
        super().__init__()
        self.frames = frame_encoder(image_shape, encoder)  # (B, ...) -> (B, D)
        self.phi = layer_norm_mlp(encoder.embed_dim, hidden_dim, latent_dim)  # (B, D) -> (B, L)
        self.mean_logit = nn.Parameter(torch.zeros(()))  # sigmoid: the components' mean weight
        self.iqe_dim = iqe_dim

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """z (B, L) of frames (B, H, W, 3) images or (B, S) states."""
        return self.phi(self.frames(frames))

    def distance(self, z_from: torch.Tensor, z_to: torch.Tensor) -> torch.Tensor:
        """d (B,) between embeddings (B, L), float32."""
        return iqe_distance(z_from, z_to, self.iqe_dim, torch.sigmoid(self.mean_logit))

    def forward(self, obs: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """d(obs, goal) (B,), one encoder call for both."""
        z_obs, z_goal = self.embed(torch.cat([obs, goal])).chunk(2)
        return self.distance(z_obs, z_goal)


class LatentDynamics(nn.Module):
    """T(z, a) = z + MLP([z, a]): the next embedding (B, L) from z (B, L) and actions (B, A)."""

    def __init__(self, latent_dim: int, action_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.net = layer_norm_mlp(latent_dim + action_dim, hidden_dim, latent_dim)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return z + self.net(torch.cat([z, action.to(z.dtype)], dim=-1))


class DualVariable(nn.Module):
    """The Lagrange multiplier lambda = exp(log_lambda) > 0 of the local constraint."""

    def __init__(self, initial: float) -> None:
        super().__init__()
        self.log_lambda = nn.Parameter(torch.tensor(math.log(initial)))

    def forward(self) -> torch.Tensor:
        return self.log_lambda.exp()


# --- the agent --------------------------------------------------------------------------------


def random_goal_mixture() -> GoalMixture:
    """OGBench's QRL value goals: random dataset states (the push term's pairs)."""
    return GoalMixture(p_current=0.0, p_future=0.0, p_random=1.0, future="geometric")


@dataclass
class QRLConfig(GoalActorConfig):
    """QRL's settings: those of every agent with a Gaussian actor (value_agent.GoalActorConfig;
    ``head_hidden_dim`` is the width of phi's and T's hidden layers), and the quasimetric's."""

    # discount of future goals' geometric offset (read by the sampler only: QRL's value has
    # no discount, and its default goals are random (value) and uniform-offset (actor))
    gamma: float = 0.99
    # DDPG+BC: weight of the actor's BC term (NLL of the data action); AWR: temperature of
    # exp(alpha * A). OGBench's: 0.003 (its default; antmaze), 0.0003 (pointmaze), 0.3 (its
    # manipulation play data), 0.03 (its noisy data); its actor has a fixed std, so its BC term
    # is a squared error and these carry over only roughly. On the point task (test_qrl.py)
    # 0.003 and 0.3 both reached 64 of 64 goals after 300 updates
    alpha: float = 0.003
    actor_loss: str = "ddpgbc"  # how the actor is read from d: ddpgbc (via T) or awr
    max_weight: float = 100.0  # AWR only: its weights exp(alpha * A) are clipped at this value
    # where the push term's goals come from: random dataset states (OGBench's QRL)
    value_goals: GoalMixture = field(default_factory=random_goal_mixture)
    latent_dim: int = 256  # L: width of phi(x), a multiple of iqe_dim (OGBench: 512)
    iqe_dim: int = 8  # coordinates per IQE component (OGBench: 8; L / iqe_dim components)
    # the push transform's offset: distances beyond it are pushed less and less (OGBench: 500;
    # QRL's paper code 15, for short-horizon tasks)
    push_offset: float = 500.0
    # the push transform's scale (softplus's 1 / beta): larger is closer to linear (OGBench:
    # 100; QRL's paper code 10)
    push_scale: float = 100.0
    # bound on E[relu(d(s, s') - 1)^2], the mean squared excess of a transition's distance over
    # its one step (OGBench: 0.05; QRL's paper code 0.25^2)
    epsilon: float = 0.05
    lambda_init: float = 1.0  # the Lagrange multiplier's initial value (OGBench: 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.actor_loss not in ACTOR_LOSSES:
            raise AgentConfigError(
                f"agent.actor_loss={self.actor_loss!r}: must be one of {', '.join(ACTOR_LOSSES)}"
            )
        for name in ("latent_dim", "iqe_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AgentConfigError(f"agent.{name}={value!r}: must be a whole number >= 1")
        if self.latent_dim % self.iqe_dim:
            raise AgentConfigError(
                f"agent.latent_dim={self.latent_dim} is not a multiple of agent.iqe_dim="
                f"{self.iqe_dim}: the IQE cuts phi(x) into components of iqe_dim coordinates"
            )
        for name in ("push_scale", "epsilon", "lambda_init"):
            if not getattr(self, name) > 0:
                raise AgentConfigError(f"agent.{name}={getattr(self, name)}: must be > 0")


class QRLAgent(GoalValueAgent):
    """QRL with the interface of the other agents: ``update``, ``act``, state dicts, RNG."""

    def __init__(
        self,
        cfg: QRLConfig,
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
                "agent.encoder.use_proprio=true: QRL takes no proprio (a goal frame has none, "
                "and phi embeds states and goals alike); with encoder.kind=state the state "
                "vector carries it"
            )
        self._setup(cfg, image_shape, action_dim, proprio_dim, device, seed, amp)
        self.value = self.build_seeded(
            lambda: QuasimetricValue(
                self.image_shape, cfg.encoder, hidden_dim=cfg.head_hidden_dim,
                latent_dim=cfg.latent_dim, iqe_dim=cfg.iqe_dim,
            ).to(self.device),
            seed,
        )
        self.dual = DualVariable(cfg.lambda_init).to(self.device)
        self.nets: dict[str, nn.Module] = {"value": self.value, "dual": self.dual}
        self.dynamics: LatentDynamics | None = None
        if cfg.actor_loss == "ddpgbc":  # only its actor reads T
            self.dynamics = self.build_seeded(
                lambda: LatentDynamics(cfg.latent_dim, self.action_dim, cfg.head_hidden_dim).to(
                    self.device
                ),
                seed + 2,  # neither phi's nor the actor's initial weights
            )
            self.nets["dynamics"] = self.dynamics
        self._setup_actor(cfg, seed)
        self._make_trainer({**self.nets, "policy": self.policy}, [])

    def value_loss(
        self, z: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Push random pairs apart under the local constraint; lambda's own loss (module doc)."""
        cfg = self.cfg
        d_goal = self.value.distance(z["obs"], z["goal"])  # (B,) random pairs
        d_step = self.value.distance(z["obs"], z["next_obs"])  # (B,) transitions
        lam = self.dual()
        push = push_loss(d_goal, cfg.push_offset, cfg.push_scale)
        violation = step_violation(d_step)
        value, dual = constrained_value_loss(push, violation, lam, cfg.epsilon)
        return value + dual, {
            "value/loss": value.detach(),
            "value/push": push.detach(),
            "value/violation": violation.detach(),
            "value/lambda": lam.detach(),
            "value/d_goal_mean": d_goal.detach().mean(),
            "value/d_goal_max": d_goal.detach().max(),
            "value/d_step_mean": d_step.detach().mean(),
            "value/d_step_max": d_step.detach().max(),
        }

    def dynamics_loss(
        self, z: dict[str, torch.Tensor], action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """T(z_s, a) toward z_s' by the symmetric quasimetric error (trains phi too)."""
        assert self.dynamics is not None
        with autocast_context(self.device, self.amp):
            pred = self.dynamics(z["obs"], action)  # (B, L)
        next_z = z["next_obs"]
        loss = latent_dynamics_loss(
            self.value.distance(next_z, pred), self.value.distance(pred, next_z)
        )
        return loss, {"dynamics/loss": loss.detach()}

    def actor_loss(
        self, f: dict[str, torch.Tensor], z: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """DDPG+BC through T, or AWR with A = d(s, g) - d(s', g) (``actor_loss``)."""
        obs, goal, action = f["obs"], f["actor_goal"], x["action"]
        z_obs, z_goal = z["obs"].detach(), z["actor_goal"].detach()
        if self.cfg.actor_loss == "awr":
            with torch.no_grad():
                adv = self.value.distance(z_obs, z_goal) - self.value.distance(
                    z["next_obs"].detach(), z_goal
                )  # (B,) steps saved by the data's transition
            return self.awr_actor_loss(obs, goal, None, action, adv)
        with autocast_context(self.device, self.amp):
            mean, log_std = self.policy(obs, goal)  # (B, A) each
            z_next = call_frozen(self.dynamics, z_obs, mean)  # (B, L), gradient to mean only
        weight = torch.sigmoid(self.value.mean_logit).detach()
        q = -iqe_distance(z_next, z_goal, self.cfg.iqe_dim, weight)  # (B,) -steps left
        return self.ddpg_bc_loss(q, mean, log_std, action)

    def losses(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        names = ("obs", "next_obs", "goal", "actor_goal")
        with autocast_context(self.device, self.amp):
            # one encoder call for the four frames; the actor reads them detached
            both = self.value.embed(torch.cat([f[n] for n in names]))  # (4B, L)
        z = dict(zip(names, both.float().chunk(4), strict=True))
        loss, info = self.value_loss(z)
        if self.dynamics is not None:
            dynamics_loss, dynamics_info = self.dynamics_loss(z, x["action"])
            loss, info = loss + dynamics_loss, {**info, **dynamics_info}
        actor_loss, actor_info = self.actor_loss(f, z, x)
        return loss + actor_loss, {**info, **actor_info}
