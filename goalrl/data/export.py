"""Export a goalrl dataset as a Minari dataset (written with minari's own storage API).

The Minari dataset has a Dict observation space: ``image`` (H, W, 3) uint8, plus ``proprio``
(P,), ``achieved_goal`` (G,) and ``state`` (S,) float32 when the goalrl dataset has them, and a
Box action space with the dataset's action bounds. Episodes keep their T+1 observations and T
actions (Minari's layout is the same), rewards (zeros when the dataset has none), seeds, and
per-frame success as ``infos["success"]`` (T+1 entries, like a ``DataCollector`` with
``record_infos=True``). The last step is marked ``terminated`` when its frame is a success,
``truncated`` otherwise. Images are stored losslessly (Minari's optional JPEG encoding is
switched off), so import -> export -> import gives back the same frames.

``out`` is either

* a folder path (absolute, or starting with ``.`` or ``~``, or anything that is not a
  Minari id): the dataset is written to ``<out>/data/`` (Minari's own layout for
  ``<root>/<dataset_id>/``). Load it with ``minari.MinariDataset("<out>/data")``, or copy
  ``<out>`` into the Minari root as ``<dataset_id>`` to load it by id; or
* a Minari dataset id ``[namespace/]name-v<N>``: written to the local Minari root
  (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``), loadable with
  ``minari.load_dataset(id)``.

The export is built in a temporary folder next to its destination and renamed into place
at the end, so an interrupted export never leaves a half-written Minari dataset.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.storage import DatasetError, EpisodeDataset

_ID_RE = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")  # minari's id syntax


def export_minari(
    path: str | Path,
    out: str | Path,
    *,
    dataset_id: str | None = None,
    author: str | None = None,
    description: str | None = None,
    data_format: str = "hdf5",
) -> dict:
    """Write the goalrl dataset at ``path`` as a Minari dataset at ``out`` (path or id)."""
    import minari

    src = Path(path).expanduser()
    dest, ds_id, by_id = resolve_minari_target(out, dataset_id)
    if dest.exists():
        raise DatasetError(f"{dest}: already exists; choose another out= or delete it")
    with EpisodeDataset(src) as ds:
        obs_space, act_space = _spaces(ds)
        if by_id:
            _ensure_namespace(ds_id)
        tmp = dest.with_name(f".tmp-{dest.name}-{os.getpid()}")  # hidden: minari skips it
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            storage = _new_storage(tmp / "data", obs_space, act_space, data_format,
                                   _env_spec(ds.meta.get("env_id")))
            storage.update_metadata(_metadata(ds, ds_id, author, description))
            for i in range(ds.num_episodes):
                storage.update_episodes([_buffer(ds, i)])  # one episode in RAM at a time
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        loaded = minari.MinariDataset(dest / "data")  # proves it loads with minari itself
        return {
            "path": str(src.resolve()),  # goalrl dataset exported
            "format": "minari",  # export format
            "out": str(dest),  # Minari dataset folder (holds data/)
            "dataset_id": ds_id,  # Minari dataset id in its metadata
            "load_with": (f"minari.load_dataset({ds_id!r})" if by_id else
                          f"minari.MinariDataset({str(dest / 'data')!r})"),  # how to open it
            "num_episodes": int(loaded.total_episodes),  # episodes written
            "num_steps": int(loaded.total_steps),  # transitions written
            "observation_keys": sorted(obs_space.spaces),  # Dict observation keys
            "fingerprint": ds.fingerprint(),  # fingerprint of the exported goalrl dataset
        }


def resolve_minari_target(out: str | Path, dataset_id: str | None = None
                          ) -> tuple[Path, str, bool]:
    """(destination folder, dataset id, written-by-id?) for ``out``."""
    text = str(out)
    is_path = (Path(text).is_absolute() or text.startswith((".", "~"))
               or not _ID_RE.match(text))
    if is_path:
        dest = Path(text).expanduser().resolve()
        ds_id = dataset_id or _id_from_name(dest.name)
        if not _ID_RE.match(ds_id):
            raise DatasetError(f"dataset_id {ds_id!r} is not a Minari id ([namespace/]name-vN)")
        return dest, ds_id, False
    from minari.storage.datasets_root_dir import get_dataset_path

    if dataset_id is not None and dataset_id != text:
        raise DatasetError(f"out={text!r} is a dataset id and differs from dataset_id="
                           f"{dataset_id!r}")
    return Path(get_dataset_path(text)), text, True


def _id_from_name(name: str) -> str:
    if _ID_RE.match(name):
        return name
    clean = re.sub(r"[^-_\w]+", "_", name).strip("_") or "goalrl"
    return f"{clean}-v0"


def _ensure_namespace(ds_id: str) -> None:
    """Create the id's namespace folder(s) the way minari.create_dataset_from_buffers does."""
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    namespace = parse_dataset_id(ds_id)[0]
    if namespace is not None and namespace not in list_local_namespaces():
        create_namespace(namespace)


