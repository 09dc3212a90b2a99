"""Import OGBench ``.npz`` datasets (``observations``, ``actions``, ``terminals``, ...).

Reads the files OGBench publishes and ``goalrl ogbench generate`` writes, with numpy alone
(the ``ogbench`` package is not needed). Three layouts, told apart by their keys:

- raw (OGBench's files): every frame's ``observations`` row, ``terminals`` 1 on the last
  frame of each episode, whose action has no next observation and is dropped: an episode of
  T+1 frames keeps T actions;
- with ``next_observations`` (``ogbench.load_dataset(compact_dataset=False)`` saved again):
  transitions, ``terminals`` 1 on the last transition of each episode, whose next
  observation is the episode's final frame; inside an episode ``next_observations[t]`` must
  equal ``observations[t + 1]``;
- with ``valids`` (``compact_dataset=True``): like raw, an episode ends where valids is 0.

State observations (N, D) float go to goalrl's ``proprio`` field whole, so the state agents
(``agent.encoder.kind=state``, which read proprio and achieved goal side by side) see
exactly OGBench's observation vector, and a goal is another frame's vector, as in OGBench.
There are no camera frames then: goalrl's format keeps one per observation, so each is an
8x8 black placeholder (``image_size`` is for pixel sources). Pixel observations (N, H, W, 3)
uint8 become the images, resized to ``image_size``, read in slices from the zip (never the
whole array in memory). ``qpos``, ``qvel`` and ``button_states`` are checked (length,
finite) and named in the card, but goalrl's format has no field for them.

Every check that can be made before writing is made first, so a malformed file is refused
with one error naming the file, the field and the fault, and nothing is written. The one
exception is the chain of a pixel file with ``next_observations``, checked as its frames
stream in (a pre-pass would decompress both arrays twice): the episodes before a broken row
are imported by then.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.images import prepare_frames
from goalrl.data.importers.common import ImportSource, SourceEpisode, bounds_from_data, run_import
from goalrl.data.storage import DatasetError, EpisodeData

REQUIRED = ("observations", "actions", "terminals")
EXTRA_FIELDS = ("qpos", "qvel", "button_states")  # checked, listed, not stored
PLACEHOLDER_SIZE = 8  # side of the black frames stored for state sources
DEFAULT_FPS = 20.0  # OGBench manipulation: control_timestep 0.05 s
DATASET_TYPES = ("play", "noisy", "navigate", "stitch", "explore")  # OGBench's name parts
SLICE = 1024  # pixel frames read at a time


def import_ogbench(
    src: str | Path,
    out: str | Path,
    *,
    camera: str | None = None,
    image_size: int = 64,
    proprio: str | None = None,
    fps: float | None = None,
    progress: bool = True,
) -> dict:
    """Import an OGBench .npz file into the goalrl dataset folder ``out``."""
    for name, value in (("camera", camera), ("proprio", proprio)):
        if value is not None:
            raise DatasetError(f"{src}: format=ogbench takes no {name}= (an OGBench file has "
                               "one observation array; state vectors are stored whole)")
    source = open_ogbench(src, fps=fps)
    size = int(image_size) if source.info["observation"] == "pixels" else PLACEHOLDER_SIZE
    summary = run_import(source, out, image_size=size, progress=progress)
    return {**summary, "observation": source.info["observation"],
            "layout": source.info["layout"]}


# ----------------------------------------------------------------------------- reading


class NpzFile:
    """Array headers of a .npz (shape, dtype) without loading, and arrays or row slices."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise DatasetError(f"{path}: no such file")
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f"{path}: not a readable .npz file ({e})") from None
        self.headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for member in self.zip.namelist():
            if member.endswith(".npy"):
                self.headers[member[:-4]] = self._header(member)

    def _header(self, member: str) -> tuple[tuple[int, ...], np.dtype]:
        field = member[:-4]
        try:
            with self.zip.open(member) as f:
                shape, fortran, dtype = npy_header(f)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise DatasetError(f"{self.path}: field {field!r} is not a readable array "
                               f"({e})") from None
        if fortran or dtype.hasobject:
            raise DatasetError(f"{self.path}: field {field!r} is a "
                               f"{'Fortran-ordered' if fortran else 'Python-object'} array; "
                               "OGBench files hold plain C-ordered numeric arrays")
        return tuple(shape), dtype

    def load(self, field: str) -> np.ndarray:
        try:
            with self.zip.open(f"{field}.npy") as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise DatasetError(f"{self.path}: field {field!r} unreadable ({e})") from None

    def rows(self, field: str) -> Iterator[np.ndarray]:
        """The rows of ``field`` in order, SLICE at a time (a zip member streams forward)."""
        shape, dtype = self.headers[field]
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        try:
            with self.zip.open(f"{field}.npy") as f:
                npy_header(f)
                for start in range(0, shape[0], SLICE):
                    n = min(SLICE, shape[0] - start)
                    data = f.read(n * row_bytes)
                    if len(data) != n * row_bytes:
                        raise EOFError(f"ends at row {start + len(data) // max(row_bytes, 1)}")
                    yield np.frombuffer(data, dtype=dtype).reshape(n, *shape[1:])
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise DatasetError(f"{self.path}: field {field!r} unreadable ({e})") from None


def npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy stream ``f``, which is left at the data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f".npy format version {version} (this reader knows 1.0 and 2.0)")


def check_finite(arr: np.ndarray, path: Path, field: str, row0: int = 0) -> None:
    if arr.dtype.kind != "f":
        return
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    if bad.any():
        raise DatasetError(f"{path}: field {field!r} has NaN/inf values in {int(bad.sum())} "
                           f"rows (first at row {row0 + int(np.argmax(bad))})")


def episode_bounds(ends: np.ndarray, n: int) -> list[tuple[int, int]]:
    """[(first, last)] frame rows (inclusive) of the episodes ending at rows ``ends``."""
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def env_from_name(path: Path) -> str | None:
    """OGBench's env of a dataset file name: cube-single-play-v0(-val).npz -> cube-single-v0."""
    parts = re.sub(r"-val$", "", path.stem).split("-")
    if len(parts) >= 3 and parts[-2] in DATASET_TYPES and re.fullmatch(r"v\d+", parts[-1]):
        return "-".join(parts[:-2] + parts[-1:])
    return None


def generator_record(path: Path) -> dict | None:
    """The settings ``goalrl ogbench generate`` wrote beside its train file, if any."""
    stem = re.sub(r"-val$", "", path.stem)
    record = path.with_name(f"{stem}.json")
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "settings" in data else None


