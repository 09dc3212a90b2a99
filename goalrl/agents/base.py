"""What every goalrl agent shares: tensors in, devices, autocast, RNG and resume plumbing.

Each agent owns one ``torch.Generator`` (augmentation, CEM, negatives, exploration noise) so a
resumed run continues exactly; ``AgentBase`` gives them the same seed/state methods and the
same save/restore of optimiser, step and RNG. The input helpers turn arrays (or tensors, batched
or not) into the (B, ...) tensors the networks take.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from goalrl.agents.losses import PolyakAverage, ema_rate
from goalrl.distributed import DistInfo, resolve_device

# Optimiser settings a config sets and a resume keeps from the config, not from the checkpoint.
OPTIMIZER_HPARAMS = ("lr", "weight_decay")
# How this process steps the optimiser: kept too, so a checkpoint saved by the per-tensor loop
# resumes with the fused kernel where this device has one, and back
OPTIMIZER_IMPLEMENTATION = ("fused", "foreach", "capturable")
# Devices with torch's fused AdamW kernel: one op per step for all tensors, where the default
# per-tensor loop dispatches about ten ops per tensor (2 ms of a 10 ms update on a small net)
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def to_tensor(x: Any, device: torch.device) -> torch.Tensor:
    """Array or tensor -> tensor on ``device``; may share memory with x, which is never written.

    Read-only arrays (e.g. slices of a memory map) are copied, since torch warns on wrapping them;
    so are arrays with negative strides (``rgb[..., ::-1]``, a BGR frame flipped), which torch
    cannot wrap.
    A tensor in pinned memory (``goalrl.data.prefetch.tensor_batch``) is copied without waiting:
    a blocking copy would make the host wait for every kernel already queued on the GPU.
    """
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=x.device.type == "cpu" and x.is_pinned())
    arr = np.asarray(x)
    if not arr.flags.writeable or any(stride < 0 for stride in arr.strides):
        arr = arr.copy()
    return torch.as_tensor(arr, device=device)


def autocast_context(device: torch.device, enabled: bool) -> AbstractContextManager:
    """bfloat16 autocast on CUDA when enabled; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        # no cast-weight cache while a CUDA graph is captured: cached casts would outlive it
        capturing = torch.cuda.is_current_stream_capturing()
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not capturing)
    return nullcontext()


def restore_generator(generator: torch.Generator, state: torch.Tensor, fallback_seed: int) -> None:
    """Load a saved generator state; a state from another device type (a GPU run resumed on CPU
    or back) cannot be loaded, so the generator is reseeded from ``fallback_seed`` instead."""
    try:
        generator.set_state(state.cpu())
    except (RuntimeError, ValueError):
        warnings.warn(
            "saved RNG state is from another device type; reseeding the agent's generator",
            stacklevel=3,
        )
        generator.manual_seed(fallback_seed)


