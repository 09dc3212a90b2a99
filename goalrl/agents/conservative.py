"""The conservative term of task fine-tuning (CQL-style) and Cal-QL's calibration of it.

CQL pushes down the Q-values of actions the data did not take: random actions and the actions
of the current policy. Cal-QL (Nakamoto et al. 2023, "Cal-QL: Calibrated Offline RL
Pre-Training for Efficient Online Fine-Tuning", eq. 5.1 and its reference code) changes one
thing: inside that push-down term, the value of each *policy* action is replaced by
max(Q(s, a~pi), V_mu(s)), V_mu(s) the Monte-Carlo return of the logged behaviour from s. The
random actions' values are not floored, and neither is the data's own action (the TD term
trains it). So no gradient pushes the policy's value below what the data shows is achievable,
while random actions are still pushed toward 0.

Here Q is a probability (sigmoid of a logit) and the push-down term is the sampled form of
CQL's soft maximum: among a row's candidates one is picked with probability
∝ exp(Q / T) and its BCE toward 0 is the loss (as in Actionable Models). With calibration the
policy candidates enter both the pick and the loss with their floored values.

The functions are pure: tensors in, tensors out (the pick takes an explicit generator).
"""

from __future__ import annotations

import torch

from goalrl.agents.losses import negative_loss, select_negatives

CALIBRATIONS = ("none", "calql")  # TaskQConfig.calibration

_EPS = 1e-6  # keeps logit(G) finite for G = 0 or 1


def floor_policy_logits(
    cand_logits: torch.Tensor, is_policy: torch.Tensor, floor: torch.Tensor
) -> torch.Tensor:
    """Cal-QL's floor: candidate logits (B, N, K) with the policy candidates' raised to
    logit(floor) (B,); every other candidate (random, other rows' data actions) unchanged.

    ``is_policy`` (N,) or (B, N) bool marks the policy's actions. Where a policy logit is
    below the floor the result is the constant logit(G): no gradient reaches that Q. Above
    it, and for every non-policy candidate, the result is the input with its gradient.
    """
    floor_logit = torch.logit(floor.float().clamp(_EPS, 1 - _EPS))  # (B,)
    mask = is_policy if is_policy.ndim == 2 else is_policy[None].expand(cand_logits.shape[:2])
    raised = torch.maximum(cand_logits.float(), floor_logit[:, None, None])  # (B, N, K)
    return torch.where(mask[..., None], raised, cand_logits.float())  # (B, N, K)


def conservative_loss(
    cand_logits: torch.Tensor,
    lambda_neg: float,
    *,
    temperature: float,
    generator: torch.Generator | None = None,
    is_policy: torch.Tensor | None = None,
    floor: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The push-down term on candidate logits (B, N, K): (loss, chosen idx (B,), the logits
    the term saw (B, N, K)).

    Without ``floor`` this is the plain term; with it (Cal-QL), ``floor_policy_logits`` first
    (``is_policy`` then required). The pick uses the (floored) values without gradient.
    """
    if floor is not None:
        if is_policy is None:
            raise ValueError("a Cal-QL floor needs is_policy: which candidates are the policy's")
        cand_logits = floor_policy_logits(cand_logits, is_policy, floor)
    idx = select_negatives(cand_logits.detach(), generator, temperature=temperature)  # (B,)
    rows = torch.arange(cand_logits.shape[0], device=cand_logits.device)
    chosen = cand_logits[rows, idx]  # (B, K)
    return negative_loss(chosen, lambda_neg), idx, cand_logits
