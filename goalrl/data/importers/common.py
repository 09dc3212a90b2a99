"""What every importer shares: the source description, episode checks and the writing driver.

Each format module only *reads*: it builds an ``ImportSource`` (shapes, bounds, a generator
of ``SourceEpisode``). ``run_import`` here does the writing, the checks and the resume logic,
so all formats behave the same way.

Resume: the import settings (format, resolved source path, camera, proprio key, image size)
are stored in the dataset's metadata (``meta["extra"]["import"]``). Running the same import
again into the same ``out`` appends only the source episodes after the last one imported
(an interrupted import keeps its finished episodes and picks up where it stopped); running
a *different* import into an existing dataset is refused with an error naming both.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.storage import META_FILE, DatasetError, DatasetWriter, EpisodeData, EpisodeDataset

MAX_SEED = 2**63 - 1  # the dataset keeps seeds as int64; larger ones go to info



@dataclass
class SourceEpisode:
    """One episode read from a source, or the reason it was skipped."""

    index: int  # episode number in the source (what resume counts)
    where: str  # file (+ group/episode) for messages
    data: EpisodeData | None  # frames already at image_size; None when skipped
    skip_reason: str | None = None  # why the episode was skipped (too short, ...)


@dataclass
class ImportSource:
    """What a format reader found, and a way to stream its episodes."""

    fmt: str  # one of goalrl.data.importers.FORMATS
    path: Path  # the resolved source (file or folder)
    camera: str  # image key / video key that was chosen
    num_episodes: int  # episodes in the source
    action_dim: int  # A
    action_low: np.ndarray  # (A,) float64 bounds stored in the dataset
    action_high: np.ndarray  # (A,)
    episodes: Callable[[int, int], Iterator[SourceEpisode]]  # (start, image_size) -> episodes
    proprio_key: str | None = None  # low-dim key stored as proprio
    proprio_dim: int | None = None  # P
    goal_dim: int | None = None  # G, when achieved goals are imported
    state_dim: int | None = None  # S, when state vectors (goalrl.envs.state) are imported
    has_rewards: bool | None = None  # None: decided by the first episode
    has_success: bool | None = None  # None: decided by the first episode
    env_id: str | None = None  # gymnasium id the data came from, when known
    fps: float = 10.0  # control frequency (frames per second)
    info: dict[str, Any] = field(default_factory=dict)  # JSON-able source description


# ----------------------------------------------------------------------------- shared helpers


def bounds_from_data(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Action bounds for data without a declared action space.

    Data already inside [-1, 1] (robomimic, most normalised logs) keeps the conventional
    box; otherwise the observed per-dimension range, widened where it is a single value
    (the writer needs low < high).
    """
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    if low.min() >= -1.0 and high.max() <= 1.0:
        return -np.ones_like(low), np.ones_like(high)
    flat = high <= low
    eps = 1e-3 * np.maximum(1.0, np.abs(low))
    return np.where(flat, low - eps, low), np.where(flat, high + eps, high)


def split_seed(seed: Any, info: dict) -> int | None:
    """A source seed as the dataset stores it (int64); larger seeds are kept in ``info``."""
    if seed is None:
        return None
    seed = int(seed)
    if 0 <= seed <= MAX_SEED:
        return seed
    info["source_seed"] = str(seed)  # e.g. Minari's 64-bit auto-seeds
    return None


def check_finite(arr: np.ndarray | None, where: str, name: str) -> None:
    """Raise a DatasetError naming the field when ``arr`` holds NaN or inf."""
    if arr is None or arr.dtype.kind != "f":
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(
            f"{where}: field {name!r} has {int(bad.sum())} NaN/inf values (first at {pos})"
        )


def check_episode(ep: EpisodeData, source: ImportSource, image_size: int, where: str) -> None:
    """Shape and value checks that name the *source* file, episode and field."""
    t = len(ep.actions)
    want_images = (t + 1, image_size, image_size, 3)
    if ep.images.shape != want_images or ep.images.dtype != np.uint8:
        raise DatasetError(
            f"{where}: field 'images' has shape {ep.images.shape} {ep.images.dtype}, "
            f"expected {want_images} uint8 (T={t} actions)"
        )
    if ep.actions.ndim != 2 or ep.actions.shape[1] != source.action_dim:
        raise DatasetError(
            f"{where}: field 'actions' has shape {ep.actions.shape}, expected (T, "
            f"{source.action_dim}) like the first episode (inconsistent shapes across episodes)"
        )
    dims = {"proprio": source.proprio_dim, "achieved_goal": source.goal_dim,
            "state": source.state_dim}
    for name, dim in dims.items():
        arr = getattr(ep, name)
        if arr is not None and arr.shape != (t + 1, dim):
            raise DatasetError(
                f"{where}: field {name!r} has shape {arr.shape}, expected ({t + 1}, {dim})"
                " (inconsistent shapes across episodes)"
            )
    for name in ("rewards", "success"):
        arr = getattr(ep, name)
        want = t if name == "rewards" else t + 1
        if arr is not None and arr.shape != (want,):
            raise DatasetError(f"{where}: field {name!r} has shape {arr.shape}, expected ({want},)")
    for name in ("actions", "proprio", "rewards", "achieved_goal", "state"):
        check_finite(getattr(ep, name), where, name)


