"""A tiny trained checkpoint for the goal-command tests (API, CLI, server, browser).

Push-v0 at 16x16 pixels, small networks and a small CEM, 4 updates on 2 play episodes:
seconds to make, real files and the real simulator. Trained once per pytest process and
shared by every module that asks (``tiny_checkpoint(tmp_path_factory)``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ENV = "goalrl/Push-v0"
SIZE = 16
TINY_AGENT = dict(  # AMConfig fields; the encoder's in the flat layout of AMConfig.from_dict
    conv_channels=[8, 8],
    embed_dim=16,
    fusion_dim=32,
    head_hidden_dim=16,
    act_cem_iterations=2,
    act_cem_samples=32,
    act_cem_elites=4,
)
_CACHE: dict[str, Path] = {}


def tiny_checkpoint(tmp_path_factory) -> Path:
    """Run folder of a tiny AM checkpoint of Push-v0 (16 px)."""
    if "run" not in _CACHE:
        from goalrl.agents import AMConfig
        from goalrl.commands.collect import CollectConfig, collect
        from goalrl.training import PretrainConfig, pretrain

        root = tmp_path_factory.mktemp("tiny_reacher")
        collect(
            CollectConfig(env=ENV, episodes=2, out=str(root / "data"), image_size=SIZE, sheet=False)
        )
        pretrain(
            PretrainConfig(
                data=str(root / "data"),
                out=str(root / "run"),
                agent=AMConfig.from_dict(TINY_AGENT),
                steps=4,
                batch_size=16,
                eval_episodes=0,
                videos=0,
                save_every=4,
                prefetch=1,
            )
        )
        _CACHE["run"] = root / "run"
    return _CACHE["run"]


def relabelled_copy(run: Path, dst: Path, **meta_changes) -> Path:
    """A copy of ``run``'s latest step folder with meta.json fields replaced (e.g. env_id)."""
    from goalrl.checkpoint import resolve_checkpoint

    shutil.copytree(resolve_checkpoint(run), dst)
    meta = json.loads((dst / "meta.json").read_text())
    meta.update(meta_changes)
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst
