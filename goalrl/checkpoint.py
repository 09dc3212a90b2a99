"""Checkpoints: safetensors for every tensor, JSON for everything else; never pickle.

A checkpoint is a folder::

    <run>/checkpoints/step_000500/
        tensors.safetensors   # every tensor of the state (weights, optimiser moments, RNG)
        state.json            # the rest of the nested state, tensors replaced by references
        meta.json             # config, step, image size, action bounds, dataset fingerprint, parent
    <run>/checkpoints/latest  # text file naming the newest complete checkpoint folder

A checkpoint folder is written under a temporary name and renamed into place, and
``latest`` is replaced atomically after it, so a crash mid-save leaves the previous
checkpoint as the latest. ``load_checkpoint`` accepts a step folder, a ``checkpoints``
folder or a run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from goalrl.errors import UserError

FORMAT = "goalrl-checkpoint"
VERSION = 1


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, incomplete or not goalrl's."""


# ---- nested state <-> (tensors, JSON tree) ------------------------------------------------
def flatten_state(state: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """JSON-able tree of ``state`` with tensors moved into ``tensors`` (keys are tree paths)."""
    if isinstance(state, torch.Tensor):
        key = prefix or "tensor"
        tensors[key] = state.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(state, dict):
        # keys keep their type (optimiser state is keyed by int parameter ids)
        return {
            "__dict__": [
                [k, flatten_state(v, tensors, f"{prefix}/{k}" if prefix else str(k))]
                for k, v in state.items()
            ]
        }
    if isinstance(state, (list, tuple)):
        items = [flatten_state(v, tensors, f"{prefix}/{i}") for i, v in enumerate(state)]
        return {"__tuple__": items} if isinstance(state, tuple) else items
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    if hasattr(state, "item") and hasattr(state, "dtype"):  # numpy scalar
        return state.item()
    raise TypeError(f"cannot store {type(state).__name__} at {prefix!r} in a checkpoint")


def unflatten_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__dict__" in tree:
            return {k: unflatten_state(v, tensors) for k, v in tree["__dict__"]}
        if "__tuple__" in tree:
            return tuple(unflatten_state(v, tensors) for v in tree["__tuple__"])
        raise CheckpointError(f"unexpected object in checkpoint state: keys {sorted(tree)}")
    if isinstance(tree, list):
        return [unflatten_state(v, tensors) for v in tree]
    return tree


# ---- save / load --------------------------------------------------------------------------
def save_checkpoint(
    run_dir: str | Path, step: int, state: dict[str, Any], meta: dict[str, Any]
) -> Path:
    """Write ``state`` (nested dict of tensors and plain values) as checkpoint ``step``."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors: dict[str, torch.Tensor] = {}
    tree = flatten_state(state, tensors)
    save_file(tensors, str(tmp / "tensors.safetensors"))
    (tmp / "state.json").write_text(json.dumps(tree))
    meta = {"format": FORMAT, "version": VERSION, "step": step, **meta}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_atomic(root / "latest", final.name + "\n")
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """The step folder that ``path`` (step folder, checkpoints folder or run folder) names."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if (p / "meta.json").is_file() and (p / "tensors.safetensors").is_file():
        return p
    for root in (p, p / "checkpoints"):
        latest = root / "latest"
        if latest.is_file():
            step_dir = root / latest.read_text().strip()
            if not step_dir.is_dir():
                raise CheckpointError(f"{latest} names {step_dir.name}, which does not exist")
            return step_dir
    raise CheckpointError(
        f"{p} is not a goalrl checkpoint "
        "(no meta.json + tensors.safetensors, no checkpoints/latest)"
    )


def read_meta(path: str | Path) -> dict[str, Any]:
    step_dir = resolve_checkpoint(path)
    try:
        meta = json.loads((step_dir / "meta.json").read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{step_dir / 'meta.json'} is not valid JSON: {err}") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{step_dir / 'meta.json'} is not a goalrl checkpoint (format field)")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{step_dir / 'meta.json'}: checkpoint version {meta.get('version')} is not {VERSION}"
        )
    return meta


def load_checkpoint(
    path: str | Path, map_location: str = "cpu"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a checkpoint; state tensors on ``map_location``."""
    step_dir = resolve_checkpoint(path)
    meta = read_meta(step_dir)
    try:
        tensors = load_file(str(step_dir / "tensors.safetensors"), device=map_location)
        tree = json.loads((step_dir / "state.json").read_text())
    except (OSError, json.JSONDecodeError, Exception) as err:  # safetensors raises its own types
        raise CheckpointError(f"checkpoint {step_dir} is damaged: {err}") from err
    meta["path"] = str(step_dir)
    return unflatten_state(tree, tensors), meta


def checkpoint_hash(path: str | Path) -> str:
    """Short content hash of a checkpoint's tensors: the lineage id fine-tuned runs record."""
    step_dir = resolve_checkpoint(path)
    digest = hashlib.sha256()
    with open(step_dir / "tensors.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
