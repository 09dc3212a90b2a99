"""Renders docs/images/scenes.png: each scene's start view beside its goal image."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym

import goalrl
from goalrl.data.sheets import image_grid, write_png_atomic


def main(out: str = "docs/images/scenes.png", image_size: int = 128, seed: int = 3) -> None:
    rows = []
    for env_id in goalrl.ENV_IDS:
        env = gym.make(env_id, image_size=image_size)
        obs, _ = env.reset(seed=seed)
        rows.append([obs["image"], obs["desired_goal_image"]])
        env.close()
    scenes = [env_id.removeprefix("goalrl/").removesuffix("-v0") for env_id in goalrl.ENV_IDS]
    grid = image_grid(rows, ("start", "goal"), scale=1, row_labels=scenes)
    write_png_atomic(Path(out), grid)
    print(f"wrote {out}: rows {', '.join(goalrl.ENV_IDS)}")


if __name__ == "__main__":
    main()
