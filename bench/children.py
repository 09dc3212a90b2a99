"""Processes a benchmark driver starts stop when the driver stops (Linux).

Stopping ``bench/table.py`` with ``kill`` used to stop the driver alone: its pool workers
went on to train the next cells, and a restarted driver then raced them for the same run
folders. Every process a driver starts (pool workers, ``goalrl`` subprocesses) asks the
kernel for SIGTERM when its parent goes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """SIGTERM to this process when the thread that started it exits (for a driver's main
    thread: when the driver exits). A ``preexec_fn`` for subprocesses and an ``initializer``
    for pool workers; a no-op off Linux."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent went before the request took effect
        os._exit(1)
