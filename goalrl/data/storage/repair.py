"""Repairing a damaged dataset: drop the episodes whose bytes are missing or corrupt; and
dropping the episodes after the first n (``keep_first_episodes``)."""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np

from goalrl.data.storage.files import FolderLock, atomic_write
from goalrl.data.storage.format import (
    CARD_FILE,
    META_FILE,
    EpisodeRecord,
    chain_fingerprint,
    dumps,
    episode_digest,
    fingerprint_seed,
    meta_to_bytes,
    public_stats,
    stats_from_arrays,
    utc_now,
)
from goalrl.data.storage.reader import EpisodeDataset


def repair_dataset(root: str | Path, *, check_images: bool = False,
                   durable: bool = True) -> list[str]:
    """Drop damaged episodes from the committed index; returns what was dropped.

    Damaged: bytes missing (truncated/missing chunk files) or failing their checksum.
    ``check_images`` also reads every frame to check image checksums (slow on big datasets).
    Frames stay where they are (episodes are addressed by chunk and row), so this only
    rewrites the small episode index and meta.json, each atomically.
    """
    root = Path(root)
    lock = FolderLock(root)
    lock.acquire()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = EpisodeDataset(root, skip_damaged=True)
        with ds:
            bad_images = ds.image_problems() if check_images else {}
        dropped = ds.damaged + [bad_images[k] for k in sorted(bad_images)]
        if not dropped:
            return []
        kept = [r for r in ds._records if r.index not in bad_images]
        _rewrite_index(root, ds, kept, dropped, durable)
    finally:
        lock.release()
    return dropped


def keep_first_episodes(root: str | Path, n: int, why: str, *, durable: bool = True) -> int:
    """Drop every committed episode after the first ``n`` (a resumed fine-tuning run drops the
    online episodes its checkpoint never saw); ``why`` is recorded with the dropped ones in
    meta.json. Returns how many were dropped."""
    root = Path(root)
    lock = FolderLock(root)
    lock.acquire()
    try:
        with EpisodeDataset(root) as ds:
            if ds.num_episodes < n:
                raise ValueError(f"{root}: has {ds.num_episodes} episodes, fewer than the {n} "
                                 "to keep")
            extra = ds._records[n:]
            if extra:
                dropped = [f"episode {r.index} (seed {r.seed}): {why}" for r in extra]
                _rewrite_index(root, ds, ds._records[:n], dropped, durable)
    finally:
        lock.release()
    return len(extra)


def _rewrite_index(root: Path, ds: EpisodeDataset, kept: list[EpisodeRecord], dropped: list[str],
                   durable: bool) -> None:
    meta = dict(ds.meta)
    old_name = meta["episodes_file"]["name"]
    n = 1
    while (root / f"episodes-r{n}.jsonl").exists():
        n += 1
    new_name = f"episodes-r{n}.jsonl"  # a new name: the old index stays valid until the commit
    lines = [
        dumps({"index": i, "chunk": r.chunk, "offset": r.offset, "frames": r.frames,
                "seed": r.seed, "crc32": r.crc32, "info": r.info}, separators=(",", ":")) + "\n"
        for i, r in enumerate(kept)
    ]
    data = "".join(lines).encode()
    atomic_write(root / new_name, data, durable=durable)
    # statistics and fingerprint of what is kept
    keep = np.zeros(ds.num_frames, dtype=bool)
    kept_idx = {r.index for r in kept}
    fingerprint = fingerprint_seed(meta)
    for e, r in enumerate(ds._records):
        if r.index in kept_idx:
            keep[ds.episode_starts[e] : ds.episode_ends[e] + 1] = True
            fingerprint = chain_fingerprint(fingerprint, episode_digest(r.frames, r.seed, r.crc32))
    arrays = {k: np.asarray(getattr(ds, k), dtype=np.float32)[keep]
              for k in ds.fields if k != "images"}
    frames = int(keep.sum())
    meta.update(
        num_episodes=len(kept), num_frames=frames, num_transitions=frames - len(kept),
        episodes_file={"name": new_name, "bytes": len(data), "crc32": zlib.crc32(data)},
        stats_state=stats_from_arrays(arrays, ds.has_next[keep]),
        fingerprint=fingerprint, updated=utc_now(),
    )
    meta["repairs"] = [*meta.get("repairs", []), {"time": utc_now(), "dropped": dropped}]
    meta["stats"] = public_stats(meta["stats_state"], ds._specs)
    meta["action_stats"] = meta["stats"]["actions"]
    atomic_write(root / META_FILE, meta_to_bytes(meta), durable=durable)  # commit point
    if old_name != new_name:
        (root / old_name).unlink(missing_ok=True)
    from goalrl.data.card import render_card

    atomic_write(root / CARD_FILE, render_card(meta, root).encode(), durable=False)