def checked_layout(npz: NpzFile) -> dict[str, Any]:
    """Every check short of the pixel values: keys, shapes, dtypes, lengths, finite state and
    action values, terminals; the episode bounds and the loaded small arrays."""
    path, heads = npz.path, npz.headers
    for field in REQUIRED:
        if field not in heads:
            raise DatasetError(f"{path}: missing field {field!r} (an OGBench file holds "
                               f"{', '.join(REQUIRED)}); fields here: {sorted(heads)}")
    obs_shape, obs_dtype = heads["observations"]
    n = obs_shape[0] if obs_shape else 0
    if len(obs_shape) == 2 and obs_dtype.kind == "f":
        observation = "state"
    elif len(obs_shape) == 4 and obs_shape[3] == 3 and obs_dtype == np.uint8:
        observation = "pixels"
    else:
        raise DatasetError(f"{path}: field 'observations' has shape {obs_shape} {obs_dtype}; "
                           "expected (N, D) float (state) or (N, H, W, 3) uint8 (pixels)")
    if n == 0:
        raise DatasetError(f"{path}: field 'observations' has 0 rows: nothing to import")
    act_shape, act_dtype = heads["actions"]
    if len(act_shape) != 2 or act_dtype.kind != "f":
        raise DatasetError(f"{path}: field 'actions' has shape {act_shape} {act_dtype}; expected "
                           "(N, A) float (discrete actions, e.g. powderworld's, are not "
                           "supported)")
    term_shape, term_dtype = heads["terminals"]
    if len(term_shape) != 1 or term_dtype.kind not in "biuf":
        raise DatasetError(f"{path}: field 'terminals' has shape {term_shape} {term_dtype}; "
                           "expected (N,) bool or 0/1 numbers")
    layout = "raw"
    if "next_observations" in heads:
        layout = "transitions"
        if heads["next_observations"] != heads["observations"]:
            raise DatasetError(f"{path}: field 'next_observations' has shape/dtype "
                               f"{heads['next_observations']}, 'observations' has "
                               f"{heads['observations']}")
    elif "valids" in heads:
        layout = "compact"
    for field, (shape, _) in heads.items():
        if field in (*REQUIRED, "next_observations", "valids", *EXTRA_FIELDS) and (
                not shape or shape[0] != n):
            raise DatasetError(f"{path}: field {field!r} has {shape[0] if shape else 0} rows, "
                               f"'observations' has {n} (mismatched lengths)")
    actions = npz.load("actions").astype(np.float32)  # (N, A)
    check_finite(actions, path, "actions")
    flag_field = "valids" if layout == "compact" else "terminals"
    flags = npz.load(flag_field).reshape(-1)  # (N,)
    if flags.dtype.kind == "f":
        check_finite(flags, path, flag_field)
    if not np.isin(flags, (0, 1)).all():
        bad = int(np.argmax(~np.isin(flags, (0, 1))))
        raise DatasetError(f"{path}: field {flag_field!r} holds {flags[bad]!r} at row {bad}; "
                           "expected 0/1 values")
    ends = np.flatnonzero(flags == 0) if layout == "compact" else np.flatnonzero(flags)
    if not len(ends) or ends[-1] != n - 1:
        raise DatasetError(f"{path}: field {flag_field!r}: the last row is not an episode end, "
                           "so the last episode is unfinished (a file cut short?)")
    state = next_state = None
    if observation == "state":
        state = npz.load("observations").astype(np.float32)  # (N, D)
        check_finite(state, path, "observations")
        if layout == "transitions":
            next_state = npz.load("next_observations").astype(np.float32)  # (N, D)
            check_finite(next_state, path, "next_observations")
            check_chain(state, next_state, ends, path)
    extras = {}
    for field in EXTRA_FIELDS:
        if field in heads:
            check_finite(npz.load(field), path, field)
            extras[field] = list(heads[field][0][1:])
    return {"observation": observation, "layout": layout, "n": n, "actions": actions,
            "bounds": episode_bounds(ends, n), "state": state, "next_state": next_state,
            "extras": extras, "frame_shape": obs_shape[1:]}


def check_chain(obs: np.ndarray, nxt: np.ndarray, ends: np.ndarray, path: Path,
                row0: int = 0) -> None:
    """Inside an episode, next_observations[t] must be observations[t + 1] (a chain)."""
    inner = np.ones(len(obs) - 1, dtype=bool)  # rows t whose t + 1 is in the same episode
    rel = ends - row0  # episode ends among these rows (row0: source row of obs[0])
    inner[rel[(rel >= 0) & (rel < len(obs) - 1)]] = False
    same = (nxt[:-1] == obs[1:]).reshape(len(obs) - 1, -1).all(axis=1)
    broken = inner & ~same
    if broken.any():
        t = row0 + int(np.argmax(broken))
        raise DatasetError(f"{path}: field 'next_observations' row {t} is not 'observations' row "
                           f"{t + 1} inside one episode (terminals say it continues)")


