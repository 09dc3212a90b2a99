"""Cal-QL's floor on the conservative term, on hand-made tensors (goalrl.agents.conservative)."""

from __future__ import annotations

import pytest
import torch

from goalrl.agents.conservative import conservative_loss, floor_policy_logits
from goalrl.agents.losses import negative_loss


def logit(p: float) -> float:
    return float(torch.logit(torch.tensor(p)))


# 2 rows, 3 candidates (uniform, a data action of another row, the policy's), 1 head
LOGITS = torch.tensor([
    [[logit(0.3)], [logit(0.2)], [logit(0.1)]],  # row 0: policy Q 0.1 below G = 0.5
    [[logit(0.6)], [logit(0.7)], [logit(0.9)]],  # row 1: policy Q 0.9 above G = 0.5
])  # (B=2, N=3, K=1)
IS_POLICY = torch.tensor([False, False, True])  # (N,)
FLOOR = torch.tensor([0.5, 0.5])  # (B,) Monte-Carlo returns


def test_floor_raises_only_the_policy_actions_below_the_return() -> None:
    out = floor_policy_logits(LOGITS, IS_POLICY, FLOOR)
    q = torch.sigmoid(out)[..., 0]
    # data and uniform candidates untouched, even where they are below the return (row 0)
    torch.testing.assert_close(out[:, :2], LOGITS[:, :2])
    torch.testing.assert_close(q[0, 2], torch.tensor(0.5))  # floored up to G
    torch.testing.assert_close(out[1, 2], LOGITS[1, 2])  # above G: unchanged


def test_gradient_flows_to_data_actions_and_to_policy_actions_above_the_floor_only() -> None:
    x = LOGITS.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(floor_policy_logits(x, IS_POLICY, FLOOR).sum(), x)
    expected = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])[..., None]
    torch.testing.assert_close(grad, expected)


def test_per_row_policy_mask_and_zero_return_floor_nothing_else() -> None:
    mask = torch.tensor([[True, False, False], [False, False, False]])  # (B, N)
    out = floor_policy_logits(LOGITS, mask, torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(torch.sigmoid(out[0, 0, 0]), torch.tensor(0.5))  # 0.3 -> 0.5
    torch.testing.assert_close(out[0, 1:], LOGITS[0, 1:])
    torch.testing.assert_close(out[1], LOGITS[1])  # no policy candidate in row 1
    zero = floor_policy_logits(LOGITS, IS_POLICY, torch.zeros(2))
    torch.testing.assert_close(zero, LOGITS)  # G = 0 floors nothing


def test_conservative_loss_pushes_down_a_floored_policy_action_without_gradient() -> None:
    """Near-zero temperature picks the highest (floored) value: in row 0 that is the policy's
    action at its floor 0.5 (its own Q 0.1 is below the uniform candidate's 0.3), whose loss
    is the constant BCE of 0.5; in row 1 the policy's Q 0.9 with its ordinary gradient."""
    x = LOGITS.clone().requires_grad_(True)
    loss, idx, seen = conservative_loss(x, 1.0, temperature=1e-4, is_policy=IS_POLICY,
                                        floor=FLOOR)
    assert idx.tolist() == [2, 2]
    expected = negative_loss(torch.tensor([[logit(0.5)], [logit(0.9)]]), 1.0)
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.count_nonzero(grad[0]) == 0  # floored: nothing pushes Q(o, a_pi) below G
    assert grad[1, 2, 0] > 0 and torch.count_nonzero(grad[1, :2]) == 0  # only the chosen one
    torch.testing.assert_close(seen, floor_policy_logits(LOGITS, IS_POLICY, FLOOR))


def test_without_a_floor_the_term_is_the_plain_push_down() -> None:
    x = LOGITS.clone().requires_grad_(True)
    loss, idx, seen = conservative_loss(x, 0.5, temperature=1e-4, is_policy=IS_POLICY)
    assert idx.tolist() == [0, 2]  # row 0: the uniform candidate (0.3) is now the highest
    torch.testing.assert_close(loss, negative_loss(LOGITS[[0, 1], [0, 2]], 0.5))
    torch.testing.assert_close(seen, LOGITS)
    (grad,) = torch.autograd.grad(loss, x)
    assert grad[0, 0, 0] > 0 and grad[1, 2, 0] > 0


def test_a_floor_without_the_policy_mask_is_refused() -> None:
    with pytest.raises(ValueError, match="needs is_policy"):
        conservative_loss(LOGITS, 1.0, temperature=0.1, floor=FLOOR)
