"""Acting by one-step lookahead on a goal value V(s, g) through a learned model of the next step.

The read-out `model_lookahead_on_v`: at every step the agent's own action and ``candidates``
perturbations of it are carried one step ahead by a learned DynamicsEnsemble, every
member's prediction is scored by the agent's V against the goal, and the action whose
predictions score highest on average is taken. It asks the value, not the actor, which
action moves toward the goal: on the benchmark the values know the way where the actors fail
to follow them (docs/benchmarks/value_probe.md). Agents with a V(s, g): GCIVL, GCIQL, HIQL,
QRL; AM, which learns no V, through ActorQValue (its rows: `model_lookahead_on_q`).

Where the model predicts (a "space"):
* ``StateSpace``: the scene's next state vector, read by a state agent's V as any state
  (one model per dataset, `goalrl dynamics data=...`).
* ``LatentSpace``: the next frame embedding h = encode_obs(o, proprio) of the agent's own
  value network, fused with the goal's embedding as V fuses them (one model per checkpoint,
  `goalrl dynamics data=... ckpt=...`). It is how an image agent looks ahead: no image is
  ever predicted. On state GCIVL (push-stitch, 3 seeds, validation goals) it acted about as
  well as the state model (docs/lab-notes.md).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from goalrl.agents.observations import act_frames

# standard deviation of the candidates around the agent's action. Candidates near it stay
# where the data (and so the model) has been; uniform ones over the whole action box did worse
# on validation goals (play 36% against 65%, stitch 13% against 23%; docs/lab-notes.md)
SPREAD = 0.3


def has_state_value(agent: Any) -> bool:
    return callable(getattr(agent, "value", None)) and getattr(agent, "kind", None) == "state"


@torch.no_grad()
def state_values(agent: Any, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """(N,) the agent's V(s, g) of states (N, S) toward one goal state (S,), heads averaged;
    the arm's proprio is the state vector's first values, as goalrl's scenes record it."""
    obs, g, _ = act_frames(states, goal, "state", agent.device)  # (N, S) each
    proprio = agent.proprio(states[:, :agent.proprio_dim]) if agent.proprio_dim else None
    return agent.value(obs, g, proprio).float().mean(dim=-1).cpu().numpy()


class ActorQValue:
    """AM's Q read as a goal value for the lookahead: V(s, g) = Q(s, pi(s, g), g) at its actor
    pi's action, per Q head (AM learns no V, and a CEM search per predicted state would cost a
    search per candidate and member). The lookahead's centre action is the actor's."""

    def __init__(self, am: Any) -> None:
        if getattr(am, "actor", None) is None:
            raise ValueError("model lookahead on AM's Q reads it at its actor's action: the "
                             "checkpoint needs agent.actor=true")
        am.set_act_rule("actor")
        self.am, self.kind = am, am.cfg.encoder.kind
        self.device, self.proprio_dim, self.action_dim = am.device, am.proprio_dim, am.action_dim

    def proprio(self, x: Any) -> torch.Tensor | None:
        from goalrl.agents.base import batch_proprio

        return batch_proprio(x, self.proprio_dim, self.device)

    @torch.no_grad()
    def q_at_actor(self, e: torch.Tensor) -> torch.Tensor:
        """(N, K) Q in [0, 1] per head at the actor's action, from fused embeddings e (N, F)."""
        return torch.sigmoid(self.am.acting_q.head(e, self.am.actor.act(e)[:, None]).float())[:, 0]

    @torch.no_grad()
    def value(self, obs: torch.Tensor, goal: torch.Tensor, proprio: Any) -> torch.Tensor:
        """(N, K) Q in [0, 1] per head of states obs (N, S) toward goals (N, S)."""
        return self.q_at_actor(self.am.acting_q.encode(obs, goal, proprio))

    def act(self, state: Any, goal: Any, proprio: Any) -> np.ndarray:
        return self.am.act(state, goal, proprio)


class StateSpace:
    """The model predicts the scene's next state vector; V reads it as it reads any state."""

    name = "state"

    def __init__(self, agent: Any) -> None:
        if not has_state_value(agent):
            raise ValueError(f"act_rule=model_lookahead through a state model needs a state "
                             f"agent with a value V(s, g) (GCIVL, GCIQL, HIQL, QRL); a "
                             f"{type(agent).__name__} reading "
                             f"{getattr(agent, 'kind', 'images')} has none")
        self.agent = agent

    def embed(self, obs: Any, proprio: Any) -> torch.Tensor:
        """(1, S) the state itself."""
        return torch.as_tensor(np.asarray(obs), dtype=torch.float32).reshape(1, -1)

    def scores(self, nexts: torch.Tensor, goal: np.ndarray) -> np.ndarray:
        """(N,) V of predicted next states (E, N, S) toward the goal, members averaged."""
        values = state_values(self.agent, nexts.reshape(-1, nexts.shape[-1]).numpy(), goal)
        return values.reshape(nexts.shape[0], -1).mean(axis=0)


