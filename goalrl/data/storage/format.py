"""The on-disk format of episode datasets: chunked uint8 frames, an atomic commit point.

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
        state.f32            #   (N, S) float32 arm and scene coordinates (optional)
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

This module holds the format itself: names, field specs, meta.json and episode-index
parsing and validation, fingerprints and the running statistics kept in meta.json.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.errors import UserError

FORMAT_NAME = "goalrl-episodes"
FORMAT_VERSION = 1
META_FILE = "meta.json"
CARD_FILE = "README.md"
EPISODES_FILE = "episodes.jsonl"
CHUNKS_DIR = "chunks"
LOCK_FILE = ".writer.lock"
IMAGE_CHANNELS = (1, 3)  # grayscale or RGB frames, channels last
CHUNK_NAME = re.compile(r"^\d{6}$")
TMP_PREFIX = ".tmp-"


class DatasetError(UserError, ValueError):
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
    # (T+1, S) float32 what a state-based agent reads: the arm's and every object's
    # coordinates and the scene's layout (goalrl.envs.state); older data: proprio and
    # achieved_goal side by side stand in for it
    state: np.ndarray | None = None
    seed: int | None = None  # env seed of the episode
    info: dict = field(default_factory=dict)  # JSON-able per-episode metadata

    @property
    def num_steps(self) -> int:
        return int(len(self.actions))


# ----------------------------------------------------------------------------- field specs

# name -> (file name, on-disk dtype, per_step). per_step fields have T rows in memory and are
# zero-padded to T+1 rows on disk so that every chunk file is frame-aligned.
KNOWN_FIELDS: dict[str, tuple[str, str, bool]] = {
    "images": ("images.u8", "|u1", False),
    "actions": ("actions.f32", "<f4", True),
    "proprio": ("proprio.f32", "<f4", False),
    "rewards": ("rewards.f32", "<f4", True),
    "success": ("success.u1", "|u1", False),
    "achieved_goal": ("achieved_goal.f32", "<f4", False),
    "state": ("state.f32", "<f4", False),
}
OPTIONAL_FLAGS = ("rewards", "success")  # optional fields without a declared size


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
        file, dtype, per_step = KNOWN_FIELDS[name]
        return cls(name, file, dtype, tuple(int(s) for s in shape), per_step)

    @classmethod
    def from_json(cls, name: str, d: Any, where: Path) -> FieldSpec:
        if name not in KNOWN_FIELDS:
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


def make_specs(
    image_shape: tuple[int, int, int],
    action_dim: int,
    proprio_dim: int | None,
    goal_dim: int | None,
    flags: dict[str, bool | None],
    state_dim: int | None = None,
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
    if state_dim is not None:
        specs["state"] = FieldSpec.make("state", (state_dim,))
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


def dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=False, **kw)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ----------------------------------------------------------------------------- fingerprints


def episode_digest(frames: int, seed: int, crcs: dict[str, int]) -> bytes:
    body = dumps([frames, seed, sorted(crcs.items())], separators=(",", ":"))
    return hashlib.sha256(body.encode()).digest()


def fingerprint_seed(meta: dict) -> str:
    head = {"format": FORMAT_NAME, "image_shape": meta["image_shape"],
            "fields": {k: [v["dtype"], v["shape"]] for k, v in sorted(meta["fields"].items())}}
    return hashlib.sha256(dumps(head, sort_keys=True).encode()).hexdigest()


def chain_fingerprint(prev_hex: str, digest: bytes) -> str:
    """Hash chain over episode digests: O(1) per append, the dataset's fingerprint."""
    return hashlib.sha256(bytes.fromhex(prev_hex) + digest).hexdigest()


# ----------------------------------------------------------------------------- statistics


def empty_stat(n: int) -> dict:
    # min/max are None until the first row (JSON has no infinity)
    return {"count": 0, "sum": [0.0] * n, "sumsq": [0.0] * n, "min": None, "max": None}


