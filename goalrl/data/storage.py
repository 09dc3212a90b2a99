"""Episode storage: chunked uint8 frames on disk, an atomic commit point, lazy reads.

On-disk layout (format ``goalrl-episodes``, version 1)::

    <root>/
      meta.json              # THE commit point: metadata, counts, statistics, committed sizes
      episodes.jsonl         # one JSON line per committed episode (append-only)
      README.md              # human-readable dataset card (rewritten by DatasetWriter.close)
      chunks/000000/         # a chunk: frame-aligned, header-less, little-endian raw arrays
        images.u8            #   (N, H, W, 3) uint8, every observation incl. each final one
        actions.f32          #   (N, A) float32; the last frame of each episode is zero-padded
        proprio.f32          #   (N, P) float32            (optional)
        rewards.f32          #   (N,) float32, zero-padded  (optional)
        success.u1           #   (N,) uint8 0/1             (optional)
        achieved_goal.f32    #   (N, G) float32            (optional)
      chunks/000001/ ...
      .writer.lock           # flock'ed by the one writer allowed at a time

An episode of T >= 1 steps is T+1 consecutive frames inside one chunk (episodes never span
chunks; a 1-step episode is 2 frames and one transition; 0-step episodes hold no transition
and are rejected); the next observation of frame i is frame i+1, so no frame is stored
twice. A chunk grows to ``chunk_frames`` frames (a longer episode gets a chunk of its own).

Crash safety: every data file is append-only. ``DatasetWriter.append`` writes the episode's
bytes past the committed end of the chunk files and of ``episodes.jsonl``, fsyncs them, then
atomically replaces ``meta.json`` (temp file + ``os.replace``), whose committed sizes make the
episode visible. Bytes beyond the committed sizes (a crash, Ctrl-C or SIGKILL mid-append) are
ignored by readers and truncated when a writer resumes, so finished episodes always survive
and a half-written one never loads. Without ``durable=True`` the fsyncs are skipped: still
safe against a killed process, not against a power cut.

Integrity: ``meta.json`` records the byte length and CRC-32 of the committed part of
``episodes.jsonl``; each episode record stores the CRC-32 of each of its field slices.
Low-dim fields are checked on every open; images (the bulk) by ``EpisodeDataset.verify``.

Global frame indices number the frames of episode 0, then episode 1, ...; ``episode_starts``
and ``episode_lengths`` give the boundaries. The physical place of an episode (chunk, row)
is an indirection, so ``repair_dataset`` can drop damaged episodes without moving frames.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import mmap
import os
import re
import shutil
import signal
import threading
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "goalrl-episodes"
FORMAT_VERSION = 1
META_FILE = "meta.json"
CARD_FILE = "README.md"
EPISODES_FILE = "episodes.jsonl"
CHUNKS_DIR = "chunks"
LOCK_FILE = ".writer.lock"
_CHUNK_NAME = re.compile(r"^\d{6}$")
_TMP_PREFIX = ".tmp-"
_FAULT_AROUND_BYTES = 64 << 10  # Linux default fault_around_bytes
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync

__all__ = [
    "DatasetError",
    "DatasetWriter",
    "EpisodeData",
    "EpisodeDataset",
    "FieldSpec",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "repair_dataset",
]


class DatasetError(ValueError):
    """A dataset (or an episode being appended) is missing, damaged or inconsistent.

    The message always names the file (or dataset folder) and, where relevant, the episode
    and field.
    """


@dataclass
class EpisodeData:
    """One episode in memory: T steps, T+1 observations."""

    images: np.ndarray  # (T+1, H, W, 3) uint8, every observation incl. the final one
    actions: np.ndarray  # (T, A) float32
    proprio: np.ndarray | None = None  # (T+1, P) float32
    rewards: np.ndarray | None = None  # (T,) float32 task reward of (o_t, a_t)
    success: np.ndarray | None = None  # (T+1,) bool success label of each frame
    achieved_goal: np.ndarray | None = None  # (T+1, G) float32 object positions etc.
    seed: int | None = None  # env seed of the episode
    info: dict = field(default_factory=dict)  # JSON-able per-episode metadata

    @property
    def num_steps(self) -> int:
        return int(len(self.actions))


# ----------------------------------------------------------------------------- field specs

# name -> (file name, on-disk dtype, per_step). per_step fields have T rows in memory and are
# zero-padded to T+1 rows on disk so that every chunk file is frame-aligned.
_KNOWN_FIELDS: dict[str, tuple[str, str, bool]] = {
    "images": ("images.u8", "|u1", False),
    "actions": ("actions.f32", "<f4", True),
    "proprio": ("proprio.f32", "<f4", False),
    "rewards": ("rewards.f32", "<f4", True),
    "success": ("success.u1", "|u1", False),
    "achieved_goal": ("achieved_goal.f32", "<f4", False),
}
_OPTIONAL_FLAGS = ("rewards", "success")  # optional fields without a declared size


@dataclass(frozen=True)
class FieldSpec:
    """How one episode field is stored: one frame-aligned raw file per chunk."""

    name: str
    file: str  # file name inside a chunk folder
    dtype: str  # numpy dtype string on disk
    shape: tuple[int, ...]  # per-frame shape
    per_step: bool  # T rows (actions, rewards) rather than T+1 rows

    @property
    def row_items(self) -> int:
        return int(math.prod(self.shape))

    @property
    def row_bytes(self) -> int:
        return np.dtype(self.dtype).itemsize * self.row_items

    def to_json(self) -> dict:
        return {"file": self.file, "dtype": self.dtype, "shape": list(self.shape),
                "per_step": self.per_step}

    @classmethod
    def make(cls, name: str, shape: Sequence[int]) -> FieldSpec:
        file, dtype, per_step = _KNOWN_FIELDS[name]
        return cls(name, file, dtype, tuple(int(s) for s in shape), per_step)

    @classmethod
    def from_json(cls, name: str, d: Any, where: Path) -> FieldSpec:
        if name not in _KNOWN_FIELDS:
            raise DatasetError(f"{where}: unknown field {name!r} in 'fields'")
        if not isinstance(d, dict) or not {"file", "dtype", "shape"} <= d.keys():
            raise DatasetError(f"{where}: field {name!r} needs 'file', 'dtype' and 'shape'")
        expected = cls.make(name, d["shape"] if _is_int_list(d["shape"]) else ())
        if not _is_int_list(d["shape"]) or any(s <= 0 for s in d["shape"]):
            raise DatasetError(f"{where}: field {name!r}: bad shape {d['shape']!r}")
        if d["file"] != expected.file or d["dtype"] != expected.dtype:
            raise DatasetError(
                f"{where}: field {name!r}: expected file {expected.file!r} with dtype "
                f"{expected.dtype!r}, got {d['file']!r} with {d['dtype']!r}"
            )
        return expected


def _is_int_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in x)


def _make_specs(
    image_shape: tuple[int, int, int],
    action_dim: int,
    proprio_dim: int | None,
    goal_dim: int | None,
    flags: dict[str, bool | None],
) -> dict[str, FieldSpec]:
    specs = {"images": FieldSpec.make("images", image_shape),
             "actions": FieldSpec.make("actions", (action_dim,))}
    if proprio_dim is not None:
        specs["proprio"] = FieldSpec.make("proprio", (proprio_dim,))
    if flags.get("rewards"):
        specs["rewards"] = FieldSpec.make("rewards", ())
    if flags.get("success"):
        specs["success"] = FieldSpec.make("success", ())
    if goal_dim is not None:
        specs["achieved_goal"] = FieldSpec.make("achieved_goal", (goal_dim,))
    return specs


# ----------------------------------------------------------------------------- small helpers


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=False, **kw)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, *, durable: bool) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a mix."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


def _pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _FolderLock:
    """Exclusive flock on <root>/.writer.lock: one writer (or repair) per dataset at a time.

    The kernel drops the lock when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self.fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise DatasetError(f"{self.path}: another writer has this dataset open") from None
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing releases the flock
            self.fd = -1


