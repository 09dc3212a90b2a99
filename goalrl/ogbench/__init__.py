"""OGBench interop: its environments for data generation and evaluation.

OGBench (Park et al. 2024, ``pip install goalrl[ogbench]``) is an optional extra: only the
modules of this package import it, and only inside the functions that need it, so goalrl
imports and runs without it. Reading OGBench's ``.npz`` files needs no OGBench at all
(``goalrl.data.importers.ogbench``).

- ``generate``: OGBench-style datasets made locally with OGBench's own environments and its
  scripted oracles (``goalrl ogbench generate``).
- ``evaluate``: OGBench's five evaluation tasks of an environment (``goalrl eval
  env=ogbench:<name>``).
"""

from __future__ import annotations

import warnings
from types import ModuleType

from goalrl.errors import UserError

ENV_PREFIX = "ogbench:"  # `goalrl eval env=ogbench:<name>` names an OGBench environment
INSTALL_HINT = "pip install 'goalrl[ogbench]' (or pip install ogbench)"


class OGBenchError(UserError, ValueError):
    """Bad input for the OGBench commands (unknown environment, missing extra, ...)."""


def choose_renderer() -> str | None:
    """Set ``MUJOCO_GL=egl`` for off-screen rendering when nothing chose a backend yet.

    MuJoCo reads ``MUJOCO_GL`` once, when it is imported, and defaults to glfw, which needs a
    display: without one, pixel envs and videos fail. EGL renders without a display (on a
    GPU, or on the CPU through Mesa's llvmpipe; docs/ogbench.md). It is chosen only when the
    user set no backend, there is no display, mujoco is not imported yet and libEGL is
    installed, since MuJoCo fails to import under ``MUJOCO_GL=egl`` without libEGL. Returns
    the backend in effect (None: MuJoCo's default).
    """
    import ctypes.util
    import os
    import sys

    if ("MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY")
            and "mujoco" not in sys.modules and ctypes.util.find_library("EGL")):
        os.environ["MUJOCO_GL"] = "egl"
    backend = os.environ.get("MUJOCO_GL")
    if backend in ("egl", "osmesa"):
        preload_triton()
    return backend


def preload_triton() -> None:
    """Load triton's C library (torch's compiler, when installed) now, before MuJoCo starts
    Mesa: Mesa's software rasteriser links one LLVM and libtriton bundles another, and the
    process dies (SIGSEGV) when libtriton is loaded second, as torch does lazily, e.g. when
    training starts after a generation in the same process. Loaded first, both work."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        try:
            import triton._C.libtriton  # noqa: F401
        except ImportError:  # a broken triton: torch will report it if it ever needs it
            pass


def load_ogbench() -> ModuleType:
    """The ``ogbench`` package with its environments registered in gymnasium.

    Its import warns on a machine without a display (glfw: "DISPLAY environment variable is
    missing") and its spaces warn about float64 bounds; neither concerns goalrl's use, and
    commands print JSON alone, so they are silenced here.
    """
    choose_renderer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import ogbench
        except ImportError as error:
            raise OGBenchError(f"OGBench is not installed ({error}); {INSTALL_HINT}") from None
    return ogbench


def make_env(name: str, **kwargs) -> object:
    """``gymnasium.make(name, **kwargs)`` for an OGBench environment id, quietly; an
    OGBenchError naming ``name`` when OGBench does not register it."""
    import gymnasium

    load_ogbench()
    if name not in gymnasium.registry or not str(
            gymnasium.registry[name].entry_point).startswith("ogbench."):
        known = sorted(k for k, spec in gymnasium.registry.items()
                       if str(spec.entry_point).startswith("ogbench.manipspace")
                       and "singletask" not in k)
        raise OGBenchError(f"unknown OGBench environment {name!r}; manipulation ones: "
                           f"{', '.join(known)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the passive checker reads observation_space, a property that builds a new Box
        # (and warns about float64 bounds) on every access
        return gymnasium.make(name, **{"disable_env_checker": True, **kwargs})


def quiet_reset(env: object, **kwargs) -> tuple:
    """``env.reset(**kwargs)`` without the float64-bounds warning of the action space that
    an evaluation-task reset builds (for two random settling steps) every time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return env.reset(**kwargs)


def ogbench_versions() -> dict[str, str | None]:
    """Versions of ogbench and the simulator packages it runs on (for dataset cards)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("ogbench", "mujoco", "dm_control"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
