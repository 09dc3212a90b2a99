"""Importers: robot logs in Minari, LeRobot v3, robomimic or OGBench files -> a goalrl dataset.

Every importer streams one episode at a time (never the whole source in RAM), converts
frames to square RGB uint8 at ``image_size`` (``goalrl.data.images``), checks each episode
and appends it atomically with ``DatasetWriter``, which also keeps the action statistics.
The format modules (``minari``, ``lerobot``, ``robomimic``, ``ogbench``) read; ``common``
writes, checks and resumes. This package picks the importer of a format by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from goalrl.data.importers.common import (
    ImportSource,
    SourceEpisode,
    bounds_from_data,
    check_episode,
    import_key,
    run_import,
    split_seed,
)
from goalrl.data.storage import DatasetError

FORMATS = ("minari", "lerobot", "robomimic", "ogbench")  # valid values of `format=`

__all__ = [
    "FORMATS",
    "ImportSource",
    "SourceEpisode",
    "bounds_from_data",
    "check_episode",
    "get_importer",
    "import_dataset",
    "import_key",
    "run_import",
    "split_seed",
]


def import_dataset(src: str | Path, fmt: str, out: str | Path, **kwargs: Any) -> dict:
    """Import ``src`` in format ``fmt`` into the goalrl dataset folder ``out``.

    kwargs go to the format's importer (camera=, image_size=, proprio=, fps=, ...).
    """
    return get_importer(fmt)(src, out, **kwargs)


def get_importer(fmt: str) -> Callable[..., dict]:
    """The import function of a format; a clear error for unknown names."""
    name = str(fmt).strip().lower()
    if name == "minari":
        from goalrl.data.importers.minari import import_minari

        return import_minari
    if name == "lerobot":
        from goalrl.data.importers.lerobot import import_lerobot

        return import_lerobot
    if name == "robomimic":
        from goalrl.data.importers.robomimic import import_robomimic

        return import_robomimic
    if name == "ogbench":
        from goalrl.data.importers.ogbench import import_ogbench

        return import_ogbench
    raise DatasetError(f"unknown dataset format {fmt!r}; valid formats: {', '.join(FORMATS)}")
