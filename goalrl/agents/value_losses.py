"""Pure loss pieces of the value-based goal-conditioned agents (GCIVL, GCIQL, HIQL, CRL, AM).

Each function takes tensors and returns tensors, so it is tested alone on tiny inputs:
- expectile regression (IQL): an asymmetric squared error whose minimiser is the tau-expectile,
  an "optimistic" in-sample max when tau > 0.5;
- advantage-weighted regression (AWR) weights exp(alpha * A), clipped so a few large advantages
  cannot dominate the batch;
- the DDPG+BC actor loss: maximise Q at the actor's action, with the Q term normalised by its
  batch mean magnitude (TD3+BC) so alpha means the same whatever the scale of Q.
"""

from __future__ import annotations

import torch


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-sample expectile loss (B,): |tau - 1[diff < 0]| * diff**2.

    ``diff`` (B,) is target - prediction. With tau > 0.5 an under-estimate (diff > 0) costs more
    than an over-estimate, so the fitted value sits above the mean of the targets.
    """
    if not 0.0 < tau < 1.0:
        raise ValueError(f"expectile tau must be in (0, 1), got {tau}")
    diff = diff.float()
    weight = torch.where(diff < 0, 1.0 - tau, tau)  # (B,)
    return weight * diff.square()


def awr_weights(adv: torch.Tensor, alpha: float, max_weight: float = 100.0) -> torch.Tensor:
    """AWR weights (B,) exp(alpha * adv), clipped at ``max_weight``, without gradient.

    The clip bounds the influence of one sample (OGBench clips at 100); the weights are
    constants for the actor's regression, never a path for gradients into the value.
    """
    if max_weight <= 0:
        raise ValueError(f"awr max_weight must be > 0, got {max_weight}")
    adv = adv.detach().float()
    # clamp the exponent first so exp never overflows to inf before the clip
    return torch.exp((alpha * adv).clamp(max=float(torch.log(torch.tensor(max_weight)))))


def ddpg_bc_actor_loss(
    q_at_pi: torch.Tensor, bc_penalty: torch.Tensor, alpha: float
) -> torch.Tensor:
    """DDPG+BC actor loss (scalar): -mean(Q) / mean(|Q|).detach() + alpha * mean(bc_penalty).

    ``q_at_pi`` (B,) is Q(s, pi(s, g), g) with gradient through the actor's action.
    ``bc_penalty`` (B,) is what pulls the actor toward the data action: the squared error to the
    data action (deterministic actor) or minus the log-likelihood of the data action (Gaussian
    actor). Lower penalty means closer to the data; alpha trades imitation against value.
    """
    q_at_pi = q_at_pi.float()
    q_scale = q_at_pi.abs().mean().detach().clamp_min(1e-6)  # TD3+BC normalisation
    return -q_at_pi.mean() / q_scale + alpha * bc_penalty.float().mean()
