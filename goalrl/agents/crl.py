"""CRL: contrastive RL (Eysenbach et al. 2022, as in OGBench), a DDPG+BC actor on its critic.

Critic. Two embeddings, phi(s, a) and psi(g), in R^R, with K independent heads; the critic's
logit f_k(s, a, g) = phi_k(s, a) . psi_k(g) / sqrt(R). On a batch whose goals g_i are future
states of row i's own trajectory (geometric offset: f then reads as the log of the discounted
occupancy of g over its marginal), binary NCE over the batch makes (s_i, a_i, g_i) a positive
and every (s_i, a_i, g_j), j != i, a negative: sigmoid cross-entropy of all B x B logits against
the identity (``binary_nce_loss``), as OGBench's CRL. InfoNCE (a softmax over each row) leaves
each row's logits free up to a constant c(s, a), which the actor's gradient through a then
reads; on OGBench's cube-single check its critic tracked the distance to the goal at
correlation 0.19 against the reference's 0.65 (docs/benchmarks/ogbench_reference.md).
No reward, no bootstrap, no target network. A random
goal would be a false positive, so value goals must come from the row's own episode
(``value_goals.p_random`` = 0).

Actor. A Gaussian policy pi(a | s, g) on actor goals (future states, uniform offset), trained by
DDPG+BC: maximise min_k f_k(s, mean of pi, g) normalised by its batch magnitude, minus alpha times
the log-likelihood of the data action (``value_losses.ddpg_bc_actor_loss``). The actor's loss
reads the critic with its weights detached (``am_actor.call_frozen``), so it never trains it.

Networks (why): one frame encoder serves phi (obs) and psi (goal), as AM's Siamese encoder (a
second conv trunk would double the image cost); the proprio vector, when used, enters phi raw
beside the frame embedding and the action. The actor has its own encoder (value_agent).
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


def binary_nce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Binary NCE (scalar) of logits (B, B): entry (i, i) is a positive, every other entry a
    negative; the mean over all B x B entries of the sigmoid cross-entropy."""
    labels = torch.eye(logits.shape[0], device=logits.device)
    return F.binary_cross_entropy_with_logits(logits.float(), labels)


def crl_value_goals() -> GoalMixture:
    """OGBench's CRL value goals: future states of the row's own episode, geometric offset."""
    return GoalMixture(p_current=0.0, p_future=1.0, p_random=0.0, future="geometric")


@dataclass
class CRLConfig(GoalActorConfig):
    """Contrastive RL's settings: those of every agent with a Gaussian actor
    (value_agent.GoalActorConfig; ``head_hidden_dim`` is the width of phi's and psi's hidden
    layers) re-defaulted for CRL, and the critic's representation."""

    # discount of the value goals' geometric offset: the critic estimates the occupancy of g
    # discounted by gamma (read by the sampler only)
    gamma: float = 0.99
    # weight of the actor's BC term (-log-likelihood of the data action). OGBench's per-dataset
    # values: 3 on manipulation play data, 0.1 on its noisy data and ant mazes; on the point
    # task (tests/agents/test_crl.py) 0.1 let the actor leave the data (30% of goals reached
    # after 1000 updates) where 1.0 reached all of them
    alpha: float = 1.0
    # where the critic's goals come from: the row's own future states only (a random goal would
    # be a false positive); p_current > 0 adds the state itself
    value_goals: GoalMixture = field(default_factory=crl_value_goals)
    rep_dim: int = 64  # R: width of phi(s, a) and psi(g)
    num_heads: int = 2  # K: critic heads (the actor maximises their minimum)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.value_goals.p_random > 0:
            raise AgentConfigError(
                f"agent.value_goals.p_random={self.value_goals.p_random}: CRL's positives must "
                "come from the row's own episode (a random goal would be a false positive); use 0"
            )


