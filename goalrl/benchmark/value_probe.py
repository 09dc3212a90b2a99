"""Does a learned value function know the way? Its values along the scripted pusher's path.

The benchmark's tables say whether a policy reaches a goal; when none does (Push stitch), they
cannot say whether the value function failed to learn how far the goal is, or the policy failed
to follow a value that was right (policy extraction). This probe reads a state checkpoint's
value of (s_t, g) at every state the pusher passes through on its way to a benchmark goal it
reaches. A value that knows the way rises along that path: its rank correlation with time
(Spearman rho) is near 1, and the goal-reached end is worth more than the start.

Values read (the agent's own notion of how close g is):
- GCIVL, GCIQL, HIQL, QRL: V(s, g) (heads averaged);
- CRL: the critic f(s, a, g) at the pusher's action a (heads averaged);
- AM: Q(s, a, g) at the pusher's action (min over heads, as AM acts).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# agent kinds whose value of (s, g) needs the action taken at s
NEEDS_ACTION = ("crl", "am")


@torch.no_grad()
def path_values(agent: Any, kind: str, states: np.ndarray, goal: np.ndarray,
                proprio: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(T,) the agent's value of (s_t, g) from states (T, S), the goal state (S,), proprio
    (T, P) and the actions taken at those states (T, A)."""
    from goalrl.agents.observations import act_frames

    if kind == "am":
        return agent.q_values(states, goal, actions, proprio, reduce="min")
    obs, g, _ = act_frames(states, goal, "state", agent.device)  # (T, S) each
    prop = agent.proprio(proprio) if agent.proprio_dim is not None else None
    if kind == "crl":
        a = torch.as_tensor(actions, device=agent.device).float()
        logits = agent.critic(obs, a, g, prop)  # (K, T, T): [k, i, j] = f_k(s_i, a_i, g_j)
        return logits.diagonal(dim1=1, dim2=2).mean(dim=0).float().cpu().numpy()
    if not hasattr(agent, "value"):
        raise ValueError(f"a {kind} checkpoint has no value function to probe")
    return agent.value(obs, g, prop).float().mean(dim=-1).cpu().numpy()


def rank_correlation(values: np.ndarray) -> float:
    """Spearman's rho between values (T,) and time 0..T-1 (nan for a constant path)."""
    from scipy.stats import spearmanr

    if len(values) < 3 or np.ptp(values) == 0:
        return float("nan")
    return float(spearmanr(np.arange(len(values)), values).statistic)


def preference(a: np.ndarray, b: np.ndarray) -> float:
    """How often a > b, ties counting half (nan when empty): 0.5 for a value that cannot
    tell them apart."""
    if len(a) == 0:
        return float("nan")
    return float(np.mean(a > b) + 0.5 * np.mean(a == b))


def probe_checkpoint(path: str, episodes: list[Any], moved: float = 0.02) -> list[dict[str, Any]]:
    """One row per successful pusher episode (oracle.OracleEpisode, recorded), up to its first
    success: its task; ``rho``, the rank correlation of the checkpoint's values with time;
    ``arm_rho``, the same for minus the tcp's distance to the goal's (a value that only tracks
    the arm scores this); and ``object_credit``, over the steps where the objects are at least
    ``moved`` metres nearer their goal than at the start, how often the value prefers the
    state as it is to the same state with the objects put back where they started (0.5: the
    value does not see the objects' progress; ties count half)."""
    from goalrl.agents.registry import load_agent

    agent, meta = load_agent(path)
    if meta["agent_config"].get("encoder", {}).get("kind") != "state":
        raise ValueError(f"{path}: the probe reads state checkpoints; this one reads images")
    return probe_agent(agent, meta["agent"], episodes, moved)