def open_ogbench(src: str | Path, *, fps: float | None = None) -> ImportSource:
    """Check an OGBench .npz file and return an ImportSource that streams its episodes."""
    path = Path(src).expanduser().resolve()
    npz = NpzFile(path)
    lay = checked_layout(npz)
    actions, bounds = lay["actions"], lay["bounds"]
    low, high = bounds_from_data(actions.min(0), actions.max(0))
    record = generator_record(path)
    env = (record or {}).get("settings", {}).get("env") or env_from_name(path)

    def episodes(start: int, image_size: int) -> Iterator[SourceEpisode]:
        frames = pixel_episodes(npz, lay) if lay["observation"] == "pixels" else None
        for i, (first, last) in enumerate(bounds):
            images = next(frames) if frames is not None else None
            if i < start:
                continue
            yield read_episode(i, first, last, lay, images, image_size, path)

    state_dim = lay["state"].shape[1] if lay["observation"] == "state" else None
    return ImportSource(
        fmt="ogbench",
        path=path,
        camera="observations" if lay["observation"] == "pixels" else "none (state)",
        num_episodes=len(bounds),
        action_dim=int(actions.shape[1]),
        action_low=low,
        action_high=high,
        episodes=episodes,
        proprio_key="observations" if state_dim else None,
        proprio_dim=state_dim,
        has_rewards=False,
        has_success=False,
        env_id=f"ogbench:{env}" if env else None,
        fps=float(fps or DEFAULT_FPS),
        info={"observation": lay["observation"], "layout": lay["layout"],
              "frames": lay["n"], "episodes": len(bounds),
              "observation_shape": list(lay["frame_shape"]),
              "fields_not_stored": lay["extras"],  # name -> per-row shape
              **({"generator": record} if record else {})},
    )


def pixel_episodes(npz: NpzFile, lay: dict) -> Iterator[np.ndarray]:
    """Each episode's (T+1, H, W, 3) source frames in order, streamed from the zip; in the
    transitions layout the final frame is the last row's next observation, and the chain
    next_observations[t] == observations[t + 1] is checked as the rows pass."""
    obs_rows = npz.rows("observations")
    next_rows = npz.rows("next_observations") if lay["layout"] == "transitions" else None
    buffered = np.empty((0, *lay["frame_shape"]), np.uint8)
    next_buffered = buffered.copy()
    row0 = 0  # source row of buffered[0]
    ends = np.array([last for _, last in lay["bounds"]])
    for first, last in lay["bounds"]:
        while row0 + len(buffered) <= last:
            buffered = np.concatenate([buffered, next(obs_rows)])
            if next_rows is not None:
                next_buffered = np.concatenate([next_buffered, next(next_rows)])
        take = slice(first - row0, last + 1 - row0)
        frames = buffered[take]  # (L, H, W, 3)
        if next_rows is not None:
            nxt = next_buffered[take]
            check_chain(frames, nxt, ends[(ends >= first) & (ends <= last)], npz.path, first)
            frames = np.concatenate([frames, nxt[-1:]])
        yield frames
        buffered, row0 = buffered[last + 1 - row0:], last + 1
        if next_rows is not None:
            next_buffered = next_buffered[take.stop:]


def read_episode(i: int, first: int, last: int, lay: dict, images: np.ndarray | None,
                 image_size: int, path: Path) -> SourceEpisode:
    """Episode ``i`` (source rows first..last) as goalrl's T+1 frames and T actions."""
    where = f"{path}: episode {i} (rows {first}-{last})"
    transitions = lay["layout"] == "transitions"
    stop = last + 1 if transitions else last  # raw: the last frame's action has no result
    if stop - first < 1:
        return SourceEpisode(i, where, None, "1 frame: no transition")
    actions = lay["actions"][first:stop]  # (T, A)
    state = None
    if lay["observation"] == "state":
        state = lay["state"][first : last + 1]  # (T+1, D) raw, (T, D) transitions
        if transitions:
            state = np.concatenate([state, lay["next_state"][last : last + 1]])
        images = np.zeros((len(state), image_size, image_size, 3), np.uint8)  # placeholders
    else:
        try:
            images = prepare_frames(images, image_size)  # (T+1, S, S, 3)
        except ValueError as e:
            raise DatasetError(f"{where}: field 'observations': {e}") from None
    info = {"source_rows": [first, last]}
    return SourceEpisode(i, where, EpisodeData(images=images, actions=actions, proprio=state,
                                               info=info))
