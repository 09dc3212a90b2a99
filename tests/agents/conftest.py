"""Fixtures shared by the agents' tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Learning tests run on one thread, so their result does not depend on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
