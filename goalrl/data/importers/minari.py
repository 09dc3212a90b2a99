"""Import Minari datasets (as written by ``minari.DataCollector``) into goalrl.

``src`` is a local path (the dataset folder ``<root>/<id>`` or its ``data`` folder) or a
dataset id resolved in the local Minari root (``MINARI_DATASETS_PATH`` or
``~/.minari/datasets``). Nothing is ever downloaded: fetch remote datasets with
``minari download <id>`` first.

Reading goes through minari's own storage classes, so every data format Minari writes
(hdf5, arrow, parquet) and its JPEG-encoded image observations load the same way.
Minari keeps N+1 observations and N actions per episode, the goalrl layout, so an episode
maps one to one. Dict (also nested) observation spaces are flattened with ``/`` in key
names; ``camera=`` picks the image key (needed when there are several), ``proprio=`` an
optional low-dim key, a top-level ``achieved_goal`` vector (gymnasium GoalEnv) is kept
as the achieved goal and a top-level ``state`` vector (what goalrl's exporter writes) as the
state that state encoders read. ``success`` comes from recorded infos (``is_success`` /
``success``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.images import prepare_frames
from goalrl.data.importers.common import (
    ImportSource,
    SourceEpisode,
    bounds_from_data,
    run_import,
    split_seed,
)
from goalrl.data.storage import DatasetError, EpisodeData

SUCCESS_INFO_KEYS = ("is_success", "success")  # info keys read as per-frame success
GOAL_KEY = "achieved_goal"  # GoalEnv key kept as the achieved goal
STATE_KEY = "state"  # kept as the state field (goalrl.envs.state)
DEFAULT_FPS = 10.0  # Minari stores no control frequency
PLAIN_KEY = "observation"  # the name of a non-Dict observation


def import_minari(
    src: str | Path,
    out: str | Path,
    *,
    camera: str | None = None,
    image_size: int = 64,
    proprio: str | None = None,
    fps: float | None = None,
    progress: bool = True,
) -> dict:
    """Import a local Minari dataset (path or id) into the goalrl dataset folder ``out``."""
    source = open_minari(src, camera=camera, proprio=proprio, fps=fps)
    return run_import(source, out, image_size=image_size, progress=progress)


# ----------------------------------------------------------------------------- locating


def resolve_minari_path(src: str | Path) -> Path:
    """The folder holding ``metadata.json`` for a path or a local dataset id."""
    path = Path(src).expanduser()
    if path.exists():
        for cand in (path, path / "data"):
            if (cand / "metadata.json").is_file():
                return cand.resolve()
        raise DatasetError(f"{path}: not a Minari dataset (no metadata.json in it or in data/)")
    from minari.storage.datasets_root_dir import get_dataset_path

    root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
    try:
        cand = get_dataset_path(str(src)) / "data"
    except OSError as e:
        raise DatasetError(f"{src}: cannot read the local Minari root {root} ({e})") from None
    if (cand / "metadata.json").is_file():
        return cand.resolve()
    raise DatasetError(
        f"{src}: no such path, and no local Minari dataset with that id in {root} "
        f"(goalrl never downloads; run `minari download {src}` first)"
    )


def _open(data_path: Path) -> Any:
    import minari

    try:
        return minari.MinariDataset(data_path)
    except Exception as e:  # noqa: BLE001 - h5py/json/pyarrow errors all mean "cannot open"
        raise DatasetError(f"{data_path}: cannot open Minari dataset ({type(e).__name__}: {e})"
                           ) from None


# ----------------------------------------------------------------------------- spaces


def flatten_space(space: Any, prefix: str = "") -> dict[str, Any]:
    """Dict spaces (nested) -> {"a/b": leaf space}; a non-Dict space is {"observation": it}."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        out: dict[str, Any] = {}
        for k, sub in space.spaces.items():
            out.update(flatten_space(sub, f"{prefix}{k}/"))
        return out
    return {prefix.rstrip("/") or PLAIN_KEY: space}


def flatten_obs(obs: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obs, dict):
        out: dict[str, Any] = {}
        for k, v in obs.items():
            out.update(flatten_obs(v, f"{prefix}{k}/"))
        return out
    return {prefix.rstrip("/") or PLAIN_KEY: obs}


