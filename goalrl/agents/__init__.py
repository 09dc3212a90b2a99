"""Goal-conditioned agents: Actionable Models (``AMAgent``) and the GCBC baseline (``GCBCAgent``).

Pure pieces live in their own modules and are tested alone: ``losses`` (TD targets, BCE,
negatives, Polyak), ``cem`` (batched cross-entropy maximisation), ``augment`` (random shift) and
``networks`` (encoder, Q network, policy network); ``config`` holds the ``EncoderConfig`` every
agent config nests and reads configs back from checkpoints. Checkpoints: ``goalrl.checkpoint``.
"""

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.config import EncoderConfig
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig
from goalrl.agents.networks import (
    GaussianPolicyNetwork,
    GoalQNetwork,
)

__all__ = [
    "AMAgent",
    "AMConfig",
    "GCBCAgent",
    "GCBCConfig",
    "EncoderConfig",
    "GaussianPolicyNetwork",
    "GoalQNetwork",
]