def latent_value_parts(agent: Any) -> tuple[Any, Any]:
    """(the network whose frame embedding the latent model predicts, e (N, F) -> values
    (N, K)): GCIVL's, GCIQL's and HIQL's V network; AM's Q at its actor's action."""
    from goalrl.agents.networks import GoalValueNetwork

    if isinstance(agent, ActorQValue):
        return agent.am.acting_q, agent.q_at_actor
    net = getattr(agent, "value", None)
    if isinstance(net, GoalValueNetwork):
        return net, lambda e: net.v_head(e).float()
    raise ValueError(f"act_rule=model_lookahead in a latent space reads a value network "
                     f"with a frame embedding (GCIVL, GCIQL, HIQL; AM with agent.actor=true); "
                     f"a {type(agent).__name__} has none")


class LatentSpace:
    """The model predicts the next frame embedding h (N, D + Dp) of the agent's value network;
    V reads fuse(h, encode_goal(g)). Frames are images or states, as the agent reads them."""

    name = "latent"

    def __init__(self, agent: Any) -> None:
        self.net, self.head = latent_value_parts(agent)
        self.agent, self.kind = agent, agent.kind

    def frames(self, x: Any) -> torch.Tensor:
        """(B, ...) frames as the agent's encoder reads them, from one frame or a batch."""
        return act_frames(x, x, self.kind, self.agent.device)[0]

    @torch.no_grad()
    def embed(self, obs: Any, proprio: Any) -> torch.Tensor:
        """(B, D + Dp) the value network's embedding of frames and proprio (one or a batch)."""
        p = self.agent.proprio(proprio) if self.agent.proprio_dim else None
        return self.net.encode_obs(self.frames(obs), p).float().cpu()

    @torch.no_grad()
    def scores(self, nexts: torch.Tensor, goal: Any) -> np.ndarray:
        """(N,) V of predicted embeddings (E, N, H) toward the goal frame, members averaged."""
        e, n, h = nexts.shape
        z = self.net.encode_goal(self.frames(goal)[:1])  # (1, D)
        fused = self.net.fuse(nexts.reshape(e * n, h).to(z.device), z.expand(e * n, -1))
        return self.head(fused).mean(dim=-1).reshape(e, n).mean(dim=0).cpu().numpy()

    def digest(self) -> str:
        """Which embedding this is: a hash of the network's weights, 16 hex digits (a latent
        model is refused for any other checkpoint)."""
        h = hashlib.sha256()
        for name, t in sorted(self.net.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


class ModelLookahead:
    """evaluate.Policy: (observation, goal, proprio) -> (action (A,), the chosen action's
    lookahead value), through ``model`` in ``space`` (default: StateSpace)."""

    def __init__(self, agent: Any, model: Any, candidates: int = 16, seed: int = 0,
                 spread: float | None = SPREAD, space: Any = None) -> None:
        self.space = space or StateSpace(agent)
        if candidates < 0:
            raise ValueError(f"lookahead candidates must be >= 0, got {candidates}")
        self.agent, self.model, self.candidates = agent, model, candidates
        self.spread = spread  # None: uniform over the box (the value probe's recorded rule)
        self.rng = np.random.default_rng(seed)

    def candidate_actions(self, own: np.ndarray) -> np.ndarray:
        """(N + 1, A): the agent's own action (A,) and N Gaussian perturbations of it (standard
        deviation ``spread``) clipped to the action box [-1, 1], or N uniform in the box."""
        shape = (self.candidates, own.size)
        others = (self.rng.uniform(-1.0, 1.0, shape) if self.spread is None else
                  np.clip(own[None] + self.rng.normal(0.0, self.spread, shape), -1.0, 1.0))
        return np.concatenate([own[None], others]).astype(np.float32)

    def __call__(self, obs: Any, goal: Any, proprio: Any) -> tuple[np.ndarray, float]:
        actions = self.candidate_actions(self.agent.act(obs, goal, proprio))  # (N + 1, A)
        x = self.space.embed(obs, proprio).expand(len(actions), -1)  # (N + 1, X)
        nexts = self.model.predict(x, torch.as_tensor(actions))  # (E, N + 1, X)
        score = self.space.scores(nexts, goal)  # (N + 1,)
        best = int(np.argmax(score))
        return actions[best], float(score[best])
