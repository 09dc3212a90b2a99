"""``goalrl ogbench generate``: an OGBench-style dataset made locally with OGBench's own
environments and scripted oracles (``goalrl.ogbench.generate``; needs the ``ogbench`` extra).

The files are OGBench's ``.npz`` layout: ``goalrl data import format=ogbench src=<out>``
brings them into goalrl, and OGBench's own ``load_dataset`` reads them as well.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class OgbenchGenerateConfig:
    env: str = "cube-single-v0"  # OGBench manipulation env (cube-*, scene-*, puzzle-*, visual-*)
    dataset_type: str = "play"  # play (plan oracle) | noisy (Markov oracle + action noise)
    out: str = "???"  # .npz path; validation episodes go to <stem>-val.npz, settings to .json
    episodes: int = 100  # training episodes (OGBench's cube-single sets: 1000)
    val_episodes: int | None = None  # validation episodes (null: episodes // 10, as OGBench)
    max_episode_steps: int = 1001  # frames per episode (OGBench: 1001)
    seed: int = 0  # episode i resets the env and numpy with seed + i
    noise: float = 0.1  # play: plan noise scale; noisy: largest per-episode action noise std
    noise_smoothing: float = 0.5  # play: Gaussian smoothing (steps) of the plan noise
    min_norm: float = 0.4  # noisy: smallest norm of the Markov oracle's position steps
    p_random_action: float | None = None  # null: 0 for play; noisy 0.1 (puzzle 0.2), as OGBench
    overwrite: bool = False  # replace existing files at out (else refused)


def generate(cfg: OgbenchGenerateConfig) -> dict[str, Any]:
    """Generate the dataset; return the summary (also written beside it as .json)."""
    from goalrl.ogbench.generate import GenerateSettings, generate_dataset

    fields = asdict(cfg)
    out, overwrite = fields.pop("out"), fields.pop("overwrite")
    return generate_dataset(out, GenerateSettings(**fields), overwrite=overwrite)
