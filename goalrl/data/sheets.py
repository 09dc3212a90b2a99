"""Pictures and videos on disk: contact-sheet grids (PNG) and frame sequences (MP4/GIF).

Every writer goes through a temp file and a rename, so no half-written file is left.
"""

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


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """(H, W, 3) uint8 RGB frames as MP4 (mp4v) or GIF, chosen by the suffix of ``path``."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")  # suffix picks the format
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(
            tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
        )
    elif path.suffix.lower() == ".mp4":
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV could not open an mp4v video writer")
        try:
            for f in frames:
                writer.write(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    else:
        raise ValueError(f"video {path} must end in .mp4 or .gif")
    if not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise OSError(f"{path}: the video writer produced no file")
    os.replace(tmp, path)
    return path
