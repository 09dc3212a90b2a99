"""``goalrl collect``: scripted play episodes from a scene into a dataset.

Episode ``i`` of a dataset uses env seed ``seed + i``, so a collection is the same
whatever the number of workers, and an interrupted one resumes where it stopped:
``episodes`` is the total the dataset should hold, finished episodes are kept.
The work is done by ``goalrl.data.collect.collect_dataset``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CollectConfig:
    env: str = "goalrl/Push-v0"  # registered scene id
    episodes: int = 20  # total episodes the dataset should hold (resumes if some exist)
    out: str = "datasets/push"  # dataset folder (created or appended to)
    workers: int = 1  # parallel simulator processes
    # play (scripted noisy sub-skills), stitch (exactly one scripted skill per episode, which
    # ends with it), random (uniform actions), or grasp (one noisy scripted grasp-and-lift
    # attempt per episode, succeeding part of the time: reward-labeled task data), or tray
    # (one noisy pick-and-place into the tray per episode, for goalrl/RearrangeTray-v0)
    policy: str = "play"
    image_size: int = 64  # camera image side (pixels)
    seed: int = 0  # episode i uses env seed `seed + i`
    action_noise: float = 0.15  # std of the noise added to scripted actions (gripper excepted)
    # play/stitch: gaussian (independent per step) or ou (Ornstein-Uhlenbeck: temporally
    # correlated, same std, lag-1 autocorrelation 1 - noise_theta)
    noise: str = "gaussian"
    noise_theta: float = 0.15  # ou noise: pull toward 0 per step, in (0, 1]
    # play/stitch: a random-motion segment lasts low..high-1 steps ([low, high])
    random_steps: list[int] = field(default_factory=lambda: [5, 15])
    # std (m) of scripted waypoints (None: 0.01; grasp 0.03; tray 0.02)
    waypoint_noise: float | None = None
    # policy=play or stitch: the mix of skills, skill -> weight (reach, push, pick_place,
    # random), e.g. +skill_weights.push=0.3 +skill_weights.random=0.7; empty: the scene's own
    # mix (play: goalrl.envs.play.SKILL_WEIGHTS; stitch: the skills its goals are made of)
    skill_weights: dict[str, float] = field(default_factory=dict)
    # the benchmark set this makes, recorded in the dataset card (set by dataset=<preset>, e.g.
    # dataset=push-noisy; `goalrl collect --help` lists the presets); null: an ad hoc collection
    benchmark: str | None = None
    # after collecting, count the evaluation (start, goal) pairs of these goals (test, val,
    # task1, ...) that one training episode shows, into the card (goalrl data audit); null: skip
    audit_goals: str | None = None
    audit_per_task: int = 20  # audit: episodes per named task and random goals
    sheet: bool = True  # write <out>/contact_sheet.png of start frames and goal images
    sheet_episodes: int = 8  # episodes shown on the contact sheet


def collect(cfg: CollectConfig) -> dict[str, Any]:
    """Collect scripted episodes into ``cfg.out``; return the summary."""
    from goalrl.data.collect import collect_dataset

    return collect_dataset(**asdict(cfg))
