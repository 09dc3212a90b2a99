"""LossWatch: the worst loss of every update reaches the check, not only the logged ones."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from goalrl.agents.base import UpdateStats
from goalrl.loss_watch import LossWatch
from goalrl.training import TrainingError
from goalrl.training.loop import check_loss


def stats(loss: float) -> UpdateStats:
    return UpdateStats({"critic/loss": torch.tensor(loss), "q/mean": torch.tensor(0.5)})


def test_a_spike_between_checks_is_kept_and_the_watch_starts_over() -> None:
    watch = LossWatch()
    for step, loss in enumerate([0.7, -3e6, 0.6], start=11):  # explodes, then recovers
        watch.observe(stats(loss), step)
    assert watch.read() == (3e6, 11)
    assert watch.read() is None  # nothing since
    watch.observe(stats(0.2), 14)
    assert watch.read() == (pytest.approx(0.2), 14)


def test_one_nan_is_never_forgotten() -> None:
    watch = LossWatch()
    for step, loss in enumerate([0.5, float("nan"), 9.0, 0.1], start=1):
        watch.observe(stats(loss), step)
    worst, since = watch.read()
    assert math.isnan(worst) and since == 1


def test_observing_reads_nothing_back_and_takes_the_first_loss_key() -> None:
    s = UpdateStats({"actor/loss": torch.tensor(2.0), "task/loss": torch.tensor(-7.0)})
    watch = LossWatch()
    watch.observe(s, 1)
    assert s._values is None  # still unread: no host transfer per update
    assert watch.read() == (2.0, 1)
    watch.observe({"other": 1.0}, 2)  # no loss in these stats: nothing to watch
    assert watch.read() is None
    # a replayed CUDA graph hands its stats over stacked
    watch.observe(UpdateStats.stacked(["q", "critic/loss"], torch.tensor([0.3, 4.0])), 3)
    assert watch.read() == (4.0, 3)


def test_check_loss_names_the_updates_and_passes_a_sane_loss(tmp_path: Path) -> None:
    watch = LossWatch()
    watch.observe(stats(0.4), 5)
    check_loss(watch, 6, max_loss=1e4, out=tmp_path)  # fine: no error
    for step, loss in [(7, 0.3), (8, 2e4), (9, 0.3)]:
        watch.observe(stats(loss), step)
    with pytest.raises(TrainingError, match=r"loss became 20000.0 by update 10 .*updates 7-10"):
        check_loss(watch, 10, max_loss=1e4, out=tmp_path)
