"""bench/children.py: a process a driver starts stops when the driver is killed (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from bench_modules import BENCH

# a driver stand-in: starts a long child the way the drivers do, prints its pid, waits
DRIVER = f"""
import subprocess, sys, time
sys.path.insert(0, {str(BENCH)!r})
from children import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_killed_drivers_child_stops_too() -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    child = int(driver.stdout.readline())
    assert alive(child)
    os.kill(driver.pid, signal.SIGKILL)  # no handler, no cleanup: only the kernel can help
    driver.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
