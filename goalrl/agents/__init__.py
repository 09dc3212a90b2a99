"""Goal-conditioned agents: Actionable Models (``AMAgent``) and the GCBC baseline (``GCBCAgent``).

Pure pieces live in their own modules and are tested alone: ``losses`` (TD targets, BCE,
negatives, Polyak), ``cem`` (batched cross-entropy maximisation), ``augment`` (random shift) and
``networks`` (encoder, Q network, policy network). Checkpoints: ``goalrl.checkpoint``.
"""

from goalrl.agents.am import AMAgent, AMConfig
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
    "GaussianPolicyNetwork",
    "GoalQNetwork",
]
