"""Contact sheets: grids of labelled frames written as PNG."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


def image_grid(
    rows: list[list[np.ndarray]], labels: tuple[str, ...] | list[str] = (), scale: int = 2
) -> np.ndarray:
    """(R*h + header, C*w, 3) uint8 grid of (h, w, 3) frames, upscaled ``scale``x, labelled."""
    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one row with one image")
    h, w = rows[0][0].shape[:2]
    h, w = h * scale, w * scale
    pad = 2
    header = 14 if labels else 0
    n_cols = max(len(r) for r in rows)
    grid = np.full(
        (header + len(rows) * (h + pad), n_cols * (w + pad), 3), 255, dtype=np.uint8
    )  # (H, W, 3) white background
    for c, label in enumerate(labels):
        cv2.putText(
            grid,
            str(label),
            (c * (w + pad) + 2, 10),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.3,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            big = cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST)
            y, x = header + r * (h + pad), c * (w + pad)
            grid[y : y + h, x : x + w] = big
    return grid


def write_png_atomic(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB image as PNG via a temp file + rename (never a half-written PNG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