def _describe(spaces: dict[str, Any]) -> str:
    return ", ".join(f"{k} {getattr(s, 'shape', '?')} "
                     f"{getattr(s, 'dtype', type(s).__name__)}" for k, s in spaces.items())


def _is_image(space: Any) -> bool:
    shape = getattr(space, "shape", None) or ()
    return getattr(space, "dtype", None) == np.uint8 and len(shape) == 3


def pick_camera(spaces: dict[str, Any], camera: str | None, where: Path) -> str:
    """The observation key holding the camera image."""
    if camera is not None:
        if camera not in spaces:
            raise DatasetError(f"{where}: camera={camera!r} is not an observation key; keys: "
                               f"{_describe(spaces)}")
        shape = getattr(spaces[camera], "shape", None) or ()
        if len(shape) not in (2, 3):
            raise DatasetError(f"{where}: camera={camera!r} has shape {shape}, not an image")
        return camera
    images = [k for k, s in spaces.items() if _is_image(s)]
    if len(images) == 1:
        return images[0]
    if not images:
        raise DatasetError(f"{where}: no image observation (uint8, 3-D) found; keys: "
                           f"{_describe(spaces)}")
    raise DatasetError(f"{where}: several image observations {images}; choose one with camera=")


def _vector_dim(spaces: dict[str, Any], key: str, where: Path, what: str) -> int:
    if key not in spaces:
        raise DatasetError(f"{where}: {what}={key!r} is not an observation key; keys: "
                           f"{_describe(spaces)}")
    shape = getattr(spaces[key], "shape", None)
    dtype = getattr(spaces[key], "dtype", None)
    if not shape or dtype is None or np.dtype(dtype).kind not in "fiu":
        raise DatasetError(f"{where}: {what}={key!r} is not a numeric array space")
    return int(np.prod(shape))


# ----------------------------------------------------------------------------- source


def open_minari(
    src: str | Path, *, camera: str | None = None, proprio: str | None = None,
    fps: float | None = None,
) -> ImportSource:
    """Inspect a Minari dataset and return an ImportSource that streams its episodes."""
    import gymnasium as gym

    data_path = resolve_minari_path(src)
    ds = _open(data_path)
    spaces = flatten_space(ds.observation_space)
    cam = pick_camera(spaces, camera, data_path)
    proprio_dim = _vector_dim(spaces, proprio, data_path, "proprio") if proprio else None
    goal_dim = None
    if GOAL_KEY in spaces and GOAL_KEY not in (cam, proprio):
        goal_dim = _vector_dim(spaces, GOAL_KEY, data_path, "achieved_goal")
    state_dim = None
    if STATE_KEY in spaces and STATE_KEY not in (cam, proprio):
        state_dim = _vector_dim(spaces, STATE_KEY, data_path, "state")
    act = ds.action_space
    if not isinstance(act, gym.spaces.Box):
        raise DatasetError(f"{data_path}: action space {act} is not a Box; goalrl needs "
                           "continuous actions")
    action_dim = int(np.prod(act.shape))
    low = np.asarray(act.low, dtype=np.float64).reshape(-1)
    high = np.asarray(act.high, dtype=np.float64).reshape(-1)
    if not (np.isfinite(low).all() and np.isfinite(high).all()) or (high <= low).any():
        low, high = bounds_from_data(*_action_range(ds, data_path))
    spec = ds.spec.env_spec
    extra = ds.storage.metadata.get("goalrl") or {}  # written by goalrl's Minari exporter
    try:
        episodes_meta = list(ds.storage.get_episode_metadata(range(ds.total_episodes)))
    except Exception as e:  # noqa: BLE001 - a truncated / damaged data file
        raise DatasetError(f"{data_path}: cannot read episode metadata "
                           f"({type(e).__name__}: {e})") from None

    def episodes(start: int, image_size: int) -> Iterator[SourceEpisode]:
        indices = list(range(start, ds.total_episodes))
        stream = ds.iterate_episodes(indices)
        for i in indices:
            where = f"{data_path}: episode {i}"
            try:
                ep = next(stream)
            except Exception as e:  # noqa: BLE001 - damaged HDF5 / arrow / JPEG bytes
                raise DatasetError(f"{where}: cannot read ({type(e).__name__}: {e})") from None
            yield _convert(ep, i, where, cam, proprio, goal_dim, state_dim, image_size,
                           episodes_meta[i])

    return ImportSource(
        fmt="minari",
        path=data_path,
        camera=cam,
        num_episodes=int(ds.total_episodes),
        action_dim=action_dim,
        action_low=low,
        action_high=high,
        episodes=episodes,
        proprio_key=proprio,
        proprio_dim=proprio_dim,
        goal_dim=goal_dim,
        state_dim=state_dim,
        has_rewards=True,
        has_success=None,
        env_id=spec.id if spec is not None else extra.get("env_id"),
        fps=float(fps or extra.get("fps") or DEFAULT_FPS),
        info={"dataset_id": ds.spec.dataset_id, "minari_version": ds.spec.minari_version,
              "observation_keys": sorted(spaces), "total_steps": int(ds.total_steps)},
    )


