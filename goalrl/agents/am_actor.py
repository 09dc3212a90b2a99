"""A policy read from AM's Q-function: an actor trained DDPG+BC-style on it (``AMConfig.actor``).

Park et al. 2024 ("Is value learning really the main bottleneck in offline RL?") found that
extracting a policy by DDPG+BC (maximise Q at the actor's action, with a behaviour-cloning
penalty) beats AWR and plain cloning once the value is good. AM's other read-outs are CEM on Q
(a maximisation with no behaviour constraint) and the behaviour prior's mean (imitation scored by
Q); the actor is the comparison between them, acting with ``act_rule=actor``.

Design (why):

* **Deterministic tanh MLP on the Q network's fused embedding e(o, g).** The embedding already
  holds what Q needs of (o, g); a separate image encoder would double the conv cost.
* **The actor loss never trains the Q-function.** The actor reads ``e.detach()`` and scores its
  action with the Q head's weights detached (``call_frozen``), so the gradient of
  -Q(o, pi(e), g) reaches only the actor. Its parameters are a separate group of the agent's one
  optimiser; the combined loss is then exactly the critic loss for the Q network's gradients.
  The cost is one extra encoder pass without gradient per update (the critic's forward runs
  through ``train_net``, which returns logits only).
* **Q in [0, 1] (mean over heads), not the logit**, is what the actor maximises; the loss
  normalises it by its batch mean magnitude (``value_losses.ddpg_bc_actor_loss``), so alpha
  means the same at any value scale. The BC term is the squared error to the data action over
  rows whose goal came from their own episode (a chained goal says nothing about the action).
* Under torchrun the Q network is wrapped in DDP but the actor is not: an optimiser step pre-hook
  averages the actor's gradients over the ranks (``average_across_ranks``), so every rank keeps
  the same actor. (Per-parameter gradient hooks would issue their all-reduces among DDP's own,
  in an order that may differ between ranks, which hangs or aborts gloo.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from goalrl.agents.value_losses import ddpg_bc_actor_loss


class EmbeddingActor(nn.Module):
    """pi(e) = tanh(MLP(e)): fused embeddings (B, F) -> actions (B, A) in (-1, 1)."""

    def __init__(self, feature_dim: int, action_dim: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, action_dim),
        )

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(e).float())  # (B, A)


def call_frozen(module: nn.Module, *args: Any) -> Any:
    """``module(*args)`` with the module's parameters detached: gradients reach the inputs but
    never the module (an actor's loss read through a critic it must not train)."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, args)


def actor_loss(
    actor: nn.Module,
    q_head: nn.Module,
    e: torch.Tensor,
    data_action: torch.Tensor,
    bc_mask: torch.Tensor,
    alpha: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DDPG+BC loss of ``actor`` on Q = sigmoid(``q_head``), and ``actor/...`` diagnostics.

    e (B, F) fused embeddings (detached here), data_action (B, A), bc_mask (B,) bool: rows whose
    BC term counts. Gradients reach only ``actor``'s parameters.
    """
    e = e.detach()
    pi = actor(e)  # (B, A)
    logits = call_frozen(q_head, e, pi[:, None])[:, 0].float()  # (B, K)
    q_pi = torch.sigmoid(logits).mean(dim=-1)  # (B,)
    mse = ((pi - data_action) ** 2).mean(dim=-1)  # (B,)
    used = bc_mask.float()  # (B,)
    # rescaled so that the plain mean inside ddpg_bc_actor_loss is the mean over the used rows
    bc = mse * used / used.mean().clamp_min(1e-6)  # (B,)
    loss = ddpg_bc_actor_loss(q_pi, bc, alpha)
    with torch.no_grad():
        info = {
            "actor/loss": loss.detach(),
            "actor/q_pi": q_pi.mean(),
            "actor/bc_mse": (mse * used).sum() / used.sum().clamp_min(1.0),
            "actor/abs_action": pi.abs().mean(),
        }
    return loss, info


def average_across_ranks(params: list[torch.Tensor]) -> None:
    """Average these parameters' gradients over the torchrun ranks in one all-reduce (a no-op in a
    single process), for networks that DDP does not wrap. Call it after the backward pass: by then
    DDP's own all-reduces have finished, so every rank issues this one in the same order."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])  # one collective for all of them
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class AMActor:
    """The actor of an AM agent, its acting weight average and their state (see module doc)."""

    def __init__(self, agent: Any, feature_dim: int, seed: int) -> None:
        cfg = agent.cfg
        if cfg.actor_alpha < 0:
            raise ValueError(f"agent.actor_alpha must be >= 0, got {cfg.actor_alpha}")
        self.alpha = cfg.actor_alpha
        self.net: EmbeddingActor = agent.build_seeded(
            lambda: EmbeddingActor(feature_dim, agent.action_dim, cfg.head_hidden_dim).to(
                agent.device
            ),
            seed + 1,  # not the Q network's seed: another network, other initial weights
        )
        self.ema, self.averager = agent.make_weight_average(self.net, cfg.ema_tau)
        self.params = list(self.net.parameters())

    def average_gradients(self, *_: Any) -> None:
        """An optimiser step pre-hook (``register_step_pre_hook``): the actor's gradients
        averaged over the ranks before the step (``average_across_ranks``)."""
        average_across_ranks(self.params)

    @staticmethod
    def param_groups(q_params: list[torch.Tensor], actor: AMActor | None) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: the Q network's, then the actor's when there is one
        (a group of its own, so the optimiser state of the Q network's group is as without it)."""
        return [{"params": q_params}] + ([{"params": actor.params}] if actor is not None else [])

    def act(self, e: torch.Tensor) -> torch.Tensor:
        """Actions (B, A) for embeddings e (B, F) from the weight average when kept (as q_ema)."""
        return (self.net if self.ema is None else self.ema)(e)

    def loss(
        self,
        q_net: Any,
        obs: torch.Tensor,
        goal: torch.Tensor,
        proprio: Any,
        action: torch.Tensor,
        chained: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The actor's loss on the online Q network's embedding of (obs, goal)."""
        with torch.no_grad():
            e = q_net.encode(obs, goal, proprio)  # (B, F)
        return actor_loss(self.net, q_net.q_head, e, action, ~chained, self.alpha)

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.net.state_dict(),
            **({} if self.ema is None else {"actor_ema": self.ema.state_dict()}),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "actor" not in state:
            raise KeyError("agent.actor=true but the checkpoint holds no actor weights")
        self.net.load_state_dict(state["actor"])
        if self.ema is not None:
            self.ema.load_state_dict(state.get("actor_ema", state["actor"]))