class _DeferSigint:
    """Hold Ctrl-C until the block ends, so an append is never half-applied in memory.

    The on-disk commit is atomic anyway; this keeps the writer object consistent for code
    that catches KeyboardInterrupt and goes on. Only possible in the main thread.
    """

    def __enter__(self) -> _DeferSigint:
        self._received = False
        self._installed = False
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous: Any = signal.signal(signal.SIGINT, self._handler)
                self._installed = True
            except ValueError:  # e.g. not the main interpreter
                pass
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        self._received = True

    def __exit__(self, *exc: Any) -> None:
        if not self._installed:
            return
        if self._previous is None:  # installed from C: the best we can do is Python's default
            self._previous = signal.default_int_handler
        signal.signal(signal.SIGINT, self._previous)
        if self._received:
            if callable(self._previous):
                self._previous(signal.SIGINT, None)
            elif self._previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)


def _episode_digest(frames: int, seed: int, crcs: dict[str, int]) -> bytes:
    body = _dumps([frames, seed, sorted(crcs.items())], separators=(",", ":"))
    return hashlib.sha256(body.encode()).digest()


def _fingerprint_seed(meta: dict) -> str:
    head = {"format": FORMAT_NAME, "image_shape": meta["image_shape"],
            "fields": {k: [v["dtype"], v["shape"]] for k, v in sorted(meta["fields"].items())}}
    return hashlib.sha256(_dumps(head, sort_keys=True).encode()).hexdigest()


def _chain(prev_hex: str, digest: bytes) -> str:
    """Hash chain over episode digests: O(1) per append, the dataset's fingerprint."""
    return hashlib.sha256(bytes.fromhex(prev_hex) + digest).hexdigest()


# ----------------------------------------------------------------------------- statistics


def _empty_stat(n: int) -> dict:
    # min/max are None until the first row (JSON has no infinity)
    return {"count": 0, "sum": [0.0] * n, "sumsq": [0.0] * n, "min": None, "max": None}


def _update_stat(state: dict, rows: np.ndarray) -> dict:
    """Running count/sum/sumsq/min/max (float64) so stats survive a crash and a resume."""
    x = rows.reshape(len(rows), -1).astype(np.float64)  # (rows, D)
    if not len(x):
        return state
    lo = x.min(0) if state["min"] is None else np.minimum(np.asarray(state["min"]), x.min(0))
    hi = x.max(0) if state["max"] is None else np.maximum(np.asarray(state["max"]), x.max(0))
    return {
        "count": state["count"] + len(x),
        "sum": (np.asarray(state["sum"]) + x.sum(0)).tolist(),
        "sumsq": (np.asarray(state["sumsq"]) + (x * x).sum(0)).tolist(),
        "min": lo.tolist(),
        "max": hi.tolist(),
    }


def _finish_stat(state: dict, scalar: bool) -> dict:
    n = state["count"]
    if n == 0:
        return {"count": 0}
    s, ss = np.asarray(state["sum"]), np.asarray(state["sumsq"])
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
    out = {"count": n, "mean": mean.tolist(), "std": std.tolist(),
           "min": list(state["min"]), "max": list(state["max"])}
    if scalar:
        out = {k: (v[0] if isinstance(v, list) else v) for k, v in out.items()}
    return out


def _public_stats(stats_state: dict, specs: dict[str, FieldSpec]) -> dict:
    return {k: _finish_stat(v, scalar=specs[k].shape == ()) for k, v in stats_state.items()}


def _stats_from_arrays(arrays: dict[str, np.ndarray], has_next: np.ndarray) -> dict:
    out = {}
    for name, arr in arrays.items():
        rows = arr[has_next] if _KNOWN_FIELDS[name][2] else arr
        out[name] = _update_stat(_empty_stat(int(math.prod(arr.shape[1:]))), rows)
    return out


# ----------------------------------------------------------------------------- metadata


def _require(meta: dict, key: str, types: type | tuple, where: Path) -> Any:
    if key not in meta:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = meta[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise DatasetError(f"{where}: key {key!r} has wrong type {type(value).__name__}")
    return value


def _as_tuple(t: type | tuple) -> tuple:
    return t if isinstance(t, tuple) else (t,)


def _load_meta(root: Path) -> dict:
    """Read and validate meta.json (the commit point) of the dataset at ``root``."""
    path = root / META_FILE
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    if not path.is_file():
        raise DatasetError(f"{path}: missing file (not a goalrl dataset?)")
    try:
        meta = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: corrupt JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    if meta.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path}: 'format' is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    version = _require(meta, "format_version", int, path)
    if version != FORMAT_VERSION:
        newer = " (written by a newer goalrl?)" if version > FORMAT_VERSION else ""
        raise DatasetError(
            f"{path}: unknown format_version {version}{newer}; this goalrl reads {FORMAT_VERSION}"
        )
    shape = _require(meta, "image_shape", list, path)
    if not (_is_int_list(shape) and len(shape) == 3 and min(shape) > 0):
        raise DatasetError(f"{path}: bad image_shape {shape!r}")
    action_dim = _require(meta, "action_dim", int, path)
    for key in ("action_low", "action_high"):
        bound = _require(meta, key, list, path)
        if len(bound) != action_dim:
            raise DatasetError(f"{path}: {key} has {len(bound)} values, action_dim={action_dim}")
    for key in ("num_episodes", "num_frames", "num_transitions", "chunk_frames"):
        if _require(meta, key, int, path) < 0:
            raise DatasetError(f"{path}: negative {key}")
    fields = _require(meta, "fields", dict, path)
    meta["_specs"] = {name: FieldSpec.from_json(name, d, path) for name, d in fields.items()}
    for name in ("images", "actions"):
        if name not in meta["_specs"]:
            raise DatasetError(f"{path}: required field {name!r} missing from 'fields'")
    if list(meta["_specs"]["images"].shape) != shape:
        raise DatasetError(f"{path}: images field shape differs from image_shape")
    if meta["_specs"]["actions"].shape != (action_dim,):
        raise DatasetError(f"{path}: actions field shape differs from action_dim")
    chunks = _require(meta, "chunks", list, path)
    for i, c in enumerate(chunks):
        if not (isinstance(c, dict) and c.get("name") == f"{i:06d}"
                and isinstance(c.get("frames"), int) and c["frames"] >= 0):
            raise DatasetError(f"{path}: bad entry {i} in 'chunks': {c!r}")
    ep = _require(meta, "episodes_file", dict, path)
    if not (isinstance(ep.get("name"), str) and "/" not in ep["name"]
            and isinstance(ep.get("bytes"), int) and isinstance(ep.get("crc32"), int)):
        raise DatasetError(f"{path}: bad 'episodes_file' entry {ep!r}")
    _require(meta, "stats_state", dict, path)
    _require(meta, "fingerprint", str, path)
    return meta


