"""The worst loss of every update, watched without reading anything back per update.

Trainers read an update's stats only every ``log_every`` updates (each read waits for the
device). Checking only the loss of those updates would miss a loss that explodes and comes
back down in between; ``LossWatch`` keeps the largest |loss| since the last check as a
running maximum on the loss's own device (two small ops per update), so the check sees
every update. ``torch.maximum`` propagates NaN, so one NaN update is never forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from goalrl.agents.base import UpdateStats

LOSS_KEYS = ("critic/loss", "actor/loss", "task/loss")  # the loss of AM, GCBC, the task agent


class LossWatch:
    """Running max of |stats[key]| over the updates since the last ``read``."""

    def __init__(self, keys: tuple[str, ...] = LOSS_KEYS) -> None:
        self.keys = keys  # the first of these an update's stats have is its loss
        self._worst: torch.Tensor | None = None  # 0-d, on the loss's device
        self._since: int | None = None  # first update the running max covers

    def observe(self, stats: Mapping[str, Any], step: int) -> None:
        """Fold in update ``step``'s loss (an ``UpdateStats`` stays unread)."""
        key = next((k for k in self.keys if k in stats), None)
        if key is None:
            return
        loss = stats.tensor(key) if isinstance(stats, UpdateStats) else stats[key]
        loss = torch.as_tensor(loss).detach().float().abs()
        self._worst = loss if self._worst is None else torch.maximum(self._worst, loss)
        if self._since is None:
            self._since = step

    def read(self) -> tuple[float, int] | None:
        """(largest |loss|, first update it covers) since the last read, then start over;
        None when nothing was observed."""
        if self._worst is None:
            return None
        worst, since = float(self._worst), self._since
        self._worst, self._since = None, None
        return worst, since
