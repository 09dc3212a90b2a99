"""Fixtures shared by the fine-tuning tests."""

from __future__ import annotations

import pytest

from goalrl.data.task import TaskBatchSampler


@pytest.fixture
def task_batch_keys(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every key of every labeled batch that fine-tuning samples (filled as the run goes)."""
    keys: set[str] = set()
    sample = TaskBatchSampler.sample

    def spy(self):
        batch = sample(self)
        keys.update(batch)
        return batch

    monkeypatch.setattr(TaskBatchSampler, "sample", spy)
    return keys
