"""``goalrl data verify`` and ``goalrl data repair``: every checksum, and dropping what fails.

Opening a dataset checks meta.json, the episode index and every low-dim field's CRC-32; the
reader checks an episode's images the first time it reads them. ``verify_dataset`` reads
every frame once, so damage anywhere is found before a long run meets it.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

from goalrl.data.storage import DatasetError, EpisodeDataset, repair_dataset
from goalrl.data.storage.format import format_episode_list

SHOWN_PROBLEMS = 5  # problems quoted in the error; the count and episode list name the rest


def _open_listing_damage(root: Path) -> EpisodeDataset:
    """Open with damaged episodes set aside (listed in ``damaged``) instead of raising."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the damage is reported by the caller
        return EpisodeDataset(root, skip_damaged=True)


def verify_dataset(path: str | Path) -> dict:
    """Check every checksum of the dataset at ``path``: a summary, or a DatasetError that
    names each damaged episode, its chunk file and what fails."""
    root = Path(path).expanduser()
    start = time.perf_counter()
    with _open_listing_damage(root) as ds:
        problems = dict(zip(ds.damaged_episodes, ds.damaged, strict=True))
        problems.update(ds.image_problems())  # reads every frame once
        fields = list(ds.fields)
        episodes, frames = ds.num_episodes, ds.num_frames
        image_bytes = frames * math.prod(ds.image_shape)
    if problems:
        raise DatasetError(
            f"{root}: {len(problems)} damaged episode(s) [{format_episode_list(list(problems))}]: "
            + "; ".join(problems[e] for e in sorted(problems)[:SHOWN_PROBLEMS])
            + f" -- `goalrl data repair path={root}` drops them and keeps the rest"
        )
    return {
        "path": str(root.resolve()),  # dataset folder checked
        "ok": True,  # every checksum matched
        "num_episodes": episodes,  # episodes checked
        "num_frames": frames,  # frames read and checked
        "fields": fields,  # fields whose per-episode CRC-32 matched
        "image_bytes": image_bytes,  # image bytes read
        "seconds": round(time.perf_counter() - start, 3),  # time the check took
    }


def repair_summary(path: str | Path, *, check_images: bool = True) -> dict:
    """Drop the damaged episodes of the dataset at ``path``; a summary of what was done."""
    root = Path(path).expanduser()
    dropped = repair_dataset(root, check_images=check_images)
    with EpisodeDataset(root, verify_images=False) as ds:
        episodes, frames = ds.num_episodes, ds.num_frames
    return {
        "path": str(root.resolve()),  # dataset folder repaired
        "images_checked": check_images,  # whether every frame was read and checked
        "dropped": len(dropped),  # episodes removed from the index (frames stay on disk)
        "problems": dropped,  # what was wrong with each dropped episode
        "num_episodes": episodes,  # episodes left
        "num_frames": frames,  # frames left
    }
