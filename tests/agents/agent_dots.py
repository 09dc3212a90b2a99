"""A tiny goal-reaching problem for learning tests: a dot on a 2-D grid in a 16x16 image.

State (x, y) in {0..G-1}^2; the image is black with a 2x2 white dot at pixel (1 + 2y, 1 + 2x).
Action a in [-1, 1]^2 moves the dot one cell along its dominant axis (argmax |a_i|), in the
direction of sign(a_i), clipped at the walls: four moves, so a random action reduces the distance
to the goal 25-50% of the time. Data: random-walk episodes with uniform random actions,
relabeled in the test itself (hindsight goals from the same episode, geometric offset; optional
chained goals from anywhere).
"""

from __future__ import annotations

import numpy as np

from goalrl.data import keys as K

GRID = 7
SIZE = 16


def render(states: np.ndarray) -> np.ndarray:
    """(..., 2) int states -> (..., 16, 16, 3) uint8 images."""
    states = np.asarray(states)
    img = np.zeros((*states.shape[:-1], SIZE, SIZE, 3), dtype=np.uint8)
    flat = img.reshape(-1, SIZE, SIZE, 3)
    for i, (x, y) in enumerate(states.reshape(-1, 2)):
        flat[i, 1 + 2 * y : 3 + 2 * y, 1 + 2 * x : 3 + 2 * x] = 255
    return img


def step(states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Vectorised dynamics: (B, 2) states, (B, 2) actions -> (B, 2) next states."""
    axis = np.abs(actions).argmax(axis=-1)  # (B,)
    move = np.zeros_like(states)
    move[np.arange(len(states)), axis] = np.where(actions[np.arange(len(states)), axis] >= 0, 1, -1)
    return np.clip(states + move, 0, GRID - 1)


def collect(episodes: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random-walk data: states (E, T + 1, 2) int, actions (E, T, 2) float32."""
    states = np.zeros((episodes, length + 1, 2), dtype=np.int64)
    actions = rng.uniform(-1, 1, (episodes, length, 2)).astype(np.float32)
    states[:, 0] = rng.integers(0, GRID, (episodes, 2))
    for t in range(length):
        states[:, t + 1] = step(states[:, t], actions[:, t])
    return states, actions


def sample_batch(
    states: np.ndarray,
    actions: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    *,
    p_geom: float = 0.3,
    p_chain: float = 0.0,
) -> dict[str, np.ndarray]:
    """Relabeled batch: goal = state t + k with k ~ Geometric(p_geom) clipped to the episode."""
    e_count, length = actions.shape[:2]
    e = rng.integers(0, e_count, batch_size)
    t = rng.integers(0, length, batch_size)
    k = np.minimum(rng.geometric(p_geom, batch_size), length - t)  # (B,) >= 1
    goal_state = states[e, t + k]
    chained = rng.random(batch_size) < p_chain
    n_chain = int(chained.sum())
    goal_state[chained] = states[
        rng.integers(0, e_count, n_chain), rng.integers(0, length + 1, n_chain)
    ]
    return {
        K.OBS_IMAGE: render(states[e, t]),
        K.NEXT_OBS_IMAGE: render(states[e, t + 1]),
        K.GOAL_IMAGE: render(goal_state),
        K.ACTION: actions[e, t],
        K.REACHED: (k == 1) & ~chained,
        K.CHAINED: chained,
        K.OFFSET: np.where(chained, -1, k),
    }


def eval_pairs(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (state, goal) pairs with goal != state: (count, 2) each."""
    s = rng.integers(0, GRID, (count * 2, 2))
    g = rng.integers(0, GRID, (count * 2, 2))
    keep = np.abs(s - g).sum(1) > 0
    return s[keep][:count], g[keep][:count]


def improvement_rate(states: np.ndarray, goals: np.ndarray, actions: np.ndarray) -> float:
    """Fraction of states where the action strictly reduces the L1 distance to the goal."""
    before = np.abs(states - goals).sum(1)
    after = np.abs(step(states, actions) - goals).sum(1)
    return float(np.mean(after < before))