def probe_agent(agent: Any, kind: str, episodes: list[Any], moved: float = 0.02
                ) -> list[dict[str, Any]]:
    """``probe_checkpoint`` on an agent already built (``kind``: its registry name)."""
    from goalrl.envs.state import PROPRIO_DIM

    rows = []
    for e in episodes:
        if not e.success:
            continue
        end = e.first_success_step  # after it, the pusher only stands by
        states, proprio, actions = e.states[:end], e.proprio[:end], e.actions[:end]
        v = path_values(agent, kind, states, e.goal_state, proprio, actions)  # (T,)
        put_back = states.copy()
        put_back[:, PROPRIO_DIM:] = states[0, PROPRIO_DIM:]
        v_back = path_values(agent, kind, put_back, e.goal_state, proprio, actions)  # (T,)
        scene_gap = np.linalg.norm(states[:, PROPRIO_DIM:] - e.goal_state[PROPRIO_DIM:], axis=1)
        nearer = scene_gap < scene_gap[0] - moved  # (T,)
        arm_gap = np.linalg.norm(states[:, :3] - e.goal_state[:3], axis=1)
        rows.append({
            "task": e.goal.task, "seed": e.goal.seed, "steps": int(end),
            "rho": rank_correlation(v), "arm_rho": rank_correlation(-arm_gap),
            "object_credit": preference(v[nearer], v_back[nearer]),
            "v_start": float(v[0]), "v_end": float(v[-1]),
        })
    return rows


class StateDistance:
    """The value a user has without learning: V(s, g) = -||s - g|| over the state vector (arm
    and objects alike, in metres; gripper and yaw too). The lookahead's yardstick; it has no
    actor (its own action is zero: stand still)."""

    device = torch.device("cpu")
    kind = "state"
    proprio_dim = None

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def value(self, obs: torch.Tensor, goal: torch.Tensor, proprio: Any) -> torch.Tensor:
        return -(obs - goal).norm(dim=1, keepdim=True)  # (B, 1)

    def act(self, obs: Any, goal: Any, proprio: Any) -> np.ndarray:
        return np.zeros(self.action_dim, np.float32)


def successor(env: Any, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The state (S,) and proprio (P,) one control step after ``action`` from the env's
    current state, which is left as it was (the simulator as a perfect one-step model)."""
    from goalrl.envs.state import state_vector

    snapshot = env.save_state()
    try:
        env.actuate(action)
        proprio = env.arm.proprio()
        return state_vector(proprio, env.task.scene_vector(env.current_layout())), proprio
    finally:
        env.restore_state(snapshot)
        env.remove_state(snapshot)


def simulated_successors(env: Any, actions: np.ndarray) -> np.ndarray:
    """(1, N, S) the simulator's next state for each of the actions (N, A) from the env's
    current state (a perfect one-step model: privileged)."""
    return np.stack([successor(env, a)[0] for a in actions])[None]


def lookahead_rollouts(agent: Any, kind: str, env_id: str, goals: str = "test",
                       per_task: int = 5, candidates: int = 16, seed: int = 0
                       ) -> list[dict[str, Any]]:
    """Act by one-step lookahead on a state value V(s, g) with the simulator as the model:
    goalrl.agents.lookahead's chooser (the agent's action and ``candidates`` uniform ones, not
    the read-out's perturbations of it; the one whose next state V rates highest is taken)
    with the true next states in place of a learned model's. Privileged: not a policy to
    deploy, but what the value is worth to act on if the model were perfect. One rollout per
    benchmark goal (``evaluate``'s fields: seed, goal split, task, success at the last step,
    final distance)."""
    import gymnasium as gym

    from goalrl.agents.lookahead import ModelLookahead
    from goalrl.benchmark.goals import eval_goals, eval_steps
    from goalrl.envs.registration import register_envs

    if kind in NEEDS_ACTION or not hasattr(agent, "value"):
        raise ValueError(f"lookahead needs a state value V(s, g); a {kind} agent has none")
    register_envs()
    steps = eval_steps(env_id)
    env = gym.make(env_id, image_size=8, max_episode_steps=steps)
    # its candidates, not its model; uniform, as when docs/benchmarks/value_probe.md was made
    chooser = ModelLookahead(agent, None, candidates, seed, spread=None)
    rows = []
    try:
        for goal in eval_goals(env_id, goals, per_task):
            obs, info = env.reset(seed=goal.seed, options=goal.reset_options())
            g = obs["desired_goal_state"]
            for _ in range(steps):
                actions = chooser.candidate_actions(agent.act(obs["state"], g, obs["observation"]))
                nexts = torch.as_tensor(simulated_successors(env.unwrapped, actions))
                best = int(np.argmax(chooser.space.scores(nexts, g)))  # (1, N, S) -> (N,)
                obs, _, terminated, truncated, info = env.step(actions[best])
                if terminated or truncated:
                    break
            rows.append({"seed": goal.seed, "goal_split": goal.split, "task": goal.task,
                         "success": bool(info.get("is_success")),
                         "final_distance": float(info.get("distance", float("nan")))})
    finally:
        env.close()
    return rows
