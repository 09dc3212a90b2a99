"""Action noise processes for scripted data: independent Gaussian, or temporally correlated.

Correlated (Ornstein-Uhlenbeck) noise of the same per-step size moves the arm much farther
off the scripted path than independent noise, whose steps cancel out: the "noisy" datasets
use it for wide coverage at poor quality, as OGBench's noisy datasets do.
"""

from __future__ import annotations

import numpy as np

NOISE_KINDS = ("gaussian", "ou")


class GaussianNoise:
    """Independent N(0, std^2) per step and dimension."""

    def __init__(self, std: float, rng: np.random.Generator) -> None:
        self.std = float(std)
        self.rng = rng

    def reset(self) -> None:
        pass

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.normal(0.0, self.std, size=shape)


class OrnsteinUhlenbeckNoise:
    """x_{t+1} = (1 - theta) x_t + sigma eps_t, with sigma set so that x has stationary std
    ``std``; lag-k autocorrelation (1 - theta)^k. Starts from a stationary draw."""

    def __init__(self, std: float, theta: float, rng: np.random.Generator) -> None:
        if not 0.0 < theta <= 1.0:
            raise ValueError(f"noise_theta must be in (0, 1], got {theta}")
        self.std = float(std)
        self.theta = float(theta)
        # stationary variance of the AR(1) process: sigma^2 / (1 - (1 - theta)^2)
        self.sigma = self.std * float(np.sqrt(1.0 - (1.0 - self.theta) ** 2))
        self.rng = rng
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.state is None or self.state.shape != shape:
            self.state = self.rng.normal(0.0, self.std, size=shape)
        else:
            self.state = (1.0 - self.theta) * self.state + self.rng.normal(
                0.0, self.sigma, size=shape
            )
        return self.state.copy()


def make_noise(
    kind: str, std: float, theta: float, rng: np.random.Generator
) -> GaussianNoise | OrnsteinUhlenbeckNoise:
    """The noise process ``kind`` (one of ``NOISE_KINDS``)."""
    if kind == "gaussian":
        return GaussianNoise(std, rng)
    if kind == "ou":
        return OrnsteinUhlenbeckNoise(std, theta, rng)
    raise ValueError(f"noise must be one of {NOISE_KINDS}, got {kind!r}")
