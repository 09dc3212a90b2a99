"""Cross-entropy method over a box of continuous actions, batched over B independent problems.

QT-Opt uses CEM instead of an actor network to compute max_a Q(o, a, g): sample N actions per
(o, g) pair, keep the E best (elites), refit a diagonal Gaussian to them, repeat for a few
iterations. Because the Q network embeds (o, g) once and scores actions with a cheap head,
``score_fn`` only runs the head on (B, N, A) actions. The best action *seen* in any iteration is
returned, not the final mean, so more iterations never make the answer worse.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # (B, N, A) actions -> (B, N) scores


def _bound(value: float | torch.Tensor, action_dim: int, device, dtype) -> torch.Tensor:
    """A scalar or (A,) bound as an (A,) tensor. A Python scalar is filled on the device: made
    on the host and copied, it would make the host wait for the GPU on every call."""
    if isinstance(value, (int, float)):
        return torch.full((action_dim,), float(value), device=device, dtype=dtype)
    return torch.as_tensor(value, device=device, dtype=dtype).expand(action_dim)


@torch.no_grad()
def cem_maximize(
    score_fn: ScoreFn,
    batch_size: int,
    action_dim: int,
    *,
    iterations: int = 2,
    samples: int = 64,
    elites: int = 6,
    low: float | torch.Tensor = -1.0,
    high: float | torch.Tensor = 1.0,
    init_mean: torch.Tensor | None = None,
    init_std: float | torch.Tensor | None = None,
    min_std: float = 1e-3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximately maximise ``score_fn`` over actions in [low, high]^A for each of B rows.

    Args:
        score_fn: maps actions (B, N, A) to scores (B, N); called once per iteration.
        iterations, samples, elites: CEM schedule (QT-Opt: 2 iterations, 64 samples, 6 elites).
        low, high: action bounds, scalars or (A,) tensors; every evaluated action lies inside.
        init_mean: (B, A) or (A,) warm start. With ``init_mean`` and ``init_std`` both None the
            first iteration samples uniformly in the box; otherwise it samples a Gaussian with
            mean ``init_mean`` (default: box centre) and std ``init_std`` (a scalar, (A,) or
            per-row (B, A); default: a quarter of the box width), clipped to the box.
        min_std: floor on the refitted std so the search never collapses to a point.
        generator: torch RNG for reproducible sampling; sampling happens on its device.
        device: where actions live (default: the generator's or ``init_mean``'s device, else CPU).

    Returns:
        best_actions (B, A) and best_scores (B,): the highest-scoring action evaluated per row.
    """
    if not 1 <= elites <= samples:
        raise ValueError(f"need 1 <= elites <= samples, got elites={elites}, samples={samples}")
    if device is None:
        device = (
            init_mean.device
            if init_mean is not None
            else (generator.device if generator is not None else torch.device("cpu"))
        )
    device = torch.device(device)
    gen_device = generator.device if generator is not None else device
    lo = _bound(low, action_dim, device, dtype)  # (A,)
    hi = _bound(high, action_dim, device, dtype)  # (A,)
    shape = (batch_size, samples, action_dim)

    uniform_start = init_mean is None and init_std is None
    mean = (
        ((lo + hi) / 2).expand(batch_size, action_dim)
        if init_mean is None
        else (init_mean.to(device=device, dtype=dtype).expand(batch_size, action_dim))
    )  # (B, A)
    std = (
        (hi - lo) / 4
        if init_std is None
        else torch.as_tensor(init_std, device=device, dtype=dtype)
    ).expand(batch_size, action_dim)  # (B, A) from a scalar, (A,) or (B, A)

    best_actions = mean.clone()  # (B, A)
    best_scores = torch.full((batch_size,), -torch.inf, device=device)  # (B,)
    for it in range(iterations):
        if it == 0 and uniform_start:
            u = torch.rand(shape, generator=generator, device=gen_device, dtype=dtype).to(device)
            actions = lo + (hi - lo) * u  # (B, N, A)
        else:
            eps = torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)
            actions = torch.maximum(torch.minimum(mean[:, None] + std[:, None] * eps, hi), lo)
        scores = score_fn(actions).float()  # (B, N)
        top_scores, top_idx = scores.topk(elites, dim=1)  # (B, E)
        elite = actions.gather(1, top_idx[..., None].expand(-1, -1, action_dim))  # (B, E, A)
        better = top_scores[:, 0] > best_scores  # (B,)
        best_scores = torch.where(better, top_scores[:, 0], best_scores)
        best_actions = torch.where(better[:, None], elite[:, 0], best_actions)
        mean = elite.mean(dim=1)  # (B, A)
        std = elite.std(dim=1, unbiased=False).clamp_min(min_std)  # (B, A)
    return best_actions, best_scores
