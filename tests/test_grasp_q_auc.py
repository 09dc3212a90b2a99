"""bench/grasp_q_auc.py: closing frames and the AUC, on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest
from bench_modules import load_bench

probe = load_bench("grasp_q_auc")


def test_closing_frame_is_the_first_close_command_of_each_episode() -> None:
    grip = [-1, -1, 1, 1, 0,  # episode 0: closes at frame 2 (frame 4 is its last, no action)
            -1, -1, 0,  # episode 1: never closes
            1, -1, 1, 0]  # episode 2: closes at its first frame
    actions = np.zeros((len(grip), 4), np.float32)
    actions[:, 3] = grip
    starts, lengths = np.array([0, 5, 8]), np.array([5, 3, 4])
    assert probe.closing_frames(actions, starts, lengths).tolist() == [2, -1, 8]


def test_auc() -> None:
    assert probe.auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert probe.auc(np.array([0.1]), np.array([0.9])) == 0.0
    assert probe.auc(np.array([0.5, 0.5]), np.array([0.5])) == pytest.approx(0.5)
    assert probe.auc(np.array([0.3, 0.7]), np.array([0.5])) == pytest.approx(0.5)
    assert np.isnan(probe.auc(np.array([]), np.array([0.5])))
