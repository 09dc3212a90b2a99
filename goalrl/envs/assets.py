"""Where the scene assets (URDFs) live.

Assets sit in the repository's top-level ``envs/assets`` folder. ``GOALRL_ASSETS``
overrides the location (for an installed copy without the repository).
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ASSETS = Path(__file__).resolve().parents[2] / "envs" / "assets"


def assets_dir() -> Path:
    """The folder that holds ``arm5.urdf``, ``table.urdf``, ``tray.urdf`` and ``objects/``."""
    root = Path(os.environ.get("GOALRL_ASSETS", _REPO_ASSETS))
    if not (root / "arm5.urdf").is_file():
        raise FileNotFoundError(
            f"goalrl scene assets not found in {root} (expected arm5.urdf there); "
            "install goalrl from its repository (pip install -e .) or set GOALRL_ASSETS"
        )
    return root


def asset_path(name: str) -> str:
    """Absolute path of one asset file, e.g. ``asset_path("objects/cube.urdf")``."""
    path = assets_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"goalrl asset {name!r} not found at {path}")
    return str(path)
