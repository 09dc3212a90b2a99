"""Acting by one-step lookahead on a state value V(s, g) through a model of the next state.

The read-out `model_lookahead_on_v`: at every step the agent's own action and ``candidates``
perturbations of it are carried one step ahead by a learned DynamicsEnsemble, every
member's predicted next state is scored by the agent's V against the goal, and the action
whose predictions score highest on average is taken. It asks the value, not the actor, which
action moves toward the goal: on the benchmark the values know the way where the actors fail
to follow them (docs/benchmarks/value_probe.md). For state observations only (the model
predicts state vectors), and for agents with a V(s, g): GCIVL, GCIQL, HIQL, QRL; AM, which
learns no V, through ActorQValue (its rows: `model_lookahead_on_q`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

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
    from goalrl.agents.observations import act_frames

    obs, g, _ = act_frames(states, goal, "state", agent.device)  # (N, S) each
    proprio = agent.proprio(states[:, :agent.proprio_dim]) if agent.proprio_dim else None
    return agent.value(obs, g, proprio).float().mean(dim=-1).cpu().numpy()


class ActorQValue:
    """AM's Q read as a state value for the lookahead: V(s, g) = Q(s, pi(s, g), g) at its
    actor pi's action, per Q head (AM learns no V, and a CEM search per predicted state would
    cost a search per candidate and member). The lookahead's centre action is the actor's."""

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
    def value(self, obs: torch.Tensor, goal: torch.Tensor, proprio: Any) -> torch.Tensor:
        """(N, K) Q in [0, 1] per head of states obs (N, S) toward goals (N, S)."""
        net = self.am.acting_q
        e = net.encode(obs, goal, proprio)  # (N, F)
        return torch.sigmoid(net.head(e, self.am.actor.act(e)[:, None]).float())[:, 0]

    def act(self, state: Any, goal: Any, proprio: Any) -> np.ndarray:
        return self.am.act(state, goal, proprio)


def best_candidate(agent: Any, goal: np.ndarray, nexts: np.ndarray) -> tuple[int, float]:
    """(index, score) of the candidate whose predicted next states (E, N, S), E predictions
    of each of N candidates, the agent's V rates highest on average over the E."""
    values = state_values(agent, nexts.reshape(-1, nexts.shape[-1]), goal)  # (E * N,)
    score = values.reshape(nexts.shape[0], -1).mean(axis=0)  # (N,)
    best = int(np.argmax(score))
    return best, float(score[best])


class ModelLookahead:
    """evaluate.Policy: (state (S,), goal state (S,), proprio) -> (action (A,), the chosen
    action's lookahead value)."""

    def __init__(self, agent: Any, model: Any, candidates: int = 16, seed: int = 0,
                 spread: float | None = SPREAD) -> None:
        if not has_state_value(agent):
            raise ValueError(f"act_rule=model_lookahead needs a state agent with a value "
                             f"V(s, g) (GCIVL, GCIQL, HIQL, QRL); a {type(agent).__name__} "
                             f"reading {getattr(agent, 'kind', 'images')} has none")
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

    def __call__(self, state: np.ndarray, goal: np.ndarray, proprio: Any
                 ) -> tuple[np.ndarray, float]:
        actions = self.candidate_actions(self.agent.act(state, goal, proprio))  # (N + 1, A)
        s = torch.as_tensor(state, dtype=torch.float32).expand(len(actions), -1)
        nexts = self.model.predict(s, torch.as_tensor(actions)).numpy()  # (E, N + 1, S)
        best, score = best_candidate(self.agent, goal, nexts)
        return actions[best], score
