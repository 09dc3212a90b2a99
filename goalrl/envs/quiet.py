"""Imports of the simulator libraries without their banners on stdout/stderr.

pybullet prints "pybullet build time: ..." when imported and "argv[0]=" when a client
connects, from C, straight to file descriptors 1 and 2, so ``contextlib.redirect_stdout``
cannot catch them; gymnasium-robotics prints a notice about its Adroit hand environments
(which goalrl does not use) on import. Every command's output would start with them, and
``goalrl data info`` promises JSON alone on stdout. Everything in goalrl that imports
pybullet or gymnasium_robotics goes through here.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

_LIBC = ctypes.CDLL(None)  # the process's C library: its stdio buffers hold the banners


def _flush_all() -> None:
    """Flush Python's and C's buffered output so nothing crosses the redirection."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):  # replaced or closed streams
            pass
    _LIBC.fflush(None)  # NULL: every C stream (a pipe's stdout is fully buffered)


@contextmanager
def silenced_fds() -> Iterator[None]:
    """Send whatever is written to file descriptors 1 and 2 to /dev/null inside the block."""
    try:
        saved = (os.dup(1), os.dup(2))
    except OSError:  # a descriptor is closed: there is nothing to protect
        yield
        return
    _flush_all()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        _flush_all()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def pybullet() -> ModuleType:
    """The ``pybullet`` module, imported without its build-time banner."""
    if "pybullet" not in sys.modules:
        with silenced_fds():
            import pybullet  # noqa: F401
    return sys.modules["pybullet"]


def bullet_client(connection_mode: int) -> Any:
    """A ``pybullet_utils`` BulletClient, connected without its "argv[0]=" line."""
    pybullet()
    from pybullet_utils.bullet_client import BulletClient

    with silenced_fds():
        return BulletClient(connection_mode=connection_mode)


def gymnasium_robotics() -> ModuleType:
    """``gymnasium_robotics``, imported without its notice about the Adroit hand envs."""
    if "gymnasium_robotics" not in sys.modules:
        try:  # the notice is looked up here by package name and version, then printed
            from farama_notifications import notifications
        except ImportError:
            notifications = {}
        robotics = notifications.get("gymnasium_robotics", {})
        for version in [v for v, text in robotics.items() if "AdroitHand" in text]:
            del robotics[version]  # only this notice: others still reach the user
        import gymnasium_robotics  # noqa: F401
    return sys.modules["gymnasium_robotics"]