def _spaces(ds: EpisodeDataset) -> tuple[Any, Any]:
    import gymnasium as gym

    spaces: dict[str, Any] = {"image": gym.spaces.Box(0, 255, ds.image_shape, np.uint8)}
    if ds.proprio_dim:
        spaces["proprio"] = gym.spaces.Box(-np.inf, np.inf, (ds.proprio_dim,), np.float32)
    if ds.goal_dim:
        spaces["achieved_goal"] = gym.spaces.Box(-np.inf, np.inf, (ds.goal_dim,), np.float32)
    if ds.state_dim:
        spaces["state"] = gym.spaces.Box(-np.inf, np.inf, (ds.state_dim,), np.float32)
    act = gym.spaces.Box(ds.action_low, ds.action_high, (ds.action_dim,), np.float32)
    return gym.spaces.Dict(spaces), act


def _env_spec(env_id: str | None) -> Any:
    """The gymnasium EnvSpec of a registered env id (so Minari records it), else None."""
    import gymnasium as gym

    if not env_id:
        return None
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        return None


def _new_storage(data_dir: Path, obs_space: Any, act_space: Any, data_format: str,
                 env_spec: Any) -> Any:
    from minari.dataset.minari_storage import MinariStorage

    kwargs: dict[str, Any] = {"data_format": data_format, "env_spec": env_spec}
    if "jpeg_encoding" in inspect.signature(MinariStorage.new).parameters:
        kwargs["jpeg_encoding"] = False  # lossless frames (this minari JPEG-encodes by default)
    return MinariStorage.new(data_dir, observation_space=obs_space, action_space=act_space,
                             **kwargs)


def _metadata(ds: EpisodeDataset, ds_id: str, author: str | None,
              description: str | None) -> dict:
    import minari

    meta = {
        "dataset_id": ds_id,
        "minari_version": minari.__version__,
        "algorithm_name": f"goalrl:{ds.meta.get('source', 'collect')}",
        "description": description or (
            f"Exported by goalrl from {ds.root.name} (fingerprint {ds.fingerprint()}, "
            f"env {ds.meta.get('env_id')}, fps {ds.meta.get('fps')})"),
        "code_permalink": "https://github.com/goalrl/goalrl",
        # read back by goalrl's Minari importer (Minari itself has no fps / env id field)
        "goalrl": {"fps": ds.meta.get("fps"), "env_id": ds.meta.get("env_id"),
                   "fingerprint": ds.fingerprint()},
    }
    if author:
        meta["author"] = {author}
    return meta


def _buffer(ds: EpisodeDataset, i: int) -> Any:
    """goalrl episode i -> minari EpisodeBuffer (T+1 observations, T actions)."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    ep = ds.episode(i)
    t = ep.num_steps
    obs: dict[str, np.ndarray] = {"image": ep.images}  # (T+1, H, W, 3)
    if ep.proprio is not None:
        obs["proprio"] = ep.proprio.astype(np.float32)  # (T+1, P)
    if ep.achieved_goal is not None:
        obs["achieved_goal"] = ep.achieved_goal.astype(np.float32)  # (T+1, G)
    if ep.state is not None:
        obs["state"] = ep.state.astype(np.float32)  # (T+1, S)
    rewards = ep.rewards if ep.rewards is not None else np.zeros(t, np.float32)
    terminated = bool(ep.success[-1]) if ep.success is not None else False
    terminations = [False] * t
    truncations = [False] * t
    terminations[-1], truncations[-1] = terminated, not terminated
    infos = {"success": ep.success.astype(bool)} if ep.success is not None else None
    return EpisodeBuffer(
        id=i,
        seed=ep.seed,
        observations=obs,
        actions=ep.actions.astype(np.float32),  # (T, A)
        rewards=[float(r) for r in rewards],
        terminations=terminations,
        truncations=truncations,
        infos=infos,
    )
