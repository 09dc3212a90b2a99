"""Import robomimic HDF5 files (``data/demo_i/obs/<key>``, ``actions``, ...).

Layout read::

    data                      attrs: env_args (JSON: env_name, env_kwargs.control_freq, ...)
    data/demo_<i>/actions     (T, A)
    data/demo_<i>/obs/<key>   (T, H, W, 3) uint8 images, (T, D) low-dim
    data/demo_<i>/next_obs/<key>   (optional) the observation after each action
    data/demo_<i>/rewards, dones   (T,) (optional)

Frames -> transitions: with ``next_obs/<camera>`` the final observation is its last frame,
so T actions give T+1 frames and every action is kept. Without it (image-only
extractions often drop next_obs) the last action has no next observation and is dropped,
as for LeRobot: T frames, T-1 transitions. Demos are read in numeric order (demo_2 before
demo_10), frames in slices so that a long demo is never held at full resolution.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.images import prepare_frames
from goalrl.data.importers.common import ImportSource, SourceEpisode, bounds_from_data, run_import
from goalrl.data.storage import DatasetError, EpisodeData

DEFAULT_FPS = 20.0  # robosuite's default control frequency
SLICE = 256  # frames read and resized at a time


def import_robomimic(
    src: str | Path,
    out: str | Path,
    *,
    camera: str | None = None,
    image_size: int = 64,
    proprio: str | None = None,
    fps: float | None = None,
    progress: bool = True,
) -> dict:
    """Import a robomimic HDF5 file (with image observations) into the dataset ``out``."""
    source = open_robomimic(src, camera=camera, proprio=proprio, fps=fps)
    return run_import(source, out, image_size=image_size, progress=progress)


def _open_file(path: Path) -> Any:
    import h5py

    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e})") from None


def demo_names(data: Any, where: Path) -> list[str]:
    """Demo groups sorted by their number (demo_2 < demo_10)."""
    names = [k for k in data.keys() if re.fullmatch(r"demo_\d+", k)]
    if not names:
        raise DatasetError(f"{where}: group 'data' has no demo_<i> groups")
    return sorted(names, key=lambda k: int(k.split("_")[1]))


def pick_camera(obs: Any, camera: str | None, where: str) -> str:
    keys = sorted(obs.keys())
    if camera is not None:
        if camera not in obs:
            raise DatasetError(f"{where}: camera={camera!r} is not in obs/; keys: {keys}")
        if obs[camera].ndim not in (3, 4):
            raise DatasetError(f"{where}: obs/{camera} has shape {obs[camera].shape}, "
                               "not an image sequence")
        return camera
    images = [k for k in keys if obs[k].ndim == 4 and obs[k].dtype == np.uint8]
    if len(images) == 1:
        return images[0]
    if not images:
        raise DatasetError(f"{where}: no image observations (uint8, (T, H, W, C)) in obs/; "
                           f"keys: {keys}")
    raise DatasetError(f"{where}: several image observations {images}; choose one with camera=")


def open_robomimic(
    src: str | Path, *, camera: str | None = None, proprio: str | None = None,
    fps: float | None = None,
) -> ImportSource:
    """Inspect a robomimic file and return an ImportSource that streams its demos."""
    path = Path(src).expanduser().resolve()
    with _open_file(path) as f:
        if "data" not in f:
            raise DatasetError(f"{path}: missing group 'data' (not a robomimic file?)")
        data = f["data"]
        names = demo_names(data, path)
        first = data[names[0]]
        where0 = f"{path}: data/{names[0]}"
        for key in ("actions", "obs"):
            if key not in first:
                raise DatasetError(f"{where0}: missing {key!r}")
        cam = pick_camera(first["obs"], camera, where0)
        action_dim = _action_dim(data, names, path)
        proprio_dim = None
        if proprio:
            if proprio not in first["obs"]:
                raise DatasetError(f"{where0}: proprio={proprio!r} is not in obs/; keys: "
                                   f"{sorted(first['obs'].keys())}")
            proprio_dim = int(np.prod(first["obs"][proprio].shape[1:]))
        has_rewards = "rewards" in first
        env_args = _env_args(data, path)
        low, high = bounds_from_data(*_action_range(data, names, path, action_dim))

    def episodes(start: int, image_size: int) -> Iterator[SourceEpisode]:
        with _open_file(path) as f:
            for i in range(start, len(names)):
                yield _read_demo(f["data"], names[i], i, path, cam, proprio, has_rewards,
                                 image_size)

    kwargs = env_args.get("env_kwargs") or {}
    return ImportSource(
        fmt="robomimic",
        path=path,
        camera=cam,
        num_episodes=len(names),
        action_dim=action_dim,
        action_low=low,
        action_high=high,
        episodes=episodes,
        proprio_key=proprio,
        proprio_dim=proprio_dim,
        has_rewards=has_rewards,
        has_success=False,
        env_id=env_args.get("env_name"),
        fps=float(fps or kwargs.get("control_freq") or DEFAULT_FPS),
        info={"env_args": env_args, "demos": len(names)},
    )


def _env_args(data: Any, path: Path) -> dict:
    raw = data.attrs.get("env_args")
    if raw is None:
        return {}
    try:
        out = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: data attrs 'env_args' is not valid JSON ({e})") from None
    return out if isinstance(out, dict) else {}


def _action_dim(data: Any, names: list[str], path: Path) -> int:
    """Action size of the first demo with actions (an empty demo's (0,) says nothing)."""
    for name in names:
        actions = data[name].get("actions")
        if actions is not None and actions.ndim >= 1 and actions.shape[0] > 0:
            return int(np.prod(actions.shape[1:]))
    raise DatasetError(f"{path}: every demo has 0 actions (or none): nothing to import")


def _action_range(data: Any, names: list[str], path: Path, action_dim: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Min/max over every demo's actions (small arrays).

    Non-finite rows and demos of another action size are left out here: they are reported,
    naming their demo, when the import reaches them (after the earlier demos are kept).
    """
    low = high = None
    for name in names:
        if "actions" not in data[name]:
            continue  # reported with its demo when it is imported
        try:
            a = np.asarray(data[name]["actions"][()], dtype=np.float64)
        except OSError as e:
            raise DatasetError(f"{path}: data/{name}: field 'actions' unreadable ({e})") from None
        if a.ndim == 0 or not len(a):
            continue  # an empty demo is skipped, naming it, when the import reaches it
        a = a.reshape(len(a), -1)
        a = a[np.isfinite(a).all(1)]
        if not len(a) or a.shape[1] != action_dim:
            continue
        low = a.min(0) if low is None else np.minimum(low, a.min(0))
        high = a.max(0) if high is None else np.maximum(high, a.max(0))
    if low is None:
        raise DatasetError(f"{path}: no finite actions in any demo")
    return low, high


def _frames(ds: Any, rows: slice, image_size: int, where: str, key: str) -> np.ndarray:
    """Read ``ds[rows]`` in slices and resize as it goes: (n, S, S, 3)."""
    start, stop = rows.start, rows.stop
    parts = []
    for s in range(start, stop, SLICE):
        try:
            chunk = ds[s : min(s + SLICE, stop)]
        except OSError as e:
            raise DatasetError(f"{where}: field {key!r} unreadable ({e})") from None
        try:
            parts.append(prepare_frames(chunk, image_size))
        except ValueError as e:
            raise DatasetError(f"{where}: field {key!r}: {e}") from None
    return np.concatenate(parts)


def _read_demo(data: Any, name: str, i: int, path: Path, cam: str, proprio: str | None,
               has_rewards: bool, image_size: int) -> SourceEpisode:
    where = f"{path}: data/{name}"
    g = data[name]
    for key in ("actions", f"obs/{cam}") + ((f"obs/{proprio}",) if proprio else ()) + \
            (("rewards",) if has_rewards else ()):
        if key not in g:
            raise DatasetError(f"{where}: missing {key!r}")
    try:
        actions = np.asarray(g["actions"][()], dtype=np.float32)  # (T, A)
    except OSError as e:
        raise DatasetError(f"{where}: field 'actions' unreadable ({e})") from None
    t = len(actions) if actions.ndim else 0
    if t == 0:  # robomimic demos hold T >= 1 actions; an empty one has nothing to learn from
        return SourceEpisode(i, where, None, f"data/{name} has 0 actions: no transition")
    actions = actions.reshape(t, -1)
    images_ds = g[f"obs/{cam}"]
    if len(images_ds) != t:
        raise DatasetError(f"{where}: field 'obs/{cam}' has {len(images_ds)} frames, "
                           f"'actions' has {t}")
    nxt = "next_obs" in g and cam in g["next_obs"] and (
        not proprio or proprio in g["next_obs"])
    if t < (1 if nxt else 2):
        return SourceEpisode(i, where, None, f"{t} step(s): no transition")
    frames = _frames(images_ds, slice(0, t), image_size, where, f"obs/{cam}")
    if nxt:  # the final observation: last frame of next_obs
        last = _frames(g[f"next_obs/{cam}"], slice(t - 1, t), image_size, where,
                       f"next_obs/{cam}")
        frames = np.concatenate([frames, last])  # (T+1, S, S, 3)
    else:
        actions = actions[: t - 1]  # the last action's result was not recorded
    state = None
    if proprio:
        state = np.asarray(g[f"obs/{proprio}"][()], dtype=np.float32).reshape(t, -1)
        if nxt:
            final = np.asarray(g[f"next_obs/{proprio}"][-1:], dtype=np.float32).reshape(1, -1)
            state = np.concatenate([state, final])  # (T+1, P)
    rewards = None
    if has_rewards:
        rewards = np.asarray(g["rewards"][()], dtype=np.float32).reshape(-1)[: len(actions)]
    info: dict[str, Any] = {"demo": name, "next_obs": bool(nxt)}
    if "dones" in g:
        info["done"] = bool(np.asarray(g["dones"][()]).reshape(-1)[-1])
    episode = EpisodeData(images=frames, actions=actions, proprio=state, rewards=rewards,
                          info=info)
    return SourceEpisode(i, where, episode)
