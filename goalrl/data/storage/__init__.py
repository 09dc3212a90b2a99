"""Episode storage: chunked uint8 frames on disk, an atomic commit point, lazy reads.

One module per job: ``format`` (the on-disk layout, meta.json and index validation,
fingerprints), ``validate`` (checks of an episode before it is appended), ``files``
(crash-safe file primitives and the writer lock), ``writer`` (``DatasetWriter``),
``reader`` (``EpisodeDataset``) and ``repair`` (``repair_dataset``).
"""

from goalrl.data.storage.format import (
    CARD_FILE,
    CHUNKS_DIR,
    EPISODES_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    LOCK_FILE,
    META_FILE,
    DatasetError,
    EpisodeData,
    FieldSpec,
)
from goalrl.data.storage.reader import EpisodeDataset
from goalrl.data.storage.repair import repair_dataset
from goalrl.data.storage.writer import DatasetWriter

__all__ = [
    "CARD_FILE",
    "CHUNKS_DIR",
    "EPISODES_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LOCK_FILE",
    "META_FILE",
    "DatasetError",
    "DatasetWriter",
    "EpisodeData",
    "EpisodeDataset",
    "FieldSpec",
    "repair_dataset",
]
