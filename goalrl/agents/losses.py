"""Pure loss pieces of Actionable Models (and GCBC), each testable alone.

Q(o, a, g) = sigmoid(logit) is the discounted probability of reaching g. The TD target is
y = 1 when the action reaches the goal and gamma * max_a' Q_target(o', a', g) otherwise; the loss is
binary cross-entropy on logits. Contrastive artificial negatives: among N random actions, pick one
with probability proportional to exp(Q) and train it toward 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def q_targets(reached: torch.Tensor, next_q_max: torch.Tensor, gamma: float) -> torch.Tensor:
    """TD targets (B,): 1 where ``reached`` (goal is the next frame), else gamma * next_q_max.

    ``next_q_max`` (B,) is min over the target heads of Q_target(o', a*, g) at the CEM action a*,
    computed without gradient. Chained samples (goal from another episode) have reached False, so
    they get the bootstrapped target only. Task rewards in {0, 1} for fine-tuning use the same
    function with ``reached = reward > 0``.
    """
    next_q_max = next_q_max.detach().float()
    return torch.where(reached.bool(), torch.ones_like(next_q_max), gamma * next_q_max)


def hindsight_floor(offset: torch.Tensor, gamma: float) -> torch.Tensor:
    """Lower bound (B,) on Q*(o_t, a_t, g) for a hindsight goal g = o_{t+k}: gamma**(k - 1).

    ``offset`` (B,) is k >= 1 for goals from the sample's own episode and -1 for chained goals,
    which get 0 (no bound: nothing in the data reaches them from o_t). The logged behaviour
    reached g from o_t by taking a_t and then k - 1 more steps, so the discounted probability
    of reaching it can be no lower; a target raised to this floor carries a distant goal's
    value back at once instead of one bootstrap step per target-network lag.
    """
    k = offset.float()
    return torch.where(k >= 1, torch.pow(gamma, (k - 1).clamp_min(0)), torch.zeros_like(k))


def bce_q_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean binary cross-entropy of sigmoid(logits) against soft targets in [0, 1].

    Stable for large |logits| (log-sum-exp form). ``targets`` and ``weights`` broadcast against
    ``logits`` (e.g. logits (B, 2) for two heads, targets (B, 1)); the mean is over all elements
    of the broadcast product, so a weight of 0 removes a sample and lambda scales a term.
    """
    logits = logits.float()
    targets = targets.float().expand_as(logits)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if weights is not None:
        loss = loss * weights.float()
    return loss.mean()


# "mixed" is kept for task fine-tuning, whose default it is; goal reaching refuses it (am.py)
NEGATIVE_SOURCES = ("uniform", "batch", "mixed", "swap")


def check_neg_source(source: str, allowed: tuple[str, ...] = NEGATIVE_SOURCES) -> None:
    """ValueError naming the field unless ``source`` is one of ``allowed``."""
    if source not in allowed:
        raise ValueError(f"agent.neg_source must be one of {allowed}, got {source!r}")


def negative_candidates(
    actions: torch.Tensor,
    num: int,
    source: str = "mixed",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """N candidate negative actions per row: actions (B, A) in [-1, 1] -> (B, N, A).

    "uniform": uniform in the action box, as in Actionable Models. "batch": the data actions of
    other rows of the batch (never the row's own), i.e. draws from the dataset's action marginal.
    Uniform candidates alone leave a shortcut: scripted data has a binary gripper (exactly +-1)
    that uniform candidates almost never hit, so the Q-function can reject every negative by the
    gripper value alone and never learn which *motion* fits (o, g). Batch candidates share the
    data's action statistics, so only their fit to (o, g) tells them apart. "mixed": the first
    half of the N candidates from the batch, the rest uniform (covers the whole box for CEM).
    "swap": near misses, the row's own action with each dimension replaced, with probability 1/2,
    by that dimension of another row's action (at least one value changed unless the other
    action is identical). Every value
    stays one the data takes (a binary gripper stays binary), but a candidate differs from the
    data action in only some dimensions, so Q must tell the logged motion from motions close
    to it, which is where CEM's argmax lands.
    """
    check_neg_source(source)
    bsz, adim = actions.shape
    dev = actions.device
    gen_device = generator.device if generator is not None else dev
    if bsz < 2:
        n_batch = 0  # no other row to borrow from: every source falls back to uniform
    elif source == "swap":
        return _swap_candidates(actions, num, generator)
    else:
        n_batch = {"uniform": 0, "batch": num, "mixed": (num + 1) // 2}[source]
    parts = []
    if n_batch:
        # offset 1..B-1 from the row itself, so a row never draws its own action
        rows = _other_rows(bsz, n_batch, gen_device, generator)  # (B, n_batch)
        parts.append(actions[rows.to(dev)])  # (B, n_batch, A)
    if num - n_batch:
        u = torch.rand((bsz, num - n_batch, adim), generator=generator, device=gen_device)
        parts.append((2.0 * u - 1.0).to(dev, actions.dtype))  # (B, N - n_batch, A)
    return torch.cat(parts, dim=1)


def _other_rows(
    bsz: int, num: int, gen_device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, num) row indices, each row drawing from the B - 1 rows other than itself."""
    offset = torch.randint(1, bsz, (bsz, num), generator=generator, device=gen_device)
    return (torch.arange(bsz, device=gen_device)[:, None] + offset) % bsz


def _swap_candidates(
    actions: torch.Tensor, num: int, generator: torch.Generator | None
) -> torch.Tensor:
    """negative_candidates' "swap" source: actions (B, A) -> (B, N, A), B >= 2."""
    bsz, adim = actions.shape
    dev = actions.device
    gen_device = generator.device if generator is not None else dev
    rows = _other_rows(bsz, num, gen_device, generator).to(dev)  # (B, N)
    donors = actions[rows]  # (B, N, A)
    own = actions[:, None].expand_as(donors)  # (B, N, A)
    swap = (torch.rand((bsz, num, adim), generator=generator, device=gen_device) < 0.5).to(dev)
    # a candidate that changes nothing (no dimension drawn, or only ones the donor shares, such
    # as the same gripper value) would be the data action itself: take the donor's most
    # different dimension instead
    unchanged = ~(swap & (donors != own)).any(dim=-1, keepdim=True)  # (B, N, 1)
    farthest = F.one_hot((donors - own).abs().argmax(dim=-1), adim).bool()  # (B, N, A)
    swap = swap | (unchanged & farthest)
    return torch.where(swap, donors, own)


def select_negatives(
    neg_logits: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Pick one candidate per row with probability proportional to exp(Q / temperature).

    ``neg_logits`` is (B, N), or (B, N, K) for K heads whose Q values are averaged; Q =
    sigmoid(logit) lies in [0, 1], so with temperature 1 the most and least likely candidates differ
    by a factor of at most e (the Actionable Models rule); lower temperatures sharpen the choice.
    Returns idx (B,) int64. No gradient flows (sampling is discrete).
    """
    with torch.no_grad():
        q = torch.sigmoid(neg_logits.float())
        if q.ndim == 3:
            q = q.mean(dim=-1)  # (B, N)
        probs = torch.softmax(q / temperature, dim=-1)  # (B, N)
        gen_device = generator.device if generator is not None else probs.device
        idx = torch.multinomial(probs.to(gen_device), 1, generator=generator)  # (B, 1)
        return idx[:, 0].to(neg_logits.device)


def negative_loss(
    chosen_logits: torch.Tensor, lambda_neg: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """lambda_neg * BCE pushing the chosen negative actions' Q toward 0; logits (B,) or (B, K)."""
    return lambda_neg * bce_q_loss(chosen_logits, torch.zeros_like(chosen_logits), weights)


def gaussian_nll(
    actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, beta: float = 0.0
) -> torch.Tensor:
    """Per-sample negative log-likelihood (B,) of actions (B, A) under a diagonal Gaussian.

    ``beta > 0`` gives the beta-NLL of Seitzer et al. (2022): each dimension's NLL is scaled by
    a constant (no gradient) var**beta. Plain NLL (beta 0) divides the mean's gradient by the
    variance, so samples the net is still unsure about (high std) barely move the mean and
    stay unlearned; beta 1 gives the mean the plain squared-error gradient while the std is
    still fitted.
    """
    log_std = log_std.float()
    z = (actions.float() - mean.float()) * torch.exp(-log_std)
    per_dim = 0.5 * z.square() + log_std + 0.5 * math.log(2 * math.pi)  # (B, A)
    if beta:
        per_dim = per_dim * torch.exp(2.0 * beta * log_std).detach()  # var ** beta
    return per_dim.sum(dim=-1)


def ema_rate(step: int, tau: float) -> float:
    """Polyak rate of the acting weight average after ``step`` updates: max(tau, 10 / (step + 10)).

    With a fixed rate tau the average would hold the untrained first weights for about 1 / tau
    updates, longer than a short run. The warm-up rate 10 / (step + 10) keeps the average over
    roughly the last tenth of the updates so far; from step 10 / tau on it is the plain
    exponential average over about the last 1 / tau updates. Step 0 gives 1: a copy.
    """
    if step < 0 or not 0.0 < tau <= 1.0:
        raise ValueError(f"ema_rate needs step >= 0 and 0 < tau <= 1, got step={step}, tau={tau}")
    return max(tau, 10.0 / (step + 10.0))


class PolyakAverage:
    """``target <- (1 - tau) * target + tau * online`` over tensor lists fixed at construction.

    Listing a network's parameters and buffers on every call cost more than the averaging
    itself (about 0.5 ms per call on a 21-tensor network, most of an averaging step), so an
    agent lists them once. The lists hold the tensors themselves: ``load_state_dict`` copies
    into them in place, so they stay valid as long as the modules are not replaced.
    Float buffers (e.g. running stats) are averaged too; integer ones are copied.
    """

    def __init__(
        self,
        target: nn.Module | Iterable[torch.Tensor],
        online: nn.Module | Iterable[torch.Tensor],
    ) -> None:
        self.copies: list[tuple[torch.Tensor, torch.Tensor]] = []
        if isinstance(target, nn.Module) and isinstance(online, nn.Module):
            t_list, o_list = list(target.parameters()), list(online.parameters())
            for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
                if tb.is_floating_point():
                    t_list.append(tb)
                    o_list.append(ob)
                else:
                    self.copies.append((tb, ob))
        else:
            t_list, o_list = list(target), list(online)  # type: ignore[arg-type]
        if len(t_list) != len(o_list):
            raise ValueError(f"target has {len(t_list)} tensors, online has {len(o_list)}")
        self.targets = t_list
        self.onlines = [t.detach() for t in o_list]  # views sharing storage, updated in place

    @torch.no_grad()
    def __call__(self, tau: float | torch.Tensor) -> None:
        """Average at rate ``tau``: a float, or a 0-d tensor on the tensors' device (read by
        the kernels, not the host: a CUDA graph replays it with whatever value it holds)."""
        if self.targets:
            if isinstance(tau, torch.Tensor):
                diff = torch._foreach_sub(self.onlines, self.targets)
                torch._foreach_mul_(diff, tau)
                torch._foreach_add_(self.targets, diff)
            else:
                torch._foreach_lerp_(self.targets, self.onlines, tau)
        for tb, ob in self.copies:
            tb.copy_(ob)
