"""``goalrl finetune``: a pretrained checkpoint (or none) to a task policy
(goalrl/training/finetune.py)."""

from __future__ import annotations

from typing import Any

from goalrl.training.finetune import FinetuneConfig, finetune

__all__ = ["FinetuneConfig", "finetune", "run"]


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    return finetune(cfg)
