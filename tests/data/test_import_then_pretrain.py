"""Every import format trains: source file -> `goalrl data import` -> pretrain (a few updates).

Imported logs name their own robot's environment (robomimic's "Lift", the Minari fixture's
tiny env), which is no goalrl scene: a run that does not evaluate must still train on them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import (  # noqa: E402
    make_episodes,
    write_lerobot_v3,
    write_minari_collector,
    write_robomimic,
)

from goalrl.agents import AMConfig, EncoderConfig  # noqa: E402
from goalrl.commands.data import DataImportConfig, import_  # noqa: E402
from goalrl.training import PretrainConfig, pretrain  # noqa: E402

TINY_AGENT = AMConfig(encoder=EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32),
                      head_hidden_dim=16)


def write_source(fmt: str, tmp_path: Path, monkeypatch) -> str:
    """A small source in ``fmt``'s real on-disk layout; returns what `src=` takes."""
    if fmt == "minari":
        monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
        write_minari_collector("test/tiny-v0", episodes=3, size=16, steps=5)
        return "test/tiny-v0"
    episodes = make_episodes(3, steps=5, size=16)
    if fmt == "lerobot":
        return str(write_lerobot_v3(tmp_path / "lerobot", episodes))
    return str(write_robomimic(tmp_path / "demo.hdf5", episodes))  # env_name "Lift"


@pytest.mark.parametrize("fmt", ["minari", "lerobot", "robomimic"])
def test_import_then_pretrain(fmt, tmp_path, monkeypatch) -> None:
    src = write_source(fmt, tmp_path, monkeypatch)
    data = tmp_path / "imported"
    imported = import_(DataImportConfig(src=src, format=fmt, out=str(data), image_size=16))
    assert imported["num_episodes"] == 3
    summary = pretrain(PretrainConfig(
        data=str(data), out=str(tmp_path / "run"), agent=TINY_AGENT, steps=3, batch_size=8,
        eval_episodes=0, eval_every=0, videos=0, save_every=3, log_every=1, prefetch=1,
        device="cpu", threads=1,
    ))
    assert summary["steps"] == 3
    assert (tmp_path / "run" / "checkpoints" / "step_0000003").is_dir()
