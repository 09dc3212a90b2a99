"""CEM: finds a known per-row maximum, stays in bounds, returns the best action it evaluated."""

from __future__ import annotations

import pytest
import torch

from goalrl.agents.cem import cem_maximize


def _quadratic(target: torch.Tensor):
    """score(a) = -||a - a*||^2 with a per-row optimum a* (B, A)."""
    return lambda a: -((a - target[:, None]) ** 2).sum(-1)  # (B, N)


@pytest.mark.parametrize("action_dim", [1, 2, 4])
def test_finds_per_row_maximum(action_dim: int) -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(32, action_dim, generator=gen) * 1.6 - 0.8  # (B, A) inside the box
    best, score = cem_maximize(
        _quadratic(target), 32, action_dim, iterations=4, samples=128, elites=10, generator=gen
    )
    assert best.shape == (32, action_dim) and score.shape == (32,)
    assert (best - target).abs().max() < 0.1
    torch.testing.assert_close(score, -((best - target) ** 2).sum(-1))


def test_respects_bounds_and_finds_optimum_on_the_boundary() -> None:
    gen = torch.Generator().manual_seed(1)
    low, high = torch.tensor([-1.0, -0.5]), torch.tensor([0.5, 1.0])
    target = torch.tensor([[2.0, 0.0], [-3.0, 3.0]])  # outside the box in some dims
    seen: list[torch.Tensor] = []

    def score(a: torch.Tensor) -> torch.Tensor:
        seen.append(a.clone())
        return _quadratic(target)(a)

    best, _ = cem_maximize(
        score, 2, 2, iterations=3, samples=64, elites=6, low=low, high=high, generator=gen
    )
    allseen = torch.cat(seen, dim=1)  # (B, iterations * N, A)
    assert (allseen >= low).all() and (allseen <= high).all()
    assert (best >= low).all() and (best <= high).all()
    expected = torch.tensor([[0.5, 0.0], [-1.0, 1.0]])
    assert (best - expected).abs().max() < 0.1


def test_returns_best_seen_not_last_mean() -> None:
    """A spiky score: the best evaluated action must be returned, whatever the refit does."""
    gen = torch.Generator().manual_seed(2)
    seen_actions: list[torch.Tensor] = []
    seen_scores: list[torch.Tensor] = []

    def score(a: torch.Tensor) -> torch.Tensor:
        s = torch.sin(17.0 * a).sum(-1)  # (B, N)
        seen_actions.append(a)
        seen_scores.append(s)
        return s

    best, best_score = cem_maximize(score, 5, 3, iterations=3, samples=16, elites=4, generator=gen)
    scores = torch.cat(seen_scores, dim=1)  # (B, 3N)
    actions = torch.cat(seen_actions, dim=1)  # (B, 3N, A)
    top = scores.argmax(dim=1)
    torch.testing.assert_close(best_score, scores.max(dim=1).values)
    torch.testing.assert_close(best, actions[torch.arange(5), top])


def test_warm_start_and_reproducibility() -> None:
    target = torch.full((4, 2), 0.3)
    init = torch.full((4, 2), 0.25)
    run = lambda: cem_maximize(  # noqa: E731
        _quadratic(target),
        4,
        2,
        iterations=1,
        samples=32,
        elites=4,
        init_mean=init,
        init_std=0.05,
        generator=torch.Generator().manual_seed(7),
    )
    (a1, s1), (a2, s2) = run(), run()
    assert torch.equal(a1, a2) and torch.equal(s1, s2)
    assert (a1 - 0.3).abs().max() < 0.1  # one narrow iteration around a good mean suffices


def test_uniform_first_iteration_covers_the_box() -> None:
    seen: list[torch.Tensor] = []

    def score(a: torch.Tensor) -> torch.Tensor:
        seen.append(a)
        return a.sum(-1)

    cem_maximize(score, 1, 1, iterations=1, samples=2000, elites=1, generator=torch.Generator())
    a = seen[0].flatten()
    assert a.min() < -0.95 and a.max() > 0.95 and abs(a.mean().item()) < 0.05


def test_rejects_bad_elite_count() -> None:
    with pytest.raises(ValueError):
        cem_maximize(lambda a: a.sum(-1), 2, 2, samples=4, elites=5)


def test_no_gradient_tracking() -> None:
    w = torch.ones(2, requires_grad=True)
    best, score = cem_maximize(lambda a: (a * w).sum(-1), 3, 2)
    assert not best.requires_grad and not score.requires_grad
