"""A learned one-step model: x' = x + f(x, a), an ensemble of MLPs, where x is the scene's state
vector or an agent's frame embedding (goalrl.agents.lookahead's two spaces).

Why: the value functions of the benchmark's agents are learned well where their actors fail
to follow them (docs/benchmarks/value_probe.md): acting on GCIVL's V with the simulator as a
one-step model reaches far more goals than its actor. This model stands in for the simulator,
so that the same lookahead is a policy a user can deploy. It is trained on the same dataset's
transitions (no goals, no rewards) and predicts the state change in units of the data's
standard deviation. An ensemble, because which action is best is decided by small differences
in the predicted cube position: the lookahead averages the members' values.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class DynamicsConfig:
    members: int = 5
    hidden: int = 256
    layers: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-5


class EnsembleLinear(nn.Module):
    """E independent linear layers applied to E batches at once: (E, B, i) -> (E, B, o)."""

    def __init__(self, members: int, fan_in: int, fan_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(members, fan_in, fan_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class DynamicsEnsemble(nn.Module):
    """E members, each an MLP from the normalised (state, action) to the normalised change of
    state. Normalisation statistics are buffers, so they travel with the weights."""

    def __init__(self, state_dim: int, action_dim: int, cfg: DynamicsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.state_dim, self.action_dim = state_dim, action_dim
        sizes = [state_dim + action_dim] + [cfg.hidden] * cfg.layers + [state_dim]
        self.layers = nn.ModuleList(EnsembleLinear(cfg.members, i, o)
                                    for i, o in zip(sizes[:-1], sizes[1:], strict=True))
        for name, dim in (("state_mean", state_dim), ("delta_mean", state_dim)):
            self.register_buffer(name, torch.zeros(dim))
        for name, dim in (("state_std", state_dim), ("delta_std", state_dim)):
            self.register_buffer(name, torch.ones(dim))

    def set_statistics(self, states: np.ndarray, deltas: np.ndarray) -> None:
        """Normalisation from the training transitions: states (N, S), deltas (N, S)."""
        for name, rows in (("state", states), ("delta", deltas)):
            t = torch.as_tensor(rows, dtype=torch.float32)
            getattr(self, f"{name}_mean").copy_(t.mean(0))
            getattr(self, f"{name}_std").copy_(t.std(0).clamp_min(1e-6))

    def normalised_delta(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(E, B, S) each member's predicted change of state, in standard deviations, from
        states (B, S) and actions (B, A) shared by the members, or (E, B, S) and (E, B, A)."""
        x = torch.cat([(states - self.state_mean) / self.state_std, actions], dim=-1)
        if x.dim() == 2:
            x = x.expand(self.cfg.members, *x.shape)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x

    @torch.no_grad()
    def predict(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(E, B, S) each member's next state from states (B, S) and actions (B, A)."""
        delta = self.normalised_delta(states, actions)
        return states + delta * self.delta_std + self.delta_mean


def dynamics_loss(model: DynamicsEnsemble, states: torch.Tensor, actions: torch.Tensor,
                  next_states: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean squared error of the normalised state change over members, dimensions and a batch
    of transitions (E, B, S) each (every member sees its own bootstrap batch)."""
    target = (next_states - states - model.delta_mean) / model.delta_std  # (E, B, S)
    err = (model.normalised_delta(states, actions) - target).pow(2)  # (E, B, S)
    loss = err.mean()
    return loss, {"dynamics/loss": float(loss.detach()),
                  "dynamics/worst_dim": float(err.detach().mean((0, 1)).max())}


def transitions(dataset: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states, actions, next states) of every transition of an EpisodeDataset with states."""
    if dataset.state is None:
        raise ValueError(f"{dataset.root}: recorded without the `state` field; a dynamics model "
                         "reads state vectors (collect the dataset again)")
    idx = np.flatnonzero(dataset.has_next)  # (T,)
    return dataset.state[idx], dataset.actions[idx], dataset.state[idx + 1]


def embedded_transitions(space: Any, dataset: Any, chunk: int = 1024
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, actions, next h) of every transition of an EpisodeDataset, h (N, H) being the
    frames' embedding by ``space`` (lookahead.LatentSpace): its images or, for a state
    agent, its state vectors, with the proprio. Frames are embedded once, ``chunk`` at a
    time (a 100k-frame image dataset is not held in memory)."""
    frames = np.arange(dataset.num_frames)
    if space.kind == "state" and dataset.state is None:
        raise ValueError(f"{dataset.root}: recorded without the `state` field, which a state "
                         "agent's embedding reads")
    if space.agent.proprio_dim and dataset.proprio is None:
        raise ValueError(f"{dataset.root}: no proprio field, which the agent reads")
    parts = []
    for lo in range(0, len(frames), chunk):
        idx = frames[lo:lo + chunk]
        obs = dataset.state[idx] if space.kind == "state" else dataset.images(idx)
        parts.append(space.embed(obs, None if dataset.proprio is None else dataset.proprio[idx]
                                 ).numpy())
    h = np.concatenate(parts)  # (N, H)
    idx = np.flatnonzero(dataset.has_next)  # (T,)
    return h[idx], dataset.actions[idx], h[idx + 1]


def train_dynamics(states: np.ndarray, actions: np.ndarray, next_states: np.ndarray,
                   cfg: DynamicsConfig = DynamicsConfig(), steps: int = 3000, batch: int = 256,
                   seed: int = 0) -> DynamicsEnsemble:
    """Fit the ensemble on transitions (N, S), (N, A), (N, S); each member draws its own
    minibatches (the ensemble's diversity comes from them and from its initialisation)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = DynamicsEnsemble(states.shape[1], actions.shape[1], cfg)
    model.set_statistics(states, next_states - states)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    s_all, a_all, n_all = (torch.as_tensor(x, dtype=torch.float32)
                           for x in (states, actions, next_states))
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(states), (cfg.members, batch)))  # (E, B)
        loss, _ = dynamics_loss(model, s_all[idx], a_all[idx], n_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


FORMAT = "goalrl-dynamics"
VERSION = 1


def save_dynamics(model: DynamicsEnsemble, folder: str | Path, meta: dict[str, Any]) -> Path:
    """Write the model as ``folder`` (weights and meta.json), replacing it whole: a reader
    sees the old model or the new one, never a mix."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp / "model.safetensors"))
    meta = {"format": FORMAT, "version": VERSION, "config": asdict(model.cfg),
            "state_dim": model.state_dim, "action_dim": model.action_dim, **meta}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def load_dynamics(folder: str | Path) -> tuple[DynamicsEnsemble, dict[str, Any]]:
    """The model saved by ``save_dynamics`` and its meta; a clear error naming the folder
    when it is missing, of another kind or damaged."""
    from safetensors.torch import load_file

    from goalrl.errors import UserError

    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except FileNotFoundError as err:
        raise UserError(f"dynamics={folder}: no dynamics model there (meta.json missing); "
                        "`goalrl dynamics data=<dataset> out=<folder>` trains one") from err
    except json.JSONDecodeError as err:
        raise UserError(f"dynamics={folder}: meta.json is not JSON ({err})") from err
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise UserError(f"dynamics={folder}: not a goalrl dynamics model of version {VERSION} "
                        f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
    model = DynamicsEnsemble(meta["state_dim"], meta["action_dim"],
                             DynamicsConfig(**meta["config"]))
    try:
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
    except Exception as err:  # a missing, truncated or mismatched weights file
        raise UserError(f"dynamics={folder}: cannot load model.safetensors: {err}") from err
    return model.eval(), meta
