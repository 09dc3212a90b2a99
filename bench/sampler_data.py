"""bench/sampler.py's synthetic datasets: written to a scratch folder, read into or dropped
from the OS page cache."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def scratch_dir(workdir: str | None) -> Iterator[Path]:
    """A temporary folder under ``workdir`` (the system's default if None), deleted afterwards:
    the datasets take up to ~12 GB."""
    with tempfile.TemporaryDirectory(prefix="goalrl-bench-", dir=workdir,
                                     ignore_cleanup_errors=True) as work:
        yield Path(work)


def make_dataset(root: Path, frames: int, image_size: int, seed: int = 0) -> dict:
    """Synthetic play data: episodes of 50-150 frames, random pixels, 7-D actions, 9-D proprio.

    Pixels come from a pool of random frames (generating 12 GB of fresh random bytes would
    dominate the set-up); the reads measured do not depend on pixel values.
    """
    from goalrl.data.storage import DatasetWriter, EpisodeData

    rng = np.random.default_rng(seed)
    shape = (image_size, image_size, 3)
    pool = rng.integers(0, 256, (2048, *shape), dtype=np.uint8)  # (P, H, W, 3)
    t0 = time.perf_counter()
    written = 0
    with DatasetWriter(root, image_shape=shape, action_dim=7, proprio_dim=9, source="bench",
                       env_id="synthetic", durable=False) as w:
        while written < frames:
            n = int(min(rng.integers(50, 151), frames - written))
            n = max(n, 2)
            o = int(rng.integers(0, len(pool) - n))
            w.append(EpisodeData(
                images=pool[o : o + n],
                actions=rng.uniform(-1, 1, (n - 1, 7)).astype(np.float32),
                proprio=rng.normal(size=(n, 9)).astype(np.float32),
                seed=w.num_episodes,
            ))
            written += n
        episodes = w.num_episodes
    dt = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"frames": written, "episodes": episodes, "write_s": dt, "bytes": size}


def evict_page_cache(root: Path) -> None:
    """Drop the dataset's clean pages from the OS page cache (no root needed)."""
    for p in root.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def warm_page_cache(root: Path) -> None:
    """Read every chunk file once so that frames are served from the page cache."""
    buf = bytearray(64 << 20)
    for p in sorted(root.rglob("images.u8")):
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
