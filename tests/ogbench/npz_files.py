"""Hand-written OGBench .npz files for the importer tests (no ogbench package needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def raw_npz(path: Path, lengths: list[int], *, dim: int = 4, pixels: int = 0,
            **fields: np.ndarray) -> Path:
    """OGBench's raw layout: episodes of ``lengths`` frames, observations row i = i (state,
    (N, dim) float32) or frames filled with i % 256 (pixels > 0: (N, pixels, pixels, 3)),
    actions row i = i / 1000, terminals 1 on each episode's last frame. ``fields`` replace
    or add arrays (None drops one)."""
    n = sum(lengths)
    rows = np.arange(n, dtype=np.float32)
    if pixels:
        observations = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None],
                                       (n, pixels, pixels, 3)).copy()
    else:
        observations = np.repeat(rows[:, None], dim, axis=1)  # (N, dim)
    terminals = np.zeros(n, dtype=bool)
    terminals[np.cumsum(lengths) - 1] = True
    arrays = {"observations": observations,
              "actions": np.repeat(rows[:, None] / 1000, 5, axis=1),  # (N, 5) in [-1, 1]
              "terminals": terminals,
              "qpos": np.zeros((n, 3), np.float32)}
    arrays.update(fields)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def load_like_ogbench(path: Path) -> dict[str, np.ndarray]:
    """OGBench's load_dataset(compact_dataset=False) rewritten here, for files without the
    ogbench package: transitions with next_observations, the last frame of each episode
    dropped and terminals moved onto the last transition."""
    file = np.load(path)
    terminals = file["terminals"].astype(np.float32)
    keep = terminals == 0  # frames with a next observation in their episode
    following = np.concatenate([[False], keep[:-1]])
    return {"observations": file["observations"][keep],
            "actions": file["actions"][keep],
            "next_observations": file["observations"][following],
            "terminals": np.concatenate([terminals[1:], [1.0]])[keep]}