def _meta_to_bytes(meta: dict) -> bytes:
    public = {k: v for k, v in meta.items() if not k.startswith("_")}
    return (_dumps(public, indent=1) + "\n").encode()


def _normalise_bound(value: float | Sequence[float], dim: int, name: str) -> list[float]:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (dim,)) if np.ndim(value) == 0 \
        else np.asarray(value, dtype=np.float64)
    if arr.shape != (dim,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite scalar or {dim} values, got {value!r}")
    return [float(v) for v in arr]


# ----------------------------------------------------------------------------- writer


class DatasetWriter:
    """Create a dataset, or resume appending to an existing one; append is atomic.

    Use as a context manager; ``close`` (also on exceptions) refreshes the dataset card.
    ``has_rewards`` / ``has_success``: None decides from the first appended episode.
    ``check_action_bounds``: reject actions outside [action_low, action_high] (+1e-5).
    ``durable``: fsync data and the commit (needed against power loss, not process kills).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        image_shape: tuple[int, int, int],
        action_dim: int,
        action_low: float | Sequence[float] = -1.0,
        action_high: float | Sequence[float] = 1.0,
        proprio_dim: int | None = None,
        goal_dim: int | None = None,
        env_id: str | None = None,
        source: str = "collect",
        fps: float = 10.0,
        chunk_frames: int = 65536,
        extra_meta: dict | None = None,
        has_rewards: bool | None = None,
        has_success: bool | None = None,
        check_action_bounds: bool = True,
        durable: bool = True,
    ) -> None:
        self.root = Path(root)
        self.durable = durable
        self.check_action_bounds = check_action_bounds
        self.chunk_frames = int(chunk_frames)
        if self.chunk_frames < 2:
            raise ValueError("chunk_frames must be >= 2")
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3 or min(image_shape) <= 0:
            raise ValueError(f"image_shape must be (H, W, C) positive, got {image_shape}")
        if int(action_dim) <= 0:
            raise ValueError("action_dim must be positive")
        for name, dim in (("proprio_dim", proprio_dim), ("goal_dim", goal_dim)):
            if dim is not None and int(dim) <= 0:
                raise ValueError(f"{name} must be positive or None")
        low = _normalise_bound(action_low, int(action_dim), "action_low")
        high = _normalise_bound(action_high, int(action_dim), "action_high")
        if any(lo >= hi for lo, hi in zip(low, high, strict=True)):
            raise ValueError("action_low must be < action_high in every dimension")
        wanted = {
            "image_shape": list(image_shape), "action_dim": int(action_dim),
            "action_low": low, "action_high": high,
            "proprio_dim": None if proprio_dim is None else int(proprio_dim),
            "goal_dim": None if goal_dim is None else int(goal_dim),
            "env_id": env_id, "source": source, "fps": float(fps),
        }
        flags = {"rewards": has_rewards, "success": has_success}

        self._closed = True
        self._fds: dict[str, int] = {}
        self._fd_chunk = -1
        self._ep_fd = -1
        existing = (self.root / META_FILE).is_file()
        if not existing:
            self._check_empty_folder()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = _FolderLock(self.root)
        self._lock.acquire()
        try:
            if existing:
                self._resume(wanted, flags, extra_meta)
            else:
                self._create(wanted, flags, extra_meta)
            self._ep_fd = os.open(self.root / self._meta["episodes_file"]["name"],
                                  os.O_RDWR | os.O_CREAT, 0o644)
        except BaseException:
            self._lock.release()
            raise
        self._closed = False

    @classmethod
    def resume(cls, root: str | Path, **kwargs: Any) -> DatasetWriter:
        """Re-open an existing dataset for appending, with its own shapes and bounds."""
        meta = _load_meta(Path(root))
        params = {
            "image_shape": tuple(meta["image_shape"]), "action_dim": meta["action_dim"],
            "action_low": meta["action_low"], "action_high": meta["action_high"],
            "proprio_dim": meta.get("proprio_dim"), "goal_dim": meta.get("goal_dim"),
            "env_id": meta.get("env_id"), "source": meta.get("source", "collect"),
            "fps": meta.get("fps", 10.0), "chunk_frames": meta["chunk_frames"],
        }
        params.update(kwargs)
        return cls(root, **params)

    # -- setup

    def _check_empty_folder(self) -> None:
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: exists and is not a folder")
        # leftovers of a creation that died before its first commit are not "foreign"
        foreign = [p.name for p in self.root.iterdir()
                   if p.name != LOCK_FILE and not p.name.startswith(_TMP_PREFIX)
                   and not (p.name == EPISODES_FILE and p.stat().st_size == 0)]
        if foreign:
            raise DatasetError(
                f"{self.root}: folder is not empty and has no {META_FILE} "
                f"(not a goalrl dataset); found {sorted(foreign)[:5]}"
            )

    def _create(self, wanted: dict, flags: dict, extra_meta: dict | None) -> None:
        specs = _make_specs(tuple(wanted["image_shape"]), wanted["action_dim"],
                            wanted["proprio_dim"], wanted["goal_dim"], flags)
        meta = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "created": _now(), "updated": _now(), **wanted,
            "chunk_frames": self.chunk_frames,
            "fields": {k: s.to_json() for k, s in specs.items()},
            "pending_fields": [k for k in _OPTIONAL_FLAGS if flags[k] is None],
            "num_episodes": 0, "num_frames": 0, "num_transitions": 0,
            "chunks": [], "episodes_file": {"name": EPISODES_FILE, "bytes": 0, "crc32": 0},
            "stats_state": {k: _empty_stat(s.row_items) for k, s in specs.items()
                            if k != "images"},
            "extra": dict(extra_meta or {}),
        }
        meta["fingerprint"] = _fingerprint_seed(meta)
        self._set_state(meta, specs)
        (self.root / EPISODES_FILE).touch()
        self._commit_meta(meta)
        self._write_card()

    def _resume(self, wanted: dict, flags: dict, extra_meta: dict | None) -> None:
        meta = _load_meta(self.root)
        meta.pop("_specs")
        problems = [
            f"{k}: dataset has {meta.get(k)!r}, writer asked for {v!r}"
            for k, v in wanted.items()
            if k not in ("source", "fps") and meta.get(k) != v
            and not (k == "env_id" and (v is None or meta.get(k) is None))
        ]
        pending = meta.get("pending_fields", [])
        for k, v in flags.items():
            if v is not None and k not in pending and (k in meta["fields"]) != v:
                problems.append(f"{k}: dataset {'has' if k in meta['fields'] else 'lacks'} it, "
                                f"writer asked for has_{k}={v}")
        if problems:
            raise DatasetError(f"{self.root / META_FILE}: cannot append, the existing dataset "
                               "differs: " + "; ".join(problems))
        # full validation of what is committed: refuse to append to a damaged dataset
        with EpisodeDataset(self.root, verify_checksums=True):
            pass
        if meta.get("env_id") is None and wanted["env_id"] is not None:
            meta["env_id"] = wanted["env_id"]
        meta["pending_fields"] = [k for k in pending if flags.get(k) is None]
        for k in pending:  # a still-empty dataset may now decide a pending field
            if flags.get(k):
                spec = FieldSpec.make(k, ())
                meta["fields"][k] = spec.to_json()
                meta["stats_state"][k] = _empty_stat(1)
        if extra_meta:
            meta["extra"] = {**meta.get("extra", {}), **extra_meta}
        meta["chunk_frames"] = self.chunk_frames
        meta["fingerprint"] = meta["fingerprint"] if meta["num_episodes"] else _fingerprint_seed(
            meta)
        specs = {k: FieldSpec.from_json(k, v, self.root / META_FILE)
                 for k, v in meta["fields"].items()}
        self._discard_uncommitted(meta, specs)
        self._set_state(meta, specs)
        self._commit_meta(meta)

    def _discard_uncommitted(self, meta: dict, specs: dict[str, FieldSpec]) -> None:
        """Truncate bytes past the commit point and delete chunk folders never committed."""
        chunk_root = self.root / CHUNKS_DIR
        committed = {c["name"]: c["frames"] for c in meta["chunks"]}
        if chunk_root.is_dir():
            for p in chunk_root.iterdir():
                if _CHUNK_NAME.match(p.name) and p.name not in committed:
                    shutil.rmtree(p)
        for name, frames in committed.items():
            for spec in specs.values():
                path = chunk_root / name / spec.file
                if path.is_file() and path.stat().st_size > frames * spec.row_bytes:
                    os.truncate(path, frames * spec.row_bytes)
        ep = self.root / meta["episodes_file"]["name"]
        if ep.stat().st_size > meta["episodes_file"]["bytes"]:
            os.truncate(ep, meta["episodes_file"]["bytes"])
        for p in self.root.iterdir():
            if p.name.startswith(_TMP_PREFIX):
                p.unlink()

    def _set_state(self, meta: dict, specs: dict[str, FieldSpec]) -> None:
        self._meta = meta
        self._specs = specs

    # -- public

    @property
    def num_episodes(self) -> int:
        return int(self._meta["num_episodes"])

    @property
    def num_frames(self) -> int:
        return int(self._meta["num_frames"])

    @property
    def meta(self) -> dict:
        """A copy of the committed metadata."""
        return json.loads(_meta_to_bytes(self._meta))

    def append(self, episode: EpisodeData) -> int:
        """Validate, write and commit one episode atomically; returns its index."""
        if self._closed:
            raise ValueError(f"{self.root}: DatasetWriter is closed")
        index = self.num_episodes
        specs = self._specs_for(episode)
        arrays = _validate_episode(episode, specs, self._bounds(), f"{self.root}: episode {index}")
        seed = _validate_seed(episode.seed, f"{self.root}: episode {index}")
        info = _validate_info(episode.info, f"{self.root}: episode {index}")
        frames = len(arrays["images"])
        chunk, offset = self._place(frames)
        crcs = {k: zlib.crc32(a) for k, a in arrays.items()}
        record = {"index": index, "chunk": chunk, "offset": offset, "frames": frames,
                  "seed": seed, "crc32": crcs, "info": info}
        line = (_dumps(record, separators=(",", ":")) + "\n").encode()
        meta = self._next_meta(specs, arrays, chunk, frames, line, seed, crcs)
        with _DeferSigint():
            self._write_rows(chunk, offset, arrays, specs)
            _pwrite_all(self._ep_fd, line, self._meta["episodes_file"]["bytes"])
            if self.durable:
                _fdatasync(self._ep_fd)
            self._commit_meta(meta)  # <- commit point
            self._specs = specs
        return index

    def close(self) -> None:
        """Write the final metadata and the dataset card; release the writer lock."""
        if self._closed:
            return
        self._closed = True
        try:
            self._meta["updated"] = _now()
            self._commit_meta(self._meta)
            self._write_card()
        finally:
            for fd in [*self._fds.values(), self._ep_fd]:
                if fd >= 0:
                    os.close(fd)
            self._fds, self._ep_fd = {}, -1
            self._lock.release()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:  # noqa: BLE001 - never raise from a finaliser
                pass

    # -- append internals

    def _bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.check_action_bounds:
            return None
        return np.asarray(self._meta["action_low"]), np.asarray(self._meta["action_high"])

    def _specs_for(self, episode: EpisodeData) -> dict[str, FieldSpec]:
        """Field specs for this append; the first episode decides pending optional fields."""
        specs = dict(self._specs)
        if self.num_episodes == 0:
            for k in self._meta.get("pending_fields", []):
                if getattr(episode, k) is not None:
                    specs[k] = FieldSpec.make(k, ())
            order = list(_KNOWN_FIELDS)
            specs = dict(sorted(specs.items(), key=lambda kv: order.index(kv[0])))
        return specs

    def _place(self, frames: int) -> tuple[int, int]:
        chunks = self._meta["chunks"]
        if chunks and (chunks[-1]["frames"] == 0
                       or chunks[-1]["frames"] + frames <= self.chunk_frames):
            return len(chunks) - 1, chunks[-1]["frames"]
        return len(chunks), 0

    def _chunk_fds(self, chunk: int, specs: dict[str, FieldSpec]) -> dict[str, int]:
        if self._fd_chunk != chunk:
            for fd in self._fds.values():
                os.close(fd)
            self._fds, self._fd_chunk = {}, chunk
        folder = self.root / CHUNKS_DIR / f"{chunk:06d}"
        if not folder.is_dir():
            folder.mkdir(parents=True)
            if self.durable:
                _fsync_dir(folder.parent)
                _fsync_dir(self.root)
        for name, spec in specs.items():
            if name not in self._fds:
                self._fds[name] = os.open(folder / spec.file, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fds

    def _write_rows(self, chunk: int, offset: int, arrays: dict[str, np.ndarray],
                    specs: dict[str, FieldSpec]) -> None:
        fds = self._chunk_fds(chunk, specs)
        for name, arr in arrays.items():
            start = offset * specs[name].row_bytes
            os.ftruncate(fds[name], start)  # drop leftovers of an earlier failed append
            _pwrite_all(fds[name], arr.data, start)
            if self.durable:
                _fdatasync(fds[name])

    def _next_meta(self, specs: dict[str, FieldSpec], arrays: dict[str, np.ndarray],
                   chunk: int, frames: int, line: bytes, seed: int, crcs: dict) -> dict:
        """The metadata after this append (built before anything is written)."""
        old = self._meta
        meta = dict(old)
        chunks = [dict(c) for c in old["chunks"]]
        if chunk == len(chunks):
            chunks.append({"name": f"{chunk:06d}", "frames": 0})
        chunks[chunk]["frames"] += frames
        ep_file = old["episodes_file"]
        stats = dict(old["stats_state"])
        for name, arr in arrays.items():
            if name == "images":
                continue
            rows = arr[: frames - 1] if specs[name].per_step else arr
            stats[name] = _update_stat(stats.get(name, _empty_stat(specs[name].row_items)), rows)
        if old["num_episodes"] == 0:
            meta["fields"] = {k: s.to_json() for k, s in specs.items()}
            meta["pending_fields"] = []
            meta["fingerprint"] = _fingerprint_seed(meta)
        meta.update(
            num_episodes=old["num_episodes"] + 1,
            num_frames=old["num_frames"] + frames,
            num_transitions=old["num_transitions"] + frames - 1,
            chunks=chunks,
            episodes_file={"name": ep_file["name"], "bytes": ep_file["bytes"] + len(line),
                           "crc32": zlib.crc32(line, ep_file["crc32"])},
            stats_state=stats,
            updated=_now(),
        )
        meta["fingerprint"] = _chain(meta["fingerprint"], _episode_digest(frames, seed, crcs))
        return meta

    def _commit_meta(self, meta: dict) -> None:
        specs = {k: FieldSpec.from_json(k, v, self.root / META_FILE)
                 for k, v in meta["fields"].items()}
        meta["stats"] = _public_stats(meta["stats_state"], specs)
        meta["action_stats"] = meta["stats"]["actions"]
        _atomic_write(self.root / META_FILE, _meta_to_bytes(meta), durable=self.durable)
        self._meta = meta

    def _write_card(self) -> None:
        from goalrl.data.card import render_card  # local import: card is presentation only

        text = render_card(self._meta, self.root)
        _atomic_write(self.root / CARD_FILE, text.encode(), durable=False)


# ----------------------------------------------------------------------------- validation


def _validate_seed(seed: Any, where: str) -> int:
    if seed is None:
        return -1
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"{where}: field 'seed' must be a non-negative int or None, "
                           f"got {seed!r}")
    return int(seed)


def _validate_info(info: Any, where: str) -> dict:
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise DatasetError(f"{where}: field 'info' must be a dict, got {type(info).__name__}")
    try:
        return json.loads(_dumps(info))
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: field 'info' is not JSON-serialisable ({e})") from None


def _validate_episode(
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
    for name in ("actions", "proprio", "rewards", "success", "achieved_goal"):
        value = getattr(ep, name)
        if name not in specs:
            if value is not None:
                hint = "the dataset has no such field"
                if name in ("proprio", "achieved_goal"):
                    dim = "proprio_dim" if name == "proprio" else "goal_dim"
                    hint += f" (create the dataset with {dim})"
                elif name in _OPTIONAL_FLAGS:
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


# ----------------------------------------------------------------------------- reader


@dataclass
class _Record:
    index: int
    chunk: int
    offset: int
    frames: int
    seed: int
    crc32: dict[str, int]
    info: dict


def _parse_records(root: Path, meta: dict) -> list[_Record]:
    ep = meta["episodes_file"]
    path = root / ep["name"]
    if not path.is_file():
        raise DatasetError(f"{path}: missing file (episode index)")
    with open(path, "rb") as f:
        raw = f.read(ep["bytes"])
    if len(raw) < ep["bytes"]:
        raise DatasetError(f"{path}: truncated: {len(raw)} bytes, the commit in {META_FILE} "
                           f"needs {ep['bytes']}")
    if zlib.crc32(raw) != ep["crc32"]:
        raise DatasetError(f"{path}: checksum mismatch in the committed part (file corrupt)")
    lines = raw.split(b"\n")
    if lines[-1] != b"":
        raise DatasetError(f"{path}: committed part does not end with a newline (corrupt)")
    lines = lines[:-1]
    if len(lines) != meta["num_episodes"]:
        raise DatasetError(f"{path}: has {len(lines)} episodes, {META_FILE} says "
                           f"{meta['num_episodes']}")
    specs = meta["_specs"]
    records = []
    for i, line in enumerate(lines):
        try:
            r = json.loads(line)
            rec = _Record(r["index"], r["chunk"], r["offset"], r["frames"], r["seed"],
                          r["crc32"], r["info"])
        except (ValueError, KeyError, TypeError) as e:
            raise DatasetError(f"{path}: episode {i}: corrupt record ({e!r})") from None
        ok = (rec.index == i and isinstance(rec.chunk, int) and 0 <= rec.chunk < len(
            meta["chunks"]) and isinstance(rec.offset, int) and rec.offset >= 0
              and isinstance(rec.frames, int) and rec.frames >= 2
              and rec.offset + rec.frames <= meta["chunks"][rec.chunk]["frames"]
              and isinstance(rec.seed, int) and rec.seed >= -1 and isinstance(rec.info, dict)
              and isinstance(rec.crc32, dict) and set(rec.crc32) == set(specs))
        if not ok:
            raise DatasetError(f"{path}: episode {i}: inconsistent record {line[:200]!r}")
        records.append(rec)
    _check_overlaps(records, path)
    return records


def _check_overlaps(records: list[_Record], path: Path) -> None:
    if not records:
        return
    pos = np.array([(r.chunk, r.offset, r.frames) for r in records], dtype=np.int64)
    order = np.lexsort((pos[:, 1], pos[:, 0]))
    p = pos[order]
    same = p[1:, 0] == p[:-1, 0]
    overlap = same & (p[1:, 1] < p[:-1, 1] + p[:-1, 2])
    if overlap.any():
        j = int(np.argmax(overlap))
        raise DatasetError(f"{path}: episodes {order[j]} and {order[j + 1]} overlap in chunk "
                           f"{p[j, 0]}")


def _fmt_episodes(eps: Sequence[int]) -> str:
    eps = sorted(eps)
    return ", ".join(map(str, eps[:8])) + (f" ... ({len(eps)} in all)" if len(eps) > 8 else "")


class EpisodeDataset:
    """Read-only view of a dataset: low-dim fields in RAM, frames read lazily from disk.

    ``read_mode``: "pread" (default) reads each requested frame with one ``os.preadv``
    system call straight into the output batch; "mmap" maps each chunk and gathers with numpy
    fancy indexing, releasing the mapped pages every ``mmap_release_bytes`` read so that RSS
    stays bounded. See docs/benchmarks/sampler.md for why pread is the default.

    ``skip_damaged``: drop (and list in ``damaged``) episodes whose bytes are missing or fail
    their checksum, instead of raising DatasetError. ``verify_checksums``: check the CRC-32 of
    every low-dim field slice on open (images: see ``verify``).

    Frame-aligned arrays: ``actions`` and ``rewards`` have one row per frame; the row of each
    episode's last frame has no action/reward and holds zeros (``has_next`` is False there).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        read_mode: str = "pread",
        skip_damaged: bool = False,
        verify_checksums: bool = True,
        mmap_release_bytes: int = 256 << 20,
    ) -> None:
        if read_mode not in ("pread", "mmap"):
            raise ValueError(f"read_mode must be 'pread' or 'mmap', got {read_mode!r}")
        self.root = Path(root)
        self.read_mode = read_mode
        self._opts = {"read_mode": read_mode, "skip_damaged": skip_damaged,
                      "verify_checksums": verify_checksums,
                      "mmap_release_bytes": mmap_release_bytes}
        self._fds: list[int] = []
        self._mmaps: list[mmap.mmap | None] = []
        self._mm_arrays: list[np.ndarray | None] = []
        self._mmap_release_bytes = int(mmap_release_bytes)
        self._mmap_touched = 0

        meta = _load_meta(self.root)
        self._specs: dict[str, FieldSpec] = meta.pop("_specs")
        self.meta: dict = meta
        records = _parse_records(self.root, {**meta, "_specs": self._specs})
        problems: dict[int, str] = {}
        avail = self._chunk_rows(records, problems, strict=not skip_damaged)
        lowdim = self._load_lowdim(records, avail, problems, verify_checksums)
        if problems and not skip_damaged:
            raise DatasetError(
                f"{self.root}: {len(problems)} damaged episode(s) "
                f"[{_fmt_episodes(list(problems))}]: "
                + "; ".join(problems[i] for i in sorted(problems)[:5])
                + " -- open with skip_damaged=True or run repair_dataset() to keep the rest"
            )
        self.damaged: list[str] = [problems[i] for i in sorted(problems)]
        if problems:
            warnings.warn(f"{self.root}: skipping {len(problems)} damaged episode(s): "
                          f"{_fmt_episodes(list(problems))}", stacklevel=2)
        kept = [r for r in records if r.index not in problems]
        self._build_index(kept, lowdim)
        self._open_images(avail)

    # -- opening

    def _chunk_rows(self, records: list[_Record], problems: dict[int, str],
                    strict: bool) -> list[int]:
        """Rows readable in every file of each chunk; flags episodes that run past the end."""
        avail = []
        for c, chunk in enumerate(self.meta["chunks"]):
            rows = chunk["frames"]
            for spec in self._specs.values():
                path = self.root / CHUNKS_DIR / chunk["name"] / spec.file
                size = path.stat().st_size if path.is_file() else -1
                needed = chunk["frames"] * spec.row_bytes
                if size < needed:
                    users = [r.index for r in records
                             if r.chunk == c and r.index not in problems]
                    if size < 0 and strict and users:
                        raise DatasetError(f"{path}: missing file (field {spec.name!r}, "
                                           f"episodes {_fmt_episodes(users)})")
                    rows = min(rows, max(size, 0) // spec.row_bytes)
                    for r in records:
                        if r.chunk == c and r.offset + r.frames > rows:
                            problems.setdefault(
                                r.index,
                                f"{path}: episode {r.index}: file is "
                                f"{'missing' if size < 0 else f'truncated ({size} bytes)'}; "
                                f"field {spec.name!r} needs "
                                f"{(r.offset + r.frames) * spec.row_bytes} bytes",
                            )
            avail.append(rows)
        return avail

    def _load_lowdim(self, records: list[_Record], avail: list[int], problems: dict[int, str],
                     verify: bool) -> dict[str, list[np.ndarray]]:
        """Read the committed rows of every low-dim field file; check per-episode CRCs."""
        out: dict[str, list[np.ndarray]] = {}
        for name, spec in self._specs.items():
            if name == "images":
                continue
            per_chunk = []
            for c, chunk in enumerate(self.meta["chunks"]):
                path = self.root / CHUNKS_DIR / chunk["name"] / spec.file
                n = avail[c] * spec.row_items
                arr = np.fromfile(path, dtype=spec.dtype, count=n) if n else np.zeros(
                    0, spec.dtype)
                per_chunk.append(arr.reshape(-1, *spec.shape))
            out[name] = per_chunk
            for r in records:
                if r.index in problems:
                    continue
                rows = per_chunk[r.chunk][r.offset : r.offset + r.frames]
                path = self.root / CHUNKS_DIR / f"{r.chunk:06d}" / spec.file
                if verify and zlib.crc32(rows) != r.crc32[name]:
                    problems[r.index] = (f"{path}: episode {r.index}: field {name!r} fails its "
                                         "checksum (corrupt bytes)")
                elif rows.dtype.kind == "f" and not np.isfinite(rows).all():
                    problems[r.index] = f"{path}: episode {r.index}: field {name!r} has NaN/inf"
                elif name == "success" and rows.max(initial=0) > 1:
                    problems[r.index] = f"{path}: episode {r.index}: field 'success' not 0/1"
        return out

    def _build_index(self, kept: list[_Record], lowdim: dict[str, list[np.ndarray]]) -> None:
        self._records = kept
        lengths = np.array([r.frames for r in kept], dtype=np.int64)
        self.episode_lengths: np.ndarray = lengths  # (E,) frames per episode (T+1)
        starts = np.zeros(len(kept), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        self.episode_starts: np.ndarray = starts  # (E,) global index of each first frame
        self.episode_ends: np.ndarray = self.episode_starts + lengths - 1  # (E,) last frame
        self._ep_chunk = np.array([r.chunk for r in kept], dtype=np.int64)  # (E,)
        self._ep_offset = np.array([r.offset for r in kept], dtype=np.int64)  # (E,) row in chunk
        self.num_episodes = len(kept)
        self.num_frames = int(lengths.sum())
        self.num_transitions = self.num_frames - self.num_episodes
        self.seeds: np.ndarray = np.array([r.seed for r in kept], dtype=np.int64)  # (E,)
        has_next = np.ones(self.num_frames, dtype=bool)
        has_next[self.episode_ends] = False
        self.has_next: np.ndarray = has_next  # (N,) False on each episode's last frame

        def gather(name: str) -> np.ndarray | None:
            if name not in lowdim:
                return None
            spec = self._specs[name]
            out = np.empty((self.num_frames, *spec.shape), dtype=spec.dtype)
            for r, s in zip(kept, self.episode_starts.tolist(), strict=True):
                out[s : s + r.frames] = lowdim[name][r.chunk][r.offset : r.offset + r.frames]
            return out.view(bool) if name == "success" else out.astype(np.float32, copy=False)

        self.actions: np.ndarray = gather("actions")  # (N, A) float32, 0 on last frames
        self.proprio: np.ndarray | None = gather("proprio")  # (N, P) float32
        self.rewards: np.ndarray | None = gather("rewards")  # (N,) float32, 0 on last frames
        self.success: np.ndarray | None = gather("success")  # (N,) bool
        self.achieved_goal: np.ndarray | None = gather("achieved_goal")  # (N, G) float32
        digest = _fingerprint_seed(self.meta)
        for r in kept:
            digest = _chain(digest, _episode_digest(r.frames, r.seed, r.crc32))
        self._fingerprint = digest

    def _open_images(self, avail: list[int]) -> None:
        spec = self._specs["images"]
        self._frame_bytes = spec.row_bytes
        for c, chunk in enumerate(self.meta["chunks"]):
            path = self.root / CHUNKS_DIR / chunk["name"] / spec.file
            if not path.is_file() or avail[c] == 0:
                self._fds.append(-1)
                self._mmaps.append(None)
                self._mm_arrays.append(None)
                continue
            fd = os.open(path, os.O_RDONLY)
            # random access: stop the kernel reading ahead 128 KiB around every 12 KiB frame
            if hasattr(os, "posix_fadvise"):  # Linux
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            self._fds.append(fd)
            if self.read_mode == "mmap":
                mm = mmap.mmap(fd, avail[c] * spec.row_bytes, prot=mmap.PROT_READ)
                if hasattr(mmap, "MADV_RANDOM"):
                    mm.madvise(mmap.MADV_RANDOM)
                self._mmaps.append(mm)
                self._mm_arrays.append(np.frombuffer(mm, np.uint8).reshape(-1, *spec.shape))
            else:
                self._mmaps.append(None)
                self._mm_arrays.append(None)
        self._fd_array = np.array(self._fds, dtype=np.int64)

    # -- properties

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["image_shape"])  # type: ignore[return-value]

    @property
    def action_dim(self) -> int:
        return int(self.meta["action_dim"])

    @property
    def proprio_dim(self) -> int | None:
        return self.meta.get("proprio_dim")

    @property
    def goal_dim(self) -> int | None:
        return self.meta.get("goal_dim")

    @property
    def action_low(self) -> np.ndarray:
        return np.asarray(self.meta["action_low"], dtype=np.float32)  # (A,)

    @property
    def action_high(self) -> np.ndarray:
        return np.asarray(self.meta["action_high"], dtype=np.float32)  # (A,)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def fingerprint(self) -> str:
        """Short stable hash of shapes + every episode's length, seed and checksums."""
        return self._fingerprint[:16]

    def episode_info(self, i: int) -> dict:
        return json.loads(json.dumps(self._records[i].info))

    def episode_of(self, frame_idx: np.ndarray) -> np.ndarray:
        """Episode number of each global frame index (same shape)."""
        return np.searchsorted(self.episode_starts, frame_idx, side="right") - 1

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"EpisodeDataset({str(self.root)!r}, episodes={self.num_episodes}, "
                f"frames={self.num_frames}, image_shape={self.image_shape}, "
                f"fields={list(self.fields)})")

    # -- frame reads

    def _locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global frame indices -> (chunk, row in chunk)."""
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_frames):
            raise IndexError(f"frame index out of range [0, {self.num_frames})")
        ep = np.searchsorted(self.episode_starts, idx, side="right") - 1
        return self._ep_chunk[ep], self._ep_offset[ep] + (idx - self.episode_starts[ep])

    def images(self, frame_idx: np.ndarray | Sequence[int],
               out: np.ndarray | None = None) -> np.ndarray:
        """Gather frames by global index: (*idx.shape, H, W, 3) uint8."""
        idx = np.asarray(frame_idx, dtype=np.int64)
        flat = idx.reshape(-1)
        if out is None:
            out = np.empty((flat.size, *self.image_shape), dtype=np.uint8)  # (N, H, W, 3)
        self._check_out(out, flat.size)
        rows = out.reshape(flat.size, *self.image_shape)
        chunk, local = self._locate(flat)
        if self.read_mode == "mmap":
            self._gather_mmap(chunk, local, rows)
        else:
            self._pread_runs(chunk, local, [rows])
        return out.reshape(*idx.shape, *self.image_shape)

    def image_pairs(
        self, frame_idx: np.ndarray | Sequence[int],
        out: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames t and t+1 for each t (which must have a next frame): two (N, H, W, 3)."""
        idx = np.asarray(frame_idx, dtype=np.int64).reshape(-1)
        if idx.size and not self.has_next[idx].all():
            raise IndexError("image_pairs: some frames are the last of their episode")
        if out is None:
            # one allocation for both: two separate multi-MB arrays per batch can make malloc
            # return memory to the OS and page-fault it back every batch (measured 3x slower)
            both = np.empty((2, idx.size, *self.image_shape), dtype=np.uint8)  # (2, N, H, W, 3)
            out = (both[0], both[1])
        obs, nxt = out
        for o in out:
            self._check_out(o, idx.size)
        chunk, local = self._locate(idx)
        if self.read_mode == "mmap":
            self._gather_mmap(chunk, local, obs)
            self._gather_mmap(chunk, local + 1, nxt)
        else:
            self._pread_runs(chunk, local, [obs, nxt])  # one syscall reads both frames
        return obs, nxt

    def _check_out(self, out: np.ndarray, n: int) -> None:
        if out.dtype != np.uint8 or not out.flags.c_contiguous or out.size != n * self._frame_bytes:
            raise ValueError(f"out must be a C-contiguous uint8 array of {n} frames")

    def _pread_runs(self, chunk: np.ndarray, local: np.ndarray, outs: list[np.ndarray]) -> None:
        """For each i read len(outs) consecutive frames at (chunk[i], local[i]) into outs[j][i].

        One preadv per item scatters the contiguous run straight into the output buffers:
        no page mapping (RSS stays flat) and no intermediate copy. The GIL is released during
        the read, so a prefetch thread overlaps with training.
        """
        fb = self._frame_bytes
        views = [memoryview(o).cast("B") for o in outs]
        want = fb * len(outs)
        preadv = os.preadv
        fds = self._fd_array[chunk].tolist()
        offsets = (local * fb).tolist()
        for i, (fd, off) in enumerate(zip(fds, offsets, strict=True)):
            lo = i * fb
            if preadv(fd, [v[lo : lo + fb] for v in views], off) != want:
                self._short_read(int(chunk[i]), off + want)

    def _gather_mmap(self, chunk: np.ndarray, local: np.ndarray, out: np.ndarray) -> None:
        for c in np.unique(chunk).tolist():
            sel = chunk == c
            out[sel] = self._mm_arrays[c][local[sel]]
        # upper bound of what got mapped: on a page fault the kernel also maps up to 64 KiB
        # of neighbouring cached pages ("fault-around"), whatever madvise(MADV_RANDOM) says
        self._mmap_touched += len(local) * (self._frame_bytes + _FAULT_AROUND_BYTES)
        if self._mmap_touched >= self._mmap_release_bytes and hasattr(mmap, "MADV_DONTNEED"):
            # drop this process's mapped pages (they stay in the page cache): RSS stays bounded
            for mm in self._mmaps:
                if mm is not None:
                    mm.madvise(mmap.MADV_DONTNEED)
            self._mmap_touched = 0

    def _short_read(self, chunk: int, needed: int) -> None:
        path = self.root / CHUNKS_DIR / f"{chunk:06d}" / self._specs["images"].file
        raise DatasetError(f"{path}: short read (file truncated while open? needs {needed} "
                           "bytes)")

    def episode(self, i: int) -> EpisodeData:
        """Episode ``i`` as arrays in memory."""
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range ({self.num_episodes} episodes)")
        i %= self.num_episodes
        r = self._records[i]
        s, n = int(self.episode_starts[i]), r.frames
        images = np.empty((n, *self.image_shape), dtype=np.uint8)  # (T+1, H, W, 3)
        got = os.preadv(self._fds[r.chunk], [memoryview(images).cast("B")],
                        r.offset * self._frame_bytes)
        if got != images.nbytes:
            self._short_read(r.chunk, (r.offset + n) * self._frame_bytes)

        def sl(a: np.ndarray | None, per_step: bool = False) -> np.ndarray | None:
            return None if a is None else a[s : s + n - (1 if per_step else 0)].copy()

        return EpisodeData(
            images=images, actions=sl(self.actions, True), proprio=sl(self.proprio),
            rewards=sl(self.rewards, True), success=sl(self.success),
            achieved_goal=sl(self.achieved_goal),
            seed=None if r.seed < 0 else r.seed, info=self.episode_info(i),
        )

    def image_memmap(self, chunk: int) -> np.memmap:
        """Read-only memmap (rows, H, W, 3) of one chunk's frame file, for bulk tools."""
        name = self.meta["chunks"][chunk]["name"]
        rows = self.meta["chunks"][chunk]["frames"]
        return np.memmap(self.root / CHUNKS_DIR / name / self._specs["images"].file,
                         dtype=np.uint8, mode="r", shape=(rows, *self.image_shape))

    def verify(self) -> list[str]:
        """Check every episode's image bytes against its CRC-32 (reads all frames once).

        Returns a list of problems (empty when the dataset is intact).
        """
        problems = self._image_problems()
        return [problems[k] for k in sorted(problems)]

    def _image_problems(self) -> dict[int, str]:
        problems = {}
        for i, r in enumerate(self._records):
            path = self.root / CHUNKS_DIR / f"{r.chunk:06d}" / self._specs["images"].file
            try:
                images = self.episode(i).images
            except DatasetError as e:
                problems[r.index] = str(e)
                continue
            if zlib.crc32(images) != r.crc32["images"]:
                problems[r.index] = f"{path}: episode {r.index}: field 'images' fails its checksum"
        return problems

    # -- lifetime

    def close(self) -> None:
        self._mm_arrays = []
        for mm in self._mmaps:
            if mm is not None:
                mm.close()
        self._mmaps = []
        for fd in self._fds:
            if fd >= 0:
                os.close(fd)
        self._fds = []
        self._fd_array = np.zeros(0, np.int64)

    def __enter__(self) -> EpisodeDataset:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __getstate__(self) -> dict:
        # file descriptors and mappings do not cross processes: re-open on unpickle
        return {"root": str(self.root), **self._opts}

    def __setstate__(self, state: dict) -> None:
        root = state.pop("root")
        self.__init__(root, **state)  # type: ignore[misc]


