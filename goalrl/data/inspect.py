"""Dataset inspection: JSON info, a contact sheet PNG, one episode as an MP4.

Behind ``goalrl data info`` and ``goalrl data show``. Everything here reads through
``EpisodeDataset`` and never loads more than one episode's frames at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from goalrl.data.images import frames_to_rgb
from goalrl.data.sheets import draw_label, image_grid, write_png_atomic, write_video
from goalrl.data.storage import CHUNKS_DIR, DatasetError, EpisodeDataset

MIN_TILE = 96  # tiles are upscaled (nearest) to at least this many pixels


# ----------------------------------------------------------------------------- info


def _size_on_disk(root: Path, fields: dict) -> tuple[int, dict[str, int]]:
    """Total bytes under ``root`` and bytes per field file across chunks."""
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    per_field = {}
    for name, spec in fields.items():
        files = (root / CHUNKS_DIR).glob(f"*/{spec['file']}")
        per_field[name] = int(sum(p.stat().st_size for p in files))
    return int(total), per_field


def _length_stats(steps: np.ndarray) -> dict:
    if not len(steps):
        return {"min": 0, "max": 0, "mean": 0.0, "median": 0.0}
    return {"min": int(steps.min()), "max": int(steps.max()),
            "mean": round(float(steps.mean()), 3), "median": float(np.median(steps))}


def dataset_info(path: str | Path) -> dict:
    """Counts, shapes, sizes, statistics and provenance of a goalrl dataset (JSON-able)."""
    root = Path(path).expanduser()
    with EpisodeDataset(root) as ds:
        meta = ds.meta
        total, per_field = _size_on_disk(root, meta["fields"])
        steps = ds.episode_lengths - 1  # (E,) transitions per episode
        info: dict[str, Any] = {
            "path": str(root.resolve()),  # dataset folder
            "format": f"{meta['format']} v{meta['format_version']}",  # on-disk format
            "fingerprint": ds.fingerprint(),  # short hash of shapes + episodes
            "num_episodes": ds.num_episodes,  # episodes
            "num_frames": ds.num_frames,  # observations, incl. each episode's final one
            "num_transitions": ds.num_transitions,  # (o, a, o') steps
            "episode_length": _length_stats(steps),  # steps per episode
            "image_shape": list(ds.image_shape),  # (H, W, 3) uint8 frames
            "action_dim": ds.action_dim,  # A
            "proprio_dim": ds.proprio_dim,  # P, or None without proprio
            "goal_dim": ds.goal_dim,  # G, or None without achieved goals
            "state_dim": ds.state_dim,  # S, or None without the state field
            "fields": list(ds.fields),  # stored per-frame fields
            "action_low": meta["action_low"],  # (A,) action box
            "action_high": meta["action_high"],  # (A,)
            "action_stats": meta.get("action_stats"),  # count/mean/std/min/max per dim
            "size_bytes": total,  # bytes on disk, all files
            "field_bytes": per_field,  # bytes on disk per field
            "source": meta.get("source"),  # collect, import:<format>, ...
            "env_id": meta.get("env_id"),  # gymnasium id, when known
            "fps": meta.get("fps"),  # frames per second
            "created": meta.get("created"),  # UTC creation time
            "updated": meta.get("updated"),  # UTC time of the last commit
            "seeded_episodes": int((ds.seeds >= 0).sum()),  # episodes with a recorded seed
            "extra": meta.get("extra", {}),  # import settings / writer extras
        }
        if ds.rewards is not None:
            info["reward_stats"] = meta.get("stats", {}).get("rewards")  # per-step rewards
        if ds.success is not None:  # share of episodes whose last frame is a success
            info["final_success_rate"] = round(float(ds.success[ds.episode_ends].mean()), 4) \
                if ds.num_episodes else None
    return info


# ----------------------------------------------------------------------------- contact sheet


def pick_episodes(num_episodes: int, max_episodes: int) -> list[int]:
    """Up to ``max_episodes`` episode indices spread evenly over the dataset."""
    if num_episodes <= max_episodes:
        return list(range(num_episodes))
    return sorted({int(round(x)) for x in np.linspace(0, num_episodes - 1, max_episodes)})


def contact_sheet(path: str | Path, out_png: str | Path, *, max_episodes: int = 16) -> dict:
    """One row per episode (first, middle, last frame) labelled with its episode, seed and
    length; each frame with its step. PNG written atomically."""
    if max_episodes < 1:
        raise ValueError(f"max_episodes must be >= 1, got {max_episodes}")
    with EpisodeDataset(Path(path).expanduser()) as ds:
        if ds.num_episodes == 0:
            raise DatasetError(f"{ds.root}: the dataset has no episodes to show")
        h, w = ds.image_shape[:2]
        scale = max(1, -(-MIN_TILE // max(h, w)))  # ceil: tiles of at least MIN_TILE px
        episodes = pick_episodes(ds.num_episodes, max_episodes)
        rows, row_labels = [], []
        for e in episodes:
            start, n = int(ds.episode_starts[e]), int(ds.episode_lengths[e])
            steps = (0, (n - 1) // 2, n - 1)
            # grayscale datasets are shown as RGB: (3, h, w, 1|3) -> (3, h, w, 3)
            frames = frames_to_rgb(ds.images(np.array([start + t for t in steps])))
            rows.append([_step_tile(frame, t, scale) for t, frame in zip(steps, frames)])
            seed = int(ds.seeds[e])
            row_labels.append((f"ep {e}", f"seed {seed}" if seed >= 0 else "no seed",
                               f"T={n - 1}"))
    sheet = image_grid(rows, ("first", "middle", "last"), scale=1, row_labels=row_labels)
    write_png_atomic(out_png, sheet)
    return {
        "out": str(Path(out_png).resolve()),  # PNG written
        "episodes": episodes,  # episode index of each row
        "width": int(sheet.shape[1]),  # pixels
        "height": int(sheet.shape[0]),  # pixels
    }


def _step_tile(frame: np.ndarray, step: int, scale: int) -> np.ndarray:
    """``frame`` upscaled ``scale``x (nearest) with its step written on a dark box."""
    h, w = frame.shape[:2]
    tile = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    draw_label(tile, f"t={step}", (1, 1), scale=0.35)
    return tile


# ----------------------------------------------------------------------------- video


def episode_video(path: str | Path, episode: int, out_mp4: str | Path, *,
                  fps: float | None = None, scale: int = 4) -> dict:
    """Write one episode's frames as an MP4 (H.264), upscaled ``scale``x (nearest)."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    with EpisodeDataset(Path(path).expanduser()) as ds:
        if not -ds.num_episodes <= episode < ds.num_episodes:
            raise DatasetError(f"{ds.root}: episode {episode} out of range "
                               f"({ds.num_episodes} episodes)")
        frames = frames_to_rgb(ds.episode(episode).images)  # (T+1, H, W, 1|3) -> (.., 3)
        rate = float(fps or ds.meta.get("fps") or 10.0)
    h, w = frames.shape[1] * scale, frames.shape[2] * scale
    big = [cv2.resize(f, (w, h), interpolation=cv2.INTER_NEAREST) for f in frames]
    out = write_video(out_mp4, big, rate)
    return {
        "out": str(out.resolve()),  # MP4 written
        "episode": int(episode),  # episode shown
        "frames": int(len(frames)),  # frames in the video (T+1)
        "fps": rate,  # playback frames per second
        "size": [int(w), int(h)],  # video width, height in pixels
    }