def batch_images(
    obs_image: Any, goal_image: Any, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """obs (B, H, W, 3) or one (H, W, 3) -> (B, H, W, 3), with ``single`` telling which; a single
    goal image is broadcast over the batch; goal None stays None (task agents have no goal)."""
    obs = to_tensor(obs_image, device)
    single = obs.ndim == 3
    obs = obs[None] if single else obs  # (B, H, W, 3)
    goal = None
    if goal_image is not None:
        goal = to_tensor(goal_image, device)
        if goal.ndim == 3:
            goal = goal[None].expand(obs.shape[0], *goal.shape)  # one goal for every obs
    return obs, goal, single


def batch_proprio(proprio: Any, proprio_dim: int | None, device: torch.device) -> Any:
    """(B, P) float proprio for an agent that uses it (a (P,) vector gets a batch axis), None for
    one that does not; ValueError when the agent needs it and none was passed."""
    if proprio_dim is None:
        return None
    if proprio is None:
        raise ValueError("agent uses proprio; pass proprio=(B, P)")
    p = to_tensor(proprio, device).float()
    return p[None] if p.ndim == 1 else p  # (B, P)


def add_exploration(actions: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian exploration noise of ``std`` on (B, A) actions, clipped to the [-1, 1] box."""
    if std <= 0:
        return actions
    noise = torch.randn(actions.shape, generator=generator, device=generator.device)
    return (actions + std * noise.to(actions.device)).clamp(-1.0, 1.0)


def q_output(q: torch.Tensor, reduce: str, *, squeeze: bool, single: bool) -> np.ndarray:
    """(B, N, K) per-head Q -> numpy, heads reduced by "min" (clipped double Q, as used for
    acting), "mean" or "none"; the N axis dropped when one action per obs was asked for
    (``squeeze``), the B axis when the call was unbatched (``single``)."""
    if reduce == "min":
        q = q.min(dim=-1).values
    elif reduce == "mean":
        q = q.mean(dim=-1)
    elif reduce != "none":
        raise ValueError(f"reduce must be 'min', 'mean' or 'none', got {reduce!r}")
    q = q[:, 0] if squeeze else q
    out = q.cpu().numpy()
    return out[0] if single else out


def make_adamw(
    params: Iterable[Any], device: torch.device, *, lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over ``params`` (tensors or param-group dicts), fused where the device has it."""
    return torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, fused=device.type in FUSED_ADAM_DEVICES or None
    )


def place_optimizer_steps(optimizer: torch.optim.Optimizer) -> None:
    """Put each Adam step counter where its group's kernel reads it: on the parameter's device
    for the fused kernel, on the CPU for the others. torch places them by the *saved* groups'
    settings, which differ when a checkpoint comes from another kind of run."""
    for group in optimizer.param_groups:
        device_step = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            if isinstance(st.get("step"), torch.Tensor):
                where = p.device if device_step else torch.device("cpu")
                st["step"] = st["step"].to(device=where, dtype=torch.float32)


class UpdateStats(Mapping[str, float]):
    """An update's diagnostics: 0-d tensors, read to the host in one transfer on first access.

    Reading a value waits for the GPU to finish the update. Trainers read them only every
    ``log_every`` updates, so the host queues the next updates while the device works.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self._keys = list(tensors)
        self._tensors: list[torch.Tensor] | torch.Tensor = list(tensors.values())
        self._values: dict[str, float] | None = None

    @classmethod
    def stacked(cls, keys: list[str], values: torch.Tensor) -> UpdateStats:
        """From values already stacked into one (len(keys),) tensor (a replayed CUDA graph's
        outputs, copied out before the next replay overwrites them)."""
        stats = cls({})
        stats._keys, stats._tensors = list(keys), values
        return stats

    def tensors(self) -> list[torch.Tensor]:
        """The values as 0-d tensors, unread (in key order)."""
        values = self._tensors
        return list(values) if isinstance(values, list) else list(values.unbind())

    def tensor(self, key: str) -> torch.Tensor:
        """One value as a 0-d tensor, unread."""
        return self._tensors[self._keys.index(key)]

    def _read(self) -> dict[str, float]:
        if self._values is None:
            values = self._tensors
            if isinstance(values, list):
                values = torch.stack([v.detach().float() for v in values])
            self._values = dict(zip(self._keys, values.tolist(), strict=True))
        return self._values

    def __getitem__(self, key: str) -> float:
        return self._read()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __contains__(self, key: object) -> bool:  # Mapping's default would read the values
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"UpdateStats({self._read()!r})"


class AgentBase:
    """RNG and resume plumbing; subclasses call ``_setup`` first and then set ``optimizer``."""

    cfg: Any
    device: torch.device
    amp: bool  # bfloat16 autocast on CUDA (a run setting, not a hyper-parameter)
    image_shape: tuple[int, int, int]
    action_dim: int
    proprio_dim: int | None
    generator: torch.Generator
    optimizer: torch.optim.Optimizer
    step: int
    graph_ema_weight: torch.Tensor | None = None  # set by goalrl.agents.graphed.GraphedUpdate

    def _setup(
        self,
        cfg: Any,
        image_shape: tuple[int, int, int],
        action_dim: int,
        proprio_dim: int | None,
        device: str | torch.device,
        seed: int,
        amp: bool,
    ) -> None:
        """Config, device ("auto", "cpu", "cuda[:i]" or a torch.device), autocast switch,
        shapes (proprio only when ``cfg.encoder.use_proprio``), a generator seeded with
        ``seed`` and step 0."""
        self.cfg = cfg
        self.device = (
            device if isinstance(device, torch.device) else resolve_device(device, DistInfo())
        )
        self.amp = bool(amp)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.action_dim = int(action_dim)
        use_proprio = cfg.encoder.use_proprio
        self.proprio_dim = int(proprio_dim) if (proprio_dim and use_proprio) else None
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.step = 0

    @staticmethod
    def build_seeded(make: Any, seed: int) -> Any:
        """``make()`` with weights initialised from ``seed``, leaving the global torch RNG as it
        was (CPU generator only; the CUDA RNG is untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            return make()

    def apply_gradients(
        self, loss: torch.Tensor, params: list[torch.Tensor], max_grad_norm: float
    ) -> torch.Tensor:
        """Backward, clip the global norm of ``params``' gradients to ``max_grad_norm`` (0: no
        clipping) and step the optimiser; returns the pre-clipping norm as a 0-d tensor."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = max_grad_norm if max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        self.optimizer.step()
        return grad_norm.detach().float()

    @staticmethod
    def make_weight_average(
        net: torch.nn.Module, tau: float
    ) -> tuple[torch.nn.Module | None, PolyakAverage | None]:
        """A frozen copy of ``net`` to act with, and the ``PolyakAverage`` that keeps it an
        average of ``net`` (``update_weight_average``); (None, None) when ``tau`` is 0 (act with
        the latest weights)."""
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"agent.ema_tau must lie in [0, 1] (0: no average), got {tau}")
        if tau == 0:
            return None, None
        average = copy.deepcopy(net).requires_grad_(False)
        return average, PolyakAverage(average, net)

    def update_weight_average(self, averager: PolyakAverage | None, tau: float) -> None:
        """Move the weight average toward its network at ``ema_rate(self.step, tau)``; call
        after an update (``averager`` from ``make_weight_average``; None: nothing to do).

        Why: a policy read off the latest weights swings between nearby updates, and averaging
        is free. On Push at 30,000 updates, GCBC acting with the average reached 73% of 100
        held-out goals against 60% with the latest weights; AM 44% against 39%
        (docs/lab-notes.md).
        """
        if averager is None:
            return
        # A CUDA graph would bake a Python float in; its replays read the rate from this tensor,
        # which goalrl.agents.graphed fills before each replay. An eager update of a graphed
        # agent fills it here, so it never reads a rate left over from an earlier update.
        weight = self.graph_ema_weight
        if weight is None:
            averager(ema_rate(self.step, tau))
            return
        if not (weight.is_cuda and torch.cuda.is_current_stream_capturing()):
            weight.fill_(ema_rate(self.step, tau))
        averager(weight)

    @staticmethod
    def load_weight_average(
        average: torch.nn.Module | None, state: Mapping[str, Any], key: str, online_key: str
    ) -> None:
        """Restore a weight average; a checkpoint saved without one starts it at its online
        weights, so such a checkpoint acts as it did when it was written."""
        if average is not None:
            average.load_state_dict(state.get(key, state[online_key]))

    def seed(self, seed: int) -> None:
        """Reseed the agent's generator (augmentation, CEM, negatives, exploration noise)."""
        self.generator.manual_seed(seed)

    def get_rng_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu())

    def training_state(self) -> dict[str, Any]:
        """Optimiser, step, RNG state and config: the part of a state dict every agent has."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "rng": self.generator.get_state(),
            "config": asdict(self.cfg),
        }

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``training_state`` saved; each part is optional (weights-only files).

        The optimiser's moments come from the checkpoint but its learning rates and weight decay
        stay as this agent's config set them: torch's ``load_state_dict`` would restore the saved
        ones, so ``resume=true agent.lr=1e-4`` would silently keep training at the old rate.
        """
        if "optimizer" in state:
            kept = OPTIMIZER_HPARAMS + OPTIMIZER_IMPLEMENTATION
            configured = [{k: group[k] for k in kept} for group in self.optimizer.param_groups]
            self.optimizer.load_state_dict(state["optimizer"])
            for group, hparams in zip(self.optimizer.param_groups, configured, strict=True):
                group.update(hparams)
            place_optimizer_steps(self.optimizer)
        self.step = int(state.get("step", 0))
        if "rng" in state:
            restore_generator(self.generator, state["rng"], fallback_seed=self.step)