# ----------------------------------------------------------------------------- repair


def repair_dataset(root: str | Path, *, check_images: bool = False,
                   durable: bool = True) -> list[str]:
    """Drop damaged episodes from the committed index; returns what was dropped.

    Damaged: bytes missing (truncated/missing chunk files) or failing their checksum.
    ``check_images`` also reads every frame to check image checksums (slow on big datasets).
    Frames stay where they are (episodes are addressed by chunk and row), so this only
    rewrites the small episode index and meta.json, each atomically.
    """
    root = Path(root)
    lock = _FolderLock(root)
    lock.acquire()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = EpisodeDataset(root, skip_damaged=True)
        with ds:
            bad_images = ds._image_problems() if check_images else {}
        dropped = ds.damaged + [bad_images[k] for k in sorted(bad_images)]
        if not dropped:
            return []
        kept = [r for r in ds._records if r.index not in bad_images]
        _rewrite_index(root, ds, kept, dropped, durable)
    finally:
        lock.release()
    return dropped


def _rewrite_index(root: Path, ds: EpisodeDataset, kept: list[_Record], dropped: list[str],
                   durable: bool) -> None:
    meta = dict(ds.meta)
    old_name = meta["episodes_file"]["name"]
    n = 1
    while (root / f"episodes-r{n}.jsonl").exists():
        n += 1
    new_name = f"episodes-r{n}.jsonl"  # a new name: the old index stays valid until the commit
    lines = [
        _dumps({"index": i, "chunk": r.chunk, "offset": r.offset, "frames": r.frames,
                "seed": r.seed, "crc32": r.crc32, "info": r.info}, separators=(",", ":")) + "\n"
        for i, r in enumerate(kept)
    ]
    data = "".join(lines).encode()
    _atomic_write(root / new_name, data, durable=durable)
    # statistics and fingerprint of what is kept
    keep = np.zeros(ds.num_frames, dtype=bool)
    kept_idx = {r.index for r in kept}
    fingerprint = _fingerprint_seed(meta)
    for e, r in enumerate(ds._records):
        if r.index in kept_idx:
            keep[ds.episode_starts[e] : ds.episode_ends[e] + 1] = True
            fingerprint = _chain(fingerprint, _episode_digest(r.frames, r.seed, r.crc32))
    arrays = {k: np.asarray(getattr(ds, k), dtype=np.float32)[keep]
              for k in ds.fields if k != "images"}
    frames = int(keep.sum())
    meta.update(
        num_episodes=len(kept), num_frames=frames, num_transitions=frames - len(kept),
        episodes_file={"name": new_name, "bytes": len(data), "crc32": zlib.crc32(data)},
        stats_state=_stats_from_arrays(arrays, ds.has_next[keep]),
        fingerprint=fingerprint, updated=_now(),
    )
    meta["repairs"] = [*meta.get("repairs", []), {"time": _now(), "dropped": dropped}]
    meta["stats"] = _public_stats(meta["stats_state"], ds._specs)
    meta["action_stats"] = meta["stats"]["actions"]
    _atomic_write(root / META_FILE, _meta_to_bytes(meta), durable=durable)  # commit point
    if old_name != new_name:
        (root / old_name).unlink(missing_ok=True)
    from goalrl.data.card import render_card

    _atomic_write(root / CARD_FILE, render_card(meta, root).encode(), durable=False)
