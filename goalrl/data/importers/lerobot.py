"""Import LeRobot v3 datasets (parquet + mp4 under ``meta/``, ``data/``, ``videos/``).

Layout read (LeRobotDataset v3.0)::

    meta/info.json                      # codebase_version, fps, features, data_path, video_path
    meta/episodes/chunk-*/file-*.parquet  # one row per episode: length, data/chunk_index,
                                        #   data/file_index, videos/<key>/{chunk_index,
                                        #   file_index, from_timestamp, to_timestamp}, ...
    data/chunk-*/file-*.parquet         # one row per frame: action, observation.state,
                                        #   episode_index, frame_index, timestamp, index, ...
    videos/<key>/chunk-*/file-*.mp4     # several episodes back to back in one video

``camera=`` picks the video key (or an ``image`` feature stored inside the parquet);
``proprio=`` a vector feature such as ``observation.state``.

Frames -> transitions: a LeRobot episode has T rows, each an observation and the action
taken from it; the observation after the last action was never recorded. goalrl needs the
observation after every action, so the last action is dropped: T frames give T-1
transitions (``next.reward`` / ``next.success`` of row t become reward t / success t+1).
Episodes with a single frame have no transition and are skipped (listed in the summary).

Video frames are decoded sequentially with PyAV (its wheels carry the AV1 decoder LeRobot's
default ``libsvtav1`` videos need), and resized as they come, so an episode is held in RAM
only at the target image size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.images import prepare_frames
from goalrl.data.importers.common import ImportSource, SourceEpisode, bounds_from_data, run_import
from goalrl.data.storage import DatasetError, EpisodeData

INFO_PATH = "meta/info.json"
EPISODES_DIR = "meta/episodes"
IMAGE_DTYPES = ("video", "image")  # feature dtypes usable as camera
REWARD_KEY = "next.reward"
SUCCESS_KEY = "next.success"


def import_lerobot(
    src: str | Path,
    out: str | Path,
    *,
    camera: str | None = None,
    image_size: int = 64,
    proprio: str | None = None,
    fps: float | None = None,
    progress: bool = True,
) -> dict:
    """Import a local LeRobot v3 dataset folder into the goalrl dataset folder ``out``."""
    source = open_lerobot(src, camera=camera, proprio=proprio, fps=fps)
    return run_import(source, out, image_size=image_size, progress=progress)


# ----------------------------------------------------------------------------- metadata


def read_info(root: Path) -> dict:
    path = root / INFO_PATH
    if not path.is_file():
        raise DatasetError(f"{path}: missing file (not a LeRobot dataset folder?)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: corrupt JSON ({e})") from None
    version = str(info.get("codebase_version", "?"))
    if not version.startswith("v3"):
        raise DatasetError(f"{path}: codebase_version {version}; goalrl reads LeRobot v3 "
                           "(convert older datasets with LeRobot's v3 conversion script)")
    for key in ("features", "fps", "data_path"):
        if key not in info:
            raise DatasetError(f"{path}: missing key {key!r}")
    return info


def pick_camera(features: dict, camera: str | None, where: Path) -> str:
    cams = [k for k, f in features.items() if f.get("dtype") in IMAGE_DTYPES]
    if camera is not None:
        if camera not in cams:
            raise DatasetError(f"{where}: camera={camera!r} is not a video/image feature; "
                               f"cameras: {cams or 'none'}")
        return camera
    if len(cams) == 1:
        return cams[0]
    if not cams:
        raise DatasetError(f"{where}: no video or image feature; features: {sorted(features)}")
    raise DatasetError(f"{where}: several cameras {cams}; choose one with camera=")


def _vector_feature(features: dict, key: str, where: Path, what: str) -> int:
    f = features.get(key)
    if f is None:
        raise DatasetError(f"{where}: {what}={key!r} is not a feature; features: "
                           f"{sorted(features)}")
    shape = f.get("shape") or []
    if f.get("dtype") in IMAGE_DTYPES or len(shape) != 1:
        raise DatasetError(f"{where}: {what}={key!r} has dtype {f.get('dtype')} shape {shape}; "
                           "expected a vector")
    return int(shape[0])


def read_episodes_meta(root: Path, columns: list[str]) -> list[dict]:
    """Rows of meta/episodes/*/*.parquet (only ``columns``), sorted by episode_index."""
    import pyarrow.parquet as pq

    files = sorted((root / EPISODES_DIR).glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{root / EPISODES_DIR}: no episode metadata parquet files")
    rows: list[dict] = []
    for path in files:
        try:
            schema = pq.read_schema(path)
            missing = [c for c in columns if c not in schema.names]
            if missing:
                raise DatasetError(f"{path}: missing columns {missing}")
            rows += pq.read_table(path, columns=columns).to_pylist()
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - ArrowInvalid, OSError: a damaged file
            raise DatasetError(f"{path}: cannot read parquet ({type(e).__name__}: {e})") from None
    rows.sort(key=lambda r: r["episode_index"])
    return rows


# ----------------------------------------------------------------------------- parquet


def _list_column(table: Any, name: str, where: str) -> np.ndarray:
    """A fixed-size list / list column -> (rows, D) float32."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name).combine_chunks()
    n = len(col)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or \
            pa.types.is_fixed_size_list(col.type):
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if n and (lengths != lengths[0]).any():
            raise DatasetError(f"{where}: field {name!r} has rows of different lengths")
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return flat.astype(np.float32).reshape(n, -1)
    return col.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, -1)


class _DataFiles:
    """Reads one data parquet at a time (episodes come in file order), keeps it cached."""

    def __init__(self, root: Path, template: str, columns: list[str]) -> None:
        self.root, self.template, self.columns = root, template, columns
        self.path: Path | None = None
        self.table: Any = None

    def episode(self, chunk: int, file: int, episode: int) -> tuple[Path, Any]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        path = self.root / self.template.format(chunk_index=chunk, file_index=file,
                                                episode_chunk=chunk, episode_index=episode)
        if path != self.path:
            if not path.is_file():
                raise DatasetError(f"{path}: missing data file (episode {episode})")
            try:
                schema = pq.read_schema(path)
                missing = [c for c in self.columns if c not in schema.names]
                if missing:
                    raise DatasetError(f"{path}: episode {episode}: missing columns {missing}")
                self.table = pq.read_table(path, columns=self.columns)
            except DatasetError:
                raise
            except Exception as e:  # noqa: BLE001
                raise DatasetError(f"{path}: cannot read parquet ({type(e).__name__}: {e})"
                                   ) from None
            self.path = path
        rows = self.table.filter(pc.equal(self.table.column("episode_index"), episode))
        order = np.argsort(rows.column("frame_index").to_numpy(), kind="stable")
        return path, rows.take(order)


# ----------------------------------------------------------------------------- video


class _VideoCursor:
    """Sequential decoder over one mp4 of concatenated episodes.

    ``read(start, n)`` returns frames ``start .. start+n-1`` (frame index = time x fps),
    already prepared at image_size. Reading forward never re-decodes; asking for an earlier
    frame reopens the file.
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.container: Any = None
        self.frames: Any = None
        self.next_index = 0
        self.pending: tuple[int, Any] | None = None
        self.t0: float | None = None

    def _open(self, where: str) -> None:
        import av

        self.close()
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: {where}: missing video file")
        try:
            self.container = av.open(str(self.path))
            stream = self.container.streams.video[0]
        except Exception as e:  # noqa: BLE001 - av.error.InvalidDataError etc.
            self.close()
            raise DatasetError(f"{self.path}: {where}: cannot open video (damaged or truncated?"
                               f" {type(e).__name__}: {e})") from None
        stream.thread_type = "AUTO"
        self.frames = self.container.decode(stream)
        self.next_index, self.pending, self.t0 = 0, None, None

    def _next(self) -> tuple[int, Any] | None:
        if self.pending is not None:
            item, self.pending = self.pending, None
            return item
        frame = next(self.frames, None)
        if frame is None:
            return None
        if frame.time is None:
            idx = self.next_index
        else:
            if self.t0 is None:
                self.t0 = float(frame.time)  # streams may start past 0 (encoder delay)
            idx = int(round((float(frame.time) - self.t0) * self.fps))
        self.next_index = idx + 1
        return idx, frame

    def read(self, start: int, n: int, image_size: int, where: str) -> np.ndarray:
        position = self.pending[0] if self.pending is not None else self.next_index
        if self.container is None or start < position:
            self._open(where)
        out = np.empty((n, image_size, image_size, 3), np.uint8)  # (n, S, S, 3)
        got = 0
        try:
            while got < n:
                item = self._next()
                if item is None:
                    break
                idx, frame = item
                if idx < start + got:
                    continue  # before this episode (or a duplicate timestamp)
                if idx >= start + n:
                    self.pending = item
                    break
                rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                out[got] = prepare_frames(rgb[None], image_size)[0]
                got += 1
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - corrupt packets
            raise DatasetError(f"{self.path}: {where}: cannot decode video "
                               f"({type(e).__name__}: {e})") from None
        if got < n:
            raise DatasetError(f"{self.path}: {where}: video has {got} frames from frame "
                               f"{start}, expected {n} (truncated video?)")
        return out

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


# ----------------------------------------------------------------------------- source


def open_lerobot(
    src: str | Path, *, camera: str | None = None, proprio: str | None = None,
    fps: float | None = None,
) -> ImportSource:
    """Inspect a LeRobot v3 dataset and return an ImportSource that streams its episodes."""
    root = Path(src).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    info = read_info(root)
    features: dict = info["features"]
    where = root / INFO_PATH
    cam = pick_camera(features, camera, where)
    is_video = features[cam]["dtype"] == "video"
    if is_video and "video_path" not in info:
        raise DatasetError(f"{where}: missing key 'video_path' (needed for camera {cam!r})")
    action_dim = _vector_feature(features, "action", where, "action")
    proprio_dim = _vector_feature(features, proprio, where, "proprio") if proprio else None
    src_fps = float(info["fps"])

    ep_cols = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    if is_video:
        ep_cols += [f"videos/{cam}/{k}" for k in ("chunk_index", "file_index",
                                                   "from_timestamp", "to_timestamp")]
    episodes_meta = read_episodes_meta(root, ep_cols)
    data_cols = ["episode_index", "frame_index", "action"]
    data_cols += [c for c in (proprio, REWARD_KEY if REWARD_KEY in features else None,
                              SUCCESS_KEY if SUCCESS_KEY in features else None) if c]
    if not is_video:
        data_cols.append(cam)
    low, high = bounds_from_data(*_action_range(root, info["data_path"], episodes_meta))

    def episodes(start: int, image_size: int) -> Iterator[SourceEpisode]:
        data = _DataFiles(root, info["data_path"], data_cols)
        videos: dict[Path, _VideoCursor] = {}
        try:
            for i in range(start, len(episodes_meta)):
                row = episodes_meta[i]
                yield _read_episode(root, info, row, i, cam, is_video, proprio, data, videos,
                                    src_fps, image_size)
        finally:
            for v in videos.values():
                v.close()

    return ImportSource(
        fmt="lerobot",
        path=root,
        camera=cam,
        num_episodes=len(episodes_meta),
        action_dim=action_dim,
        action_low=low,
        action_high=high,
        episodes=episodes,
        proprio_key=proprio,
        proprio_dim=proprio_dim,
        has_rewards=REWARD_KEY in features,
        has_success=SUCCESS_KEY in features,
        env_id=None,
        fps=float(fps) if fps else src_fps,
        info={"codebase_version": info.get("codebase_version"),
              "robot_type": info.get("robot_type"), "total_frames": info.get("total_frames"),
              "features": sorted(features), "mapping": "T frames -> T-1 transitions "
              "(the last action has no recorded next observation and is dropped)"},
    )


def _action_range(root: Path, template: str, episodes_meta: list[dict]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Min/max of the action column over every data file (a cheap column-only pass)."""
    import pyarrow.parquet as pq

    files = sorted({(r["data/chunk_index"], r["data/file_index"]) for r in episodes_meta})
    low = high = None
    for chunk, file in files:
        path = root / template.format(chunk_index=chunk, file_index=file)
        if not path.is_file():
            raise DatasetError(f"{path}: missing data file")
        try:
            table = pq.read_table(path, columns=["action"])
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"{path}: cannot read parquet ({type(e).__name__}: {e})") from None
        a = _list_column(table, "action", str(path)).astype(np.float64)  # (rows, A)
        a = a[np.isfinite(a).all(1)]  # bad rows are reported with their episode later
        if not len(a):
            continue
        low = a.min(0) if low is None else np.minimum(low, a.min(0))
        high = a.max(0) if high is None else np.maximum(high, a.max(0))
    if low is None:
        raise DatasetError(f"{root}: the dataset has no frames")
    return low, high


def _read_episode(root: Path, info: dict, row: dict, i: int, cam: str, is_video: bool,
                  proprio: str | None, data: _DataFiles, videos: dict[Path, _VideoCursor],
                  fps: float, image_size: int) -> SourceEpisode:
    ep_index = int(row["episode_index"])
    path, rows = data.episode(int(row["data/chunk_index"]), int(row["data/file_index"]),
                              ep_index)
    where = f"{path}: episode {ep_index}"
    n = int(row["length"])
    if rows.num_rows != n:
        raise DatasetError(f"{where}: has {rows.num_rows} rows, meta/episodes says length {n}")
    if n < 2:
        return SourceEpisode(i, where, None, f"{n} frame(s): no transition")
    frame_index = rows.column("frame_index").to_numpy()
    if not np.array_equal(frame_index, np.arange(n)):
        raise DatasetError(f"{where}: field 'frame_index' is not 0..{n - 1}")
    actions = _list_column(rows, "action", where)  # (T, A)
    if is_video:
        frames = _video_frames(root, info, row, ep_index, cam, n, fps, videos, image_size)
    else:
        frames = _image_column(rows, cam, where, image_size)
    rewards = success = None
    if REWARD_KEY in rows.column_names:
        rewards = _list_column(rows, REWARD_KEY, where).reshape(n)[: n - 1]  # (T-1,)
    if SUCCESS_KEY in rows.column_names:
        s = _list_column(rows, SUCCESS_KEY, where).reshape(n).astype(bool)
        success = np.concatenate([[False], s[: n - 1]])  # (T,): next.success of row t -> t+1
    episode = EpisodeData(
        images=frames,  # (T, S, S, 3): every recorded observation
        actions=actions[: n - 1],  # (T-1, A): the last action has no next observation
        proprio=_list_column(rows, proprio, where) if proprio else None,  # (T, P)
        rewards=rewards,
        success=success,
        info={"lerobot_episode_index": ep_index, "dropped_last_action": True},
    )
    return SourceEpisode(i, where, episode)


def _video_frames(root: Path, info: dict, row: dict, ep_index: int, cam: str, n: int,
                  fps: float, videos: dict[Path, _VideoCursor], image_size: int) -> np.ndarray:
    chunk = int(row[f"videos/{cam}/chunk_index"])
    file = int(row[f"videos/{cam}/file_index"])
    path = root / info["video_path"].format(video_key=cam, chunk_index=chunk, file_index=file,
                                            episode_chunk=chunk, episode_index=ep_index)
    cursor = videos.get(path)
    if cursor is None:
        for old in videos.values():  # episodes come in file order: one open video per camera
            old.close()
        videos.clear()
        cursor = videos[path] = _VideoCursor(path, fps)
    start = int(round(float(row[f"videos/{cam}/from_timestamp"]) * fps))
    return cursor.read(start, n, image_size, f"episode {ep_index}: camera {cam!r}")


def _image_column(rows: Any, cam: str, where: str, image_size: int) -> np.ndarray:
    """Frames of an ``image`` feature: PNG/JPEG bytes in a struct{bytes, path} column."""
    import cv2

    out = []
    for t, cell in enumerate(rows.column(cam).to_pylist()):
        raw = cell.get("bytes") if isinstance(cell, dict) else cell
        img = None if raw is None else cv2.imdecode(np.frombuffer(raw, np.uint8),
                                                    cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DatasetError(f"{where}: field {cam!r}: frame {t} is not a decodable image")
        if img.ndim == 3 and img.shape[2] >= 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else
                               cv2.COLOR_BGR2RGB)
        out.append(prepare_frames(img[None], image_size)[0])
    return np.stack(out)  # (T, S, S, 3)
