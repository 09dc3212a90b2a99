"""Writing episode datasets: ``DatasetWriter`` creates a dataset or resumes appending to it.

Every data file is append-only; ``DatasetWriter.append`` writes an episode's bytes past the
committed end, then atomically replaces meta.json (the commit point). See
``goalrl.data.storage.format`` for the layout and the crash-safety argument.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.storage.files import (
    DeferSigint,
    FolderLock,
    atomic_write,
    fdatasync,
    fsync_dir,
    pwrite_all,
)
from goalrl.data.storage.format import (
    CARD_FILE,
    CHUNK_NAME,
    CHUNKS_DIR,
    EPISODES_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_CHANNELS,
    KNOWN_FIELDS,
    LOCK_FILE,
    META_FILE,
    OPTIONAL_FLAGS,
    TMP_PREFIX,
    DatasetError,
    EpisodeData,
    FieldSpec,
    chain_fingerprint,
    dumps,
    empty_stat,
    episode_digest,
    fingerprint_seed,
    load_meta,
    make_specs,
    meta_to_bytes,
    public_stats,
    update_stat,
    utc_now,
)
from goalrl.data.storage.format import check_action_bounds as refuse_bad_bounds
from goalrl.data.storage.reader import EpisodeDataset
from goalrl.data.storage.validate import (
    normalise_bound,
    validate_episode,
    validate_info,
    validate_seed,
)


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
        state_dim: int | None = None,
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
        for name, dim in (("proprio_dim", proprio_dim), ("goal_dim", goal_dim),
                          ("state_dim", state_dim)):
            if dim is not None and int(dim) <= 0:
                raise ValueError(f"{name} must be positive or None")
        if image_shape[2] not in IMAGE_CHANNELS:
            raise DatasetError(f"{self.root}: image_shape {image_shape} has {image_shape[2]} "
                               f"channels; frames are (H, W, C) with C in {IMAGE_CHANNELS}")
        low = normalise_bound(action_low, int(action_dim), f"{self.root}: action_low")
        high = normalise_bound(action_high, int(action_dim), f"{self.root}: action_high")
        refuse_bad_bounds(low, high, str(self.root))
        wanted = {
            "image_shape": list(image_shape), "action_dim": int(action_dim),
            "action_low": low, "action_high": high,
            "proprio_dim": None if proprio_dim is None else int(proprio_dim),
            "goal_dim": None if goal_dim is None else int(goal_dim),
            "env_id": env_id, "source": source, "fps": float(fps),
        }
        if state_dim is not None:  # datasets without the field keep the meta they always had
            wanted["state_dim"] = int(state_dim)
        flags = {"rewards": has_rewards, "success": has_success}

        self._closed = True
        self._fds: dict[str, int] = {}
        self._fd_chunk = -1
        self._ep_fd = -1
        existing = (self.root / META_FILE).is_file()
        if not existing:
            self._check_empty_folder()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FolderLock(self.root)
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
        meta = load_meta(Path(root))
        params = {
            "image_shape": tuple(meta["image_shape"]), "action_dim": meta["action_dim"],
            "action_low": meta["action_low"], "action_high": meta["action_high"],
            "proprio_dim": meta.get("proprio_dim"), "goal_dim": meta.get("goal_dim"),
            "state_dim": meta.get("state_dim"),
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
                   if p.name != LOCK_FILE and not p.name.startswith(TMP_PREFIX)
                   and not (p.name == EPISODES_FILE and p.stat().st_size == 0)]
        if foreign:
            raise DatasetError(
                f"{self.root}: folder is not empty and has no {META_FILE} "
                f"(not a goalrl dataset); found {sorted(foreign)[:5]}"
            )

    def _create(self, wanted: dict, flags: dict, extra_meta: dict | None) -> None:
        specs = make_specs(tuple(wanted["image_shape"]), wanted["action_dim"],
                            wanted["proprio_dim"], wanted["goal_dim"], flags,
                            wanted.get("state_dim"))
        meta = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "created": utc_now(), "updated": utc_now(), **wanted,
            "chunk_frames": self.chunk_frames,
            "fields": {k: s.to_json() for k, s in specs.items()},
            "pending_fields": [k for k in OPTIONAL_FLAGS if flags[k] is None],
            "num_episodes": 0, "num_frames": 0, "num_transitions": 0,
            "chunks": [], "episodes_file": {"name": EPISODES_FILE, "bytes": 0, "crc32": 0},
            "stats_state": {k: empty_stat(s.row_items) for k, s in specs.items()
                            if k != "images"},
            "extra": dict(extra_meta or {}),
        }
        meta["fingerprint"] = fingerprint_seed(meta)
        self._set_state(meta, specs)
        (self.root / EPISODES_FILE).touch()
        self._commit_meta(meta)
        self._write_card()

    def _resume(self, wanted: dict, flags: dict, extra_meta: dict | None) -> None:
        meta = load_meta(self.root)
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
                meta["stats_state"][k] = empty_stat(1)
        if extra_meta:
            meta["extra"] = {**meta.get("extra", {}), **extra_meta}
        meta["chunk_frames"] = self.chunk_frames
        meta["fingerprint"] = meta["fingerprint"] if meta["num_episodes"] else fingerprint_seed(
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
                if CHUNK_NAME.match(p.name) and p.name not in committed:
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
            if p.name.startswith(TMP_PREFIX):
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
        return json.loads(meta_to_bytes(self._meta))

    def append(self, episode: EpisodeData) -> int:
        """Validate, write and commit one episode atomically; returns its index."""
        if self._closed:
            raise ValueError(f"{self.root}: DatasetWriter is closed")
        index = self.num_episodes
        specs = self._specs_for(episode)
        arrays = validate_episode(episode, specs, self._bounds(), f"{self.root}: episode {index}")
        seed = validate_seed(episode.seed, f"{self.root}: episode {index}")
        info = validate_info(episode.info, f"{self.root}: episode {index}")
        frames = len(arrays["images"])
        chunk, offset = self._place(frames)
        crcs = {k: zlib.crc32(a) for k, a in arrays.items()}
        record = {"index": index, "chunk": chunk, "offset": offset, "frames": frames,
                  "seed": seed, "crc32": crcs, "info": info}
        line = (dumps(record, separators=(",", ":")) + "\n").encode()
        meta = self._next_meta(specs, arrays, chunk, frames, line, seed, crcs)
        with DeferSigint():
            self._write_rows(chunk, offset, arrays, specs)
            pwrite_all(self._ep_fd, line, self._meta["episodes_file"]["bytes"])
            if self.durable:
                fdatasync(self._ep_fd)
            self._commit_meta(meta)  # <- commit point
            self._specs = specs
        return index

    def close(self) -> None:
        """Write the final metadata and the dataset card; release the writer lock."""
        if self._closed:
            return
        self._closed = True
        try:
            self._meta["updated"] = utc_now()
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
            order = list(KNOWN_FIELDS)
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
                fsync_dir(folder.parent)
                fsync_dir(self.root)
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
            pwrite_all(fds[name], arr.data, start)
            if self.durable:
                fdatasync(fds[name])

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
            stats[name] = update_stat(stats.get(name, empty_stat(specs[name].row_items)), rows)
        if old["num_episodes"] == 0:
            meta["fields"] = {k: s.to_json() for k, s in specs.items()}
            meta["pending_fields"] = []
            meta["fingerprint"] = fingerprint_seed(meta)
        meta.update(
            num_episodes=old["num_episodes"] + 1,
            num_frames=old["num_frames"] + frames,
            num_transitions=old["num_transitions"] + frames - 1,
            chunks=chunks,
            episodes_file={"name": ep_file["name"], "bytes": ep_file["bytes"] + len(line),
                           "crc32": zlib.crc32(line, ep_file["crc32"])},
            stats_state=stats,
            updated=utc_now(),
        )
        meta["fingerprint"] = chain_fingerprint(meta["fingerprint"],
                                                episode_digest(frames, seed, crcs))
        return meta

    def _commit_meta(self, meta: dict) -> None:
        specs = {k: FieldSpec.from_json(k, v, self.root / META_FILE)
                 for k, v in meta["fields"].items()}
        meta["stats"] = public_stats(meta["stats_state"], specs)
        meta["action_stats"] = meta["stats"]["actions"]
        atomic_write(self.root / META_FILE, meta_to_bytes(meta), durable=self.durable)
        self._meta = meta

    def _write_card(self) -> None:
        from goalrl.data.card import render_card  # local import: card is presentation only

        text = render_card(self._meta, self.root)
        atomic_write(self.root / CARD_FILE, text.encode(), durable=False)
