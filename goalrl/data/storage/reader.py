"""Reading episode datasets: ``EpisodeDataset``, low-dim fields in RAM, frames read lazily."""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.storage.format import (
    CHUNKS_DIR,
    DatasetError,
    EpisodeData,
    EpisodeRecord,
    FieldSpec,
    chain_fingerprint,
    check_fingerprint,
    episode_digest,
    fingerprint_seed,
    format_episode_list,
    load_meta,
    parse_records,
)

_FAULT_AROUND_BYTES = 64 << 10  # Linux default fault_around_bytes
_CHECK_READ_BYTES = 8 << 20  # image checks read an episode in slices of at most this


class EpisodeDataset:
    """Read-only view of a dataset: low-dim fields in RAM, frames read lazily from disk.

    ``read_mode``: "pread" (default) reads each requested frame with one ``os.preadv``
    system call straight into the output batch; "mmap" maps each chunk and gathers with numpy
    fancy indexing, releasing the mapped pages every ``mmap_release_bytes`` read so that RSS
    stays bounded. See docs/benchmarks/sampler.md for why pread is the default.

    ``skip_damaged``: drop (and list in ``damaged``) episodes whose bytes are missing or fail
    their checksum, instead of raising DatasetError. ``verify_checksums``: check the CRC-32 of
    every low-dim field slice on open. ``verify_images``: check an episode's image CRC-32 the
    first time any of its frames is read (the whole episode is read once, then never again by
    this reader; cost in docs/benchmarks/sampler.md); ``verify`` checks every episode at once.

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
        verify_images: bool = True,
        mmap_release_bytes: int = 256 << 20,
    ) -> None:
        if read_mode not in ("pread", "mmap"):
            raise ValueError(f"read_mode must be 'pread' or 'mmap', got {read_mode!r}")
        self.root = Path(root)
        self.read_mode = read_mode
        self._opts = {"read_mode": read_mode, "skip_damaged": skip_damaged,
                      "verify_checksums": verify_checksums, "verify_images": verify_images,
                      "mmap_release_bytes": mmap_release_bytes}
        self._verify_images = bool(verify_images)
        self._fds: list[int] = []
        self._mmaps: list[mmap.mmap | None] = []
        self._mm_arrays: list[np.ndarray | None] = []
        self._mmap_release_bytes = int(mmap_release_bytes)
        self._mmap_touched = 0

        meta = load_meta(self.root)
        self._specs: dict[str, FieldSpec] = meta.pop("_specs")
        self.meta: dict = meta
        records = parse_records(self.root, {**meta, "_specs": self._specs})
        check_fingerprint(self.root, meta, records)
        problems: dict[int, str] = {}
        avail = self._chunk_rows(records, problems, strict=not skip_damaged)
        lowdim = self._load_lowdim(records, avail, problems, verify_checksums)
        if problems and not skip_damaged:
            raise DatasetError(
                f"{self.root}: {len(problems)} damaged episode(s) "
                f"[{format_episode_list(list(problems))}]: "
                + "; ".join(problems[i] for i in sorted(problems)[:5])
                + f" -- `goalrl data repair path={self.root}` drops them and keeps the rest"
            )
        self.damaged: list[str] = [problems[i] for i in sorted(problems)]
        self.damaged_episodes: list[int] = sorted(problems)  # committed index of each
        if problems:
            warnings.warn(f"{self.root}: skipping {len(problems)} damaged episode(s): "
                          f"{format_episode_list(list(problems))}", stacklevel=2)
        kept = [r for r in records if r.index not in problems]
        self._build_index(kept, lowdim)
        self._open_images(avail)

    # -- opening
    def _chunk_rows(self, records: list[EpisodeRecord], problems: dict[int, str],
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
                                           f"episodes {format_episode_list(users)})")
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

    def _load_lowdim(self, records: list[EpisodeRecord], avail: list[int], problems: dict[int, str],
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

    def _build_index(self, kept: list[EpisodeRecord], lowdim: dict[str, list[np.ndarray]]) -> None:
        self._records = kept
        lengths = np.array([r.frames for r in kept], dtype=np.int64)
        self.episode_lengths: np.ndarray = lengths  # (E,) frames per episode (T+1)
        starts = np.zeros(len(kept), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        self.episode_starts: np.ndarray = starts  # (E,) global index of each first frame
        self.episode_ends: np.ndarray = self.episode_starts + lengths - 1  # (E,) last frame
        self._ep_chunk = np.array([r.chunk for r in kept], dtype=np.int64)  # (E,)
        self._ep_offset = np.array([r.offset for r in kept], dtype=np.int64)  # (E,) row in chunk
        self._ep_checked = np.zeros(len(kept), dtype=bool)  # (E,) images matched their CRC
        self._all_checked = not self._verify_images or not kept
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
        self.state: np.ndarray | None = gather("state")  # (N, S) float32
        digest = fingerprint_seed(self.meta)
        for r in kept:
            digest = chain_fingerprint(digest, episode_digest(r.frames, r.seed, r.crc32))
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
    def state_dim(self) -> int | None:  # None: recorded without the state field
        return self.meta.get("state_dim")

    @property
    def action_low(self) -> np.ndarray:
        return np.asarray(self.meta["action_low"], dtype=np.float32)  # (A,)

    @property
    def action_high(self) -> np.ndarray:
        return np.asarray(self.meta["action_high"], dtype=np.float32)  # (A,)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._specs)

    @property
    def episodes_checked(self) -> int:
        """Episodes whose images this reader has matched against their CRC-32 so far."""
        return int(self._ep_checked.sum())

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
        """Global frame indices -> (chunk, row in chunk); checks episodes read the first time."""
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_frames):
            raise IndexError(f"frame index out of range [0, {self.num_frames})")
        ep = np.searchsorted(self.episode_starts, idx, side="right") - 1
        if not self._all_checked:
            self._check_first_reads(ep)
        return self._ep_chunk[ep], self._ep_offset[ep] + (idx - self.episode_starts[ep])

    def _check_first_reads(self, ep: np.ndarray) -> None:
        """CRC-check the images of every episode in ``ep`` not checked yet (each read once).

        Prefetch threads may race here: an episode is at worst checked twice, never skipped.
        """
        for e in np.unique(ep[~self._ep_checked[ep]]).tolist():
            problem = self._episode_image_problem(e)
            if problem is not None:
                raise self._damage_error(problem)
        self._all_checked = bool(self._ep_checked.all())

    def _damage_error(self, problem: str) -> DatasetError:
        return DatasetError(f"{problem} -- `goalrl data verify path={self.root}` lists every "
                            f"damaged episode, `goalrl data repair path={self.root}` drops them")

    def _episode_image_problem(self, e: int) -> str | None:
        """Read episode ``e``'s frames in slices and compare their CRC-32; None when intact."""
        r = self._records[e]
        path = self.root / CHUNKS_DIR / f"{r.chunk:06d}" / self._specs["images"].file
        fd, fb = self._fds[r.chunk], self._frame_bytes
        per_read = max(1, _CHECK_READ_BYTES // fb)
        buf = bytearray(min(r.frames, per_read) * fb)
        crc = 0
        for start in range(0, r.frames, per_read):
            want = min(per_read, r.frames - start) * fb
            view = memoryview(buf)[:want]
            if fd < 0 or os.preadv(fd, [view], (r.offset + start) * fb) != want:
                return (f"{path}: episode {r.index}: field 'images' short read (file truncated "
                        f"while open? needs {(r.offset + r.frames) * fb} bytes)")
            crc = zlib.crc32(view, crc)
        if crc != r.crc32["images"]:
            return self._checksum_problem(r)
        self._ep_checked[e] = True
        return None

    def _checksum_problem(self, r: EpisodeRecord) -> str:
        path = self.root / CHUNKS_DIR / f"{r.chunk:06d}" / self._specs["images"].file
        return f"{path}: episode {r.index}: field 'images' fails its checksum (corrupt bytes)"

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
        if self._verify_images and not self._ep_checked[i]:  # the frames are here: no re-read
            if zlib.crc32(images) != r.crc32["images"]:
                raise self._damage_error(self._checksum_problem(r))
            self._ep_checked[i] = True
            self._all_checked = bool(self._ep_checked.all())

        def sl(a: np.ndarray | None, per_step: bool = False) -> np.ndarray | None:
            return None if a is None else a[s : s + n - (1 if per_step else 0)].copy()

        return EpisodeData(
            images=images, actions=sl(self.actions, True), proprio=sl(self.proprio),
            rewards=sl(self.rewards, True), success=sl(self.success),
            achieved_goal=sl(self.achieved_goal), state=sl(self.state),
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
        problems = self.image_problems()
        return [problems[k] for k in sorted(problems)]

    def image_problems(self) -> dict[int, str]:
        """Committed episode index -> what is wrong with its images, for every damaged one."""
        problems = {}
        for e, r in enumerate(self._records):
            problem = self._episode_image_problem(e)
            if problem is not None:
                problems[r.index] = problem
        self._all_checked = bool(self._ep_checked.all()) or not self._verify_images
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
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.close()

    def __getstate__(self) -> dict:
        # file descriptors and mappings do not cross processes: re-open on unpickle
        return {"root": str(self.root), **self._opts}

    def __setstate__(self, state: dict) -> None:
        root = state.pop("root")
        self.__init__(root, **state)  # type: ignore[misc]
