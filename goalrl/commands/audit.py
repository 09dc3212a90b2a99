"""``goalrl data audit``: how many evaluation (start, goal) pairs one training episode shows.

A stitch dataset must show none of its test pairs (goalrl.benchmark.audit explains the count).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class DataAuditConfig:
    path: str = "???"  # dataset folder
    # evaluation goals: test | val | task1..task5 | random | split/task (e.g. val/task2)
    goals: str = "test"
    per_task: int = 20  # episodes per named task, and random goals
    tolerance: float = 0.05  # m: an object this close to its start/goal position matches
    # m: also ask the tcp to be this close to the arm pictured at start and goal; null: objects
    # only (the tcp in Reach)
    arm_tolerance: float | None = None
    card: bool = True  # record the result in the dataset's card (meta.json extra.audit)


def audit(cfg: DataAuditConfig) -> dict[str, Any]:
    """Audit ``cfg.path`` against ``cfg.goals``; return (and optionally record) the result."""
    from goalrl.benchmark.audit import audit_dataset, record_in_card

    settings = asdict(cfg)
    card = settings.pop("card")
    result = audit_dataset(**settings)
    if card:
        record_in_card(cfg.path, "audit", result)
    return result