class EnsembleMLP(nn.Module):
    """K independent MLPs with two hidden ReLU layers, batched: x (B, I) -> (K, B, O)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_heads: int) -> None:
        super().__init__()
        shapes = [(in_dim, hidden_dim), (hidden_dim, hidden_dim), (hidden_dim, out_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in shapes:  # nn.Linear's default init, per head
            bound = 1.0 / math.sqrt(fan_in)
            w = torch.empty(num_heads, fan_in, fan_out).uniform_(-bound, bound)
            self.weights.append(nn.Parameter(w))
            b = torch.empty(num_heads, 1, fan_out).uniform_(-bound, bound)
            self.biases.append(nn.Parameter(b))
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.num_heads, -1, -1)  # (K, B, I)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w.to(h.dtype))  # (K, B, out)
            h = h if i == last else h.relu()
        return h


class ContrastiveCritic(nn.Module):
    """f_k(s, a, g) = phi_k(s, a) . psi_k(g) / sqrt(R) on one frame encoder (module doc)."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        action_dim: int,
        encoder: EncoderConfig,
        *,
        proprio_dim: int | None,
        hidden_dim: int,
        rep_dim: int,
        num_heads: int,
    ) -> None:
        super().__init__()
        self.frames = frame_encoder(image_shape, encoder)  # (B, ...) -> (B, D)
        d, p = encoder.embed_dim, proprio_dim or 0
        self.phi = EnsembleMLP(d + p + action_dim, hidden_dim, rep_dim, num_heads)
        self.psi = EnsembleMLP(d, hidden_dim, rep_dim, num_heads)
        self.scale = 1.0 / math.sqrt(rep_dim)

    def embed(
        self, obs: torch.Tensor, goal: torch.Tensor, proprio: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Obs features h (B, D [+ P]) and goal reps psi (K, B, R), one encoder call."""
        both = self.frames(torch.cat([obs, goal]))  # (2B, D)
        h, z = both.chunk(2)
        h = h if proprio is None else torch.cat([h, proprio.to(h.dtype)], dim=-1)
        return h, self.psi(z)

    def phi_of(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """phi (K, B, R) of obs features h (B, D [+ P]) and actions (B, A)."""
        return self.phi(torch.cat([h, action.to(h.dtype)], dim=-1))

    def forward(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        goal: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """logits (K, B, B): [k, i, j] = f_k(s_i, a_i, g_j)."""
        h, psi = self.embed(obs, goal, proprio)
        phi = self.phi_of(h, action)  # (K, B, R)
        return torch.einsum("kir,kjr->kij", phi, psi).float() * self.scale


class CRLAgent(GoalValueAgent):
    """CRL with the interface of the other agents: ``update``, ``act``, state dicts, RNG."""

    frame_names = ("obs", "goal", "actor_goal")  # the frames ``losses`` reads

    def __init__(
        self,
        cfg: CRLConfig,
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
            lambda: ContrastiveCritic(
                self.image_shape,
                self.action_dim,
                cfg.encoder,
                proprio_dim=self.proprio_dim,
                hidden_dim=cfg.head_hidden_dim,
                rep_dim=cfg.rep_dim,
                num_heads=cfg.num_heads,
            ).to(self.device),
            seed,
        )
        self._setup_actor(cfg, seed)
        self.nets = {"critic": self.critic}
        self._make_trainer({"critic": self.critic, "policy": self.policy}, [])

    def critic_loss(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Binary NCE of every head over the batch: row i's own goal is its positive."""
        with autocast_context(self.device, self.amp):
            logits = self.critic(f["obs"], x["action"], f["goal"], x["proprio"])  # (K, B, B)
        loss = sum(binary_nce_loss(head) for head in logits)
        with torch.no_grad():
            eye = torch.eye(logits.shape[1], device=logits.device, dtype=torch.bool)
            pos = logits[:, eye]  # (K, B)
            neg = logits[:, ~eye]  # (K, B * (B - 1))
            correct = logits.argmax(dim=-1) == torch.arange(logits.shape[1], device=self.device)
        return loss, {
            "critic/loss": loss.detach(),
            "critic/logits_pos": pos.mean(),
            "critic/logits_neg": neg.mean(),
            "critic/accuracy": correct.float().mean(),  # the positive ranked first in its row
        }

    def actor_loss(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """DDPG+BC: -min_k f_k(s, mean, g) / its batch magnitude + alpha * NLL(data action)."""
        obs, goal, proprio, action = f["obs"], f["actor_goal"], x["proprio"], x["action"]
        with autocast_context(self.device, self.amp):
            mean, log_std = self.policy(obs, goal, proprio)  # (B, A) each
            with torch.no_grad():
                h, psi = self.critic.embed(obs, goal, proprio)  # (B, D), (K, B, R)
            phi = call_frozen(self.critic.phi, torch.cat([h, mean.to(h.dtype)], dim=-1))
        q = ((phi.float() * psi.float()).sum(-1) * self.critic.scale).min(dim=0).values  # (B,)
        return self.ddpg_bc_loss(q, mean, log_std, action)

    def losses(
        self, f: dict[str, torch.Tensor], x: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        critic_loss, critic_info = self.critic_loss(f, x)
        actor_loss, actor_info = self.actor_loss(f, x)
        return critic_loss + actor_loss, {**critic_info, **actor_info}
