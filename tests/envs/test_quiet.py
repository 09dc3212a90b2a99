"""The simulator libraries load without printing their banners."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

from goalrl.envs.quiet import silenced_fds


def test_silenced_fds_swallows_c_level_output_and_restores_it(capfd) -> None:
    libc = ctypes.CDLL(None)
    print("before", flush=True)
    with silenced_fds():
        libc.printf(b"argv[0]=\n")  # buffered by C's stdio: flushed inside the block
        os.write(2, b"pybullet build time: now\n")
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert out == "before\nafter\n" and err == ""


def test_pybullet_import_and_connect_print_nothing() -> None:
    code = ("from goalrl.envs import quiet\n"
            "p = quiet.pybullet()\n"
            "client = quiet.bullet_client(p.DIRECT)\n"
            "quiet.gymnasium_robotics()\n"
            "print('ok', client.getConnectionInfo()['isConnected'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("ok 1\n", "")