def _action_range(ds: Any, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension min/max of all actions (for unbounded action spaces)."""
    low = high = None
    for ep in ds.iterate_episodes():
        a = np.asarray(ep.actions, dtype=np.float64).reshape(len(ep.actions), -1)
        a = a[np.isfinite(a).all(1)]  # bad rows are reported with their episode later
        if not len(a):
            continue
        low = a.min(0) if low is None else np.minimum(low, a.min(0))
        high = a.max(0) if high is None else np.maximum(high, a.max(0))
    if low is None:
        raise DatasetError(f"{where}: the dataset has no finite actions")
    return low, high


def _success(infos: Any, steps: int) -> np.ndarray | None:
    """(T+1,) bool from recorded infos; DataCollector records the reset info too."""
    if not isinstance(infos, dict):
        return None
    for key in SUCCESS_INFO_KEYS:
        if key in infos:
            s = np.asarray(infos[key]).reshape(-1).astype(bool)
            if len(s) == steps + 1:
                return s
            if len(s) == steps:  # step infos only: the first frame is not a success
                return np.concatenate([[False], s])
    return None


def _convert(ep: Any, index: int, where: str, cam: str, proprio: str | None,
             goal_dim: int | None, state_dim: int | None, image_size: int,
             ep_meta: dict) -> SourceEpisode:
    """A minari EpisodeData -> goalrl EpisodeData (frames resized)."""
    obs = flatten_obs(ep.observations)
    steps = len(ep.rewards)
    if steps < 1:
        return SourceEpisode(index, where, None, "episode has no steps")
    images = np.asarray(obs[cam])
    if len(images) != steps + 1:
        raise DatasetError(f"{where}: field 'observations/{cam}' has {len(images)} frames, "
                           f"expected {steps + 1} (N+1 for N steps)")
    actions = np.asarray(ep.actions, dtype=np.float32).reshape(steps, -1)  # (T, A)

    def vector(key: str) -> np.ndarray:
        arr = np.asarray(obs[key], dtype=np.float32)
        if len(arr) != steps + 1:
            raise DatasetError(f"{where}: field 'observations/{key}' has {len(arr)} rows, "
                               f"expected {steps + 1}")
        return arr.reshape(steps + 1, -1)  # (T+1, D)

    info: dict[str, Any] = {"terminated": bool(np.asarray(ep.terminations)[-1]),
                            "truncated": bool(np.asarray(ep.truncations)[-1])}
    try:
        frames = prepare_frames(images, image_size)  # (T+1, S, S, 3)
    except ValueError as e:
        raise DatasetError(f"{where}: field 'observations/{cam}': {e}") from None
    data = EpisodeData(
        images=frames,
        actions=actions,
        proprio=vector(proprio) if proprio else None,
        rewards=np.asarray(ep.rewards, dtype=np.float32).reshape(steps),  # (T,)
        success=_success(ep.infos, steps),
        achieved_goal=vector(GOAL_KEY) if goal_dim else None,
        state=vector(STATE_KEY) if state_dim else None,
        seed=split_seed(ep_meta.get("seed"), info),
        info=info,
    )
    return SourceEpisode(index, where, data)