def update_stat(state: dict, rows: np.ndarray) -> dict:
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


def public_stats(stats_state: dict, specs: dict[str, FieldSpec]) -> dict:
    return {k: _finish_stat(v, scalar=specs[k].shape == ()) for k, v in stats_state.items()}


def stats_from_arrays(arrays: dict[str, np.ndarray], has_next: np.ndarray) -> dict:
    out = {}
    for name, arr in arrays.items():
        rows = arr[has_next] if KNOWN_FIELDS[name][2] else arr
        out[name] = update_stat(empty_stat(int(math.prod(arr.shape[1:]))), rows)
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


def load_meta(root: Path) -> dict:
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
    if shape[2] not in IMAGE_CHANNELS:
        raise DatasetError(f"{path}: 'image_shape' {shape} has {shape[2]} channels; frames are "
                           f"(H, W, C) with C in {IMAGE_CHANNELS}")
    action_dim = _require(meta, "action_dim", int, path)
    for key in ("action_low", "action_high"):
        bound = _require(meta, key, list, path)
        if len(bound) != action_dim:
            raise DatasetError(f"{path}: {key} has {len(bound)} values, action_dim={action_dim}")
    check_action_bounds(meta["action_low"], meta["action_high"], str(path))
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


def check_action_bounds(low: Sequence[Any], high: Sequence[Any], where: str) -> None:
    """Refuse non-numeric or non-finite bounds and any dimension where low >= high."""
    for key, bound in (("action_low", low), ("action_high", high)):
        for d, v in enumerate(bound):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DatasetError(f"{where}: '{key}'[{d}] is {v!r}; action bounds must be "
                                   "finite numbers")
    for d, (lo, hi) in enumerate(zip(low, high, strict=True)):
        if not lo < hi:
            raise DatasetError(f"{where}: 'action_low'[{d}] = {lo!r} is not below "
                               f"'action_high'[{d}] = {hi!r} (swapped or empty bounds)")


def check_fingerprint(root: Path, meta: dict, records: list[EpisodeRecord]) -> None:
    """The recorded fingerprint must match the header and index as they are now.

    The writer chains image_shape, every field's dtype and shape, and each episode's length,
    seed and checksums into 'fingerprint'. A hand-edited image_shape (32x32x3 read as
    16x16x12: the same bytes per frame) would scramble every frame without a read error.
    """
    digest = fingerprint_seed(meta)
    for r in records:
        digest = chain_fingerprint(digest, episode_digest(r.frames, r.seed, r.crc32))
    if digest != meta["fingerprint"]:
        raise DatasetError(
            f"{root / META_FILE}: 'image_shape' {meta['image_shape']} and the field shapes "
            f"{ {k: v['shape'] for k, v in meta['fields'].items()} } do not match the "
            "'fingerprint' the writer recorded (meta.json edited or damaged?); restore the "
            "shapes the dataset was written with"
        )


def meta_to_bytes(meta: dict) -> bytes:
    public = {k: v for k, v in meta.items() if not k.startswith("_")}
    return (dumps(public, indent=1) + "\n").encode()


# ----------------------------------------------------------------------------- episode index


@dataclass
class EpisodeRecord:
    """One line of the episode index: where an episode's frames are and their checksums."""

    index: int
    chunk: int
    offset: int
    frames: int
    seed: int
    crc32: dict[str, int]
    info: dict


def parse_records(root: Path, meta: dict) -> list[EpisodeRecord]:
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
            rec = EpisodeRecord(r["index"], r["chunk"], r["offset"], r["frames"], r["seed"],
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


def _check_overlaps(records: list[EpisodeRecord], path: Path) -> None:
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


def format_episode_list(eps: Sequence[int]) -> str:
    eps = sorted(eps)
    return ", ".join(map(str, eps[:8])) + (f" ... ({len(eps)} in all)" if len(eps) > 8 else "")
