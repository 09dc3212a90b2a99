"""Checks of an episode before it is appended: shapes, dtypes, finite values, bounds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from goalrl.data.storage.format import (
    OPTIONAL_FLAGS,
    DatasetError,
    EpisodeData,
    FieldSpec,
    dumps,
)


def validate_seed(seed: Any, where: str) -> int:
    if seed is None:
        return -1
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"{where}: field 'seed' must be a non-negative int or None, "
                           f"got {seed!r}")
    return int(seed)


def validate_info(info: Any, where: str) -> dict:
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise DatasetError(f"{where}: field 'info' must be a dict, got {type(info).__name__}")
    try:
        return json.loads(dumps(info))
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: field 'info' is not JSON-serialisable ({e})") from None


def validate_episode(
    ep: EpisodeData,
    specs: dict[str, FieldSpec],
    bounds: tuple[np.ndarray, np.ndarray] | None,
    where: str,
) -> dict[str, np.ndarray]:
    """Check an episode against the dataset's specs; return on-disk, frame-aligned arrays."""
    images = ep.images
    if not isinstance(images, np.ndarray):
        raise DatasetError(f"{where}: field 'images' must be a numpy array, "
                           f"got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise DatasetError(f"{where}: field 'images' has dtype {images.dtype}, expected uint8")
    image_shape = specs["images"].shape
    if images.ndim != 4 or images.shape[1:] != image_shape:
        raise DatasetError(f"{where}: field 'images' has shape {images.shape}, "
                           f"expected (T+1, {', '.join(map(str, image_shape))})")
    frames = len(images)
    if frames < 2:
        raise DatasetError(f"{where}: episode has {max(frames - 1, 0)} steps ({frames} frames);"
                           " at least 1 step (2 frames) is required")
    out = {"images": np.ascontiguousarray(images)}
    for name in ("actions", "proprio", "rewards", "success", "achieved_goal", "state"):
        value = getattr(ep, name)
        if name not in specs:
            if value is not None:
                hint = "the dataset has no such field"
                if name in ("proprio", "achieved_goal", "state"):
                    dim = {"proprio": "proprio_dim", "achieved_goal": "goal_dim",
                           "state": "state_dim"}[name]
                    hint += f" (create the dataset with {dim})"
                elif name in OPTIONAL_FLAGS:
                    hint += f" (earlier episodes had none; has_{name}=False)"
                raise DatasetError(f"{where}: field {name!r} given but {hint}")
            continue
        if value is None:
            raise DatasetError(f"{where}: field {name!r} is missing (the dataset has it)")
        out[name] = _validate_field(value, specs[name], frames, where)
    if bounds is not None:
        low, high = bounds
        acts = out["actions"][:-1]
        bad = np.argwhere((acts < low - 1e-5) | (acts > high + 1e-5))
        if len(bad):
            t, d = bad[0]
            raise DatasetError(
                f"{where}: field 'actions': actions[{t}, {d}] = {acts[t, d]:.6g} is outside "
                f"[{low[d]:.6g}, {high[d]:.6g}] ({len(bad)} values out of bounds; "
                "normalise them or pass check_action_bounds=False)"
            )
    return out


def _validate_field(value: Any, spec: FieldSpec, frames: int, where: str) -> np.ndarray:
    arr = np.asarray(value)
    rows = frames - 1 if spec.per_step else frames
    want = (rows, *spec.shape)
    label = f"{where}: field {spec.name!r}"
    if spec.name == "success":
        if arr.dtype != np.bool_ and not (arr.dtype.kind in "iu" and np.isin(arr, (0, 1)).all()):
            raise DatasetError(f"{label} has dtype {arr.dtype}, expected bool (or 0/1 ints)")
    elif arr.dtype.kind != "f":
        raise DatasetError(f"{label} has dtype {arr.dtype}, expected floating point (float32)")
    if arr.shape != want:
        raise DatasetError(f"{label} has shape {arr.shape}, expected {want} "
                           f"(T={frames - 1} steps, {frames} frames)")
    disk = np.zeros((frames, *spec.shape), dtype=np.dtype(spec.dtype))  # padded with zeros
    with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, reported below
        disk[:rows] = arr
    if disk.dtype.kind == "f":
        finite = np.isfinite(disk)
        if not finite.all():
            pos = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise DatasetError(f"{label} has a non-finite value {disk[pos]} at index {pos} "
                               f"({int((~finite).sum())} non-finite values)")
    return disk


def normalise_bound(value: float | Sequence[float], dim: int, name: str) -> list[float]:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (dim,)) if np.ndim(value) == 0 \
        else np.asarray(value, dtype=np.float64)
    if arr.shape != (dim,) or not np.all(np.isfinite(arr)):
        raise DatasetError(f"{name} must be a finite scalar or {dim} values, got {value!r}")
    return [float(v) for v in arr]