# ----------------------------------------------------------------------------- the driver


def import_key(source: ImportSource, image_size: int) -> dict:
    """The settings that make two imports 'the same' (for resume)."""
    return {
        "format": source.fmt,
        "src": str(source.path),
        "camera": source.camera,
        "proprio": source.proprio_key,
        "image_size": int(image_size),
    }


def _resume_point(out: Path, key: dict) -> int:
    """Source episode to start from: 0 for a new dataset, after the last one to resume."""
    meta_path = out / META_FILE
    if not meta_path.is_file():
        return 0
    with EpisodeDataset(out) as ds:
        previous = ds.meta.get("extra", {}).get("import")
        if previous != key:
            made_by = (f"an import of {previous}" if previous
                       else f"source={ds.meta.get('source')!r}")
            raise DatasetError(
                f"{out}: already holds a dataset ({made_by}), which is not this import "
                f"({key}); choose another out= or delete the folder"
            )
        if ds.num_episodes == 0:
            return 0
        last = ds.episode_info(ds.num_episodes - 1).get("source_episode", ds.num_episodes - 1)
        return int(last) + 1


def run_import(source: ImportSource, out: str | Path, *, image_size: int = 64,
               progress: bool = True) -> dict:
    """Stream the episodes of ``source`` into the dataset at ``out``; return a summary."""
    if int(image_size) < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    out = Path(out).expanduser().resolve()
    key = import_key(source, image_size)
    start = _resume_point(out, key)
    imported, skipped = 0, []
    writer = DatasetWriter(
        out,
        image_shape=(image_size, image_size, 3),
        action_dim=source.action_dim,
        action_low=source.action_low.tolist(),
        action_high=source.action_high.tolist(),
        proprio_dim=source.proprio_dim,
        goal_dim=source.goal_dim,
        state_dim=source.state_dim,
        env_id=source.env_id,
        source=f"import:{source.fmt}",
        fps=source.fps,
        extra_meta={"import": key, "source_info": _jsonable(source.info)},
        has_rewards=source.has_rewards,
        has_success=source.has_success,
    )
    with writer, _Progress(source, start, progress) as bar:
        for item in source.episodes(start, int(image_size)):
            bar.update(1)
            if item.data is None:
                skipped.append({"episode": item.index, "reason": item.skip_reason})
                continue
            check_episode(item.data, source, int(image_size), item.where)
            item.data.info = {"source_episode": item.index, **item.data.info}
            try:
                writer.append(item.data)
            except DatasetError as e:  # name the source too, not only the output folder
                raise DatasetError(f"{item.where}: {e}") from None
            imported += 1
        meta = writer.meta
    return {
        "format": source.fmt,  # source format
        "src": str(source.path),  # resolved source path
        "out": str(out),  # goalrl dataset folder written
        "camera": source.camera,  # image / video key imported
        "proprio": source.proprio_key,  # low-dim key stored as proprio (None: none)
        "image_size": int(image_size),  # stored frames are image_size x image_size x 3
        "source_episodes": source.num_episodes,  # episodes found in the source
        "resumed_from": start,  # first source episode read by this run (0: fresh import)
        "episodes_imported": imported,  # episodes appended by this run
        "episodes_skipped": skipped,  # [{episode, reason}] source episodes left out
        "num_episodes": meta["num_episodes"],  # episodes now in the dataset
        "num_frames": meta["num_frames"],  # frames now in the dataset
        "num_transitions": meta["num_transitions"],  # (o, a, o') transitions now in it
        "action_dim": source.action_dim,  # A
        "action_low": meta["action_low"],  # (A,) stored lower action bounds
        "action_high": meta["action_high"],  # (A,) stored upper action bounds
        "fps": source.fps,  # frames per second recorded in the dataset
        "env_id": source.env_id,  # gymnasium id of the source, when known
    }


def _jsonable(obj: Any) -> Any:
    """Source info made JSON-safe: numpy -> Python, NaN/inf -> None, other objects -> str."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


class _Progress:
    """tqdm bar over source episodes when available and wanted; a no-op otherwise."""

    def __init__(self, source: ImportSource, start: int, enabled: bool) -> None:
        self.bar = None
        total = max(source.num_episodes - start, 0)
        if enabled and total and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"import {source.fmt}", unit="ep")

    def __enter__(self) -> _Progress:
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
