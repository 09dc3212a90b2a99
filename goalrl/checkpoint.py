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
STEP_PREFIX = "step_"  # a complete checkpoint: step_0000500
TMP_PREFIX = ".tmp_step_"  # a save in progress (or interrupted by a kill): .tmp_step_0000500_<pid>


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
            if tree["__tensor__"] not in tensors:
                raise CheckpointError(
                    f"state.json names tensor {tree['__tensor__']!r}, which "
                    "tensors.safetensors does not hold"
                )
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
    final = root / step_name(step)
    tmp = root / f"{TMP_PREFIX}{step:07d}_{os.getpid()}"
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
    write_atomic(root / "latest", final.name + "\n")
    return final


def step_name(step: int) -> str:
    """The folder name of checkpoint ``step`` (``step_0000500``)."""
    return f"{STEP_PREFIX}{step:07d}"


def checkpoint_dirs(root: str | Path) -> list[Path]:
    """The complete step folders of a ``checkpoints`` folder, oldest step first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.glob(f"{STEP_PREFIX}*")
             if p.is_dir() and p.name.removeprefix(STEP_PREFIX).isdigit()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(STEP_PREFIX)))


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
            step_dir = root / latest.read_text(errors="replace").strip()
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
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{step_dir / 'meta.json'} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
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
    check_finite(tensors, step_dir)
    meta["path"] = str(step_dir)
    try:
        state = unflatten_state(tree, tensors)
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {step_dir}: {err}") from err
    return state, meta


def check_finite(tensors: dict[str, torch.Tensor], where: str | Path) -> None:
    """CheckpointError naming the first floating tensor holding a NaN or an infinity: a broken
    net would otherwise act (and evaluate to success 0.0) as if it were a trained one. Training
    never saves one (the loss check runs before each save), so such a file was made elsewhere."""
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"checkpoint {where}: tensor {key!r} holds NaN or infinite values; refusing to "
                "load it"
            )


# ---- a loaded state against the live one ---------------------------------------------------
# Tensors whose size legitimately differs between runs: a generator's state is 5056 bytes on
# the CPU and 16 on CUDA, and the agent reseeds (with a warning) when it cannot use one.
FREE_SHAPE_KEYS = ("rng",)


def check_state_fits(expected: Any, loaded: Any, path: str = "") -> None:
    """CheckpointError naming the key path of the first tensor in ``loaded`` whose shape or dtype
    differs from the live tensor at the same place in ``expected``, and of any tensor missing
    from a module's weights or not expected at all.

    ``expected`` is the live state (``agent.state_dict()``), with each optimiser's entry
    replaced by the ``torch.optim.Optimizer`` itself: its saved moments are checked against
    the parameters they belong to. Torch checks none of this for optimiser state, and the
    fused AdamW kernel reads and writes past a smaller buffer than its parameter's.
    Plain values (step counts, configs) may differ: the caller decides what to keep of them.
    """
    where = path or "state"
    if isinstance(expected, torch.optim.Optimizer):
        check_optimizer_state(expected, loaded, where)
    elif isinstance(expected, torch.Tensor):
        if not isinstance(loaded, torch.Tensor):
            raise CheckpointError(
                f"{where}: expected a tensor {describe(expected)}, found {type(loaded).__name__}"
            )
        free_shape = path.rsplit("/", 1)[-1] in FREE_SHAPE_KEYS
        if loaded.dtype != expected.dtype or (not free_shape and loaded.shape != expected.shape):
            raise CheckpointError(
                f"{where}: expected {describe(expected)}, found {describe(loaded)}"
            )
    elif isinstance(expected, dict):
        if not isinstance(loaded, dict):
            if holds_tensor(expected):
                raise CheckpointError(f"{where}: expected a mapping of tensors, found "
                                      f"{type(loaded).__name__}")
            return
        # a module's weights: every one must be there (elsewhere a missing part is optional,
        # e.g. the weight average of an older checkpoint, and the agent says what it needs)
        weights = bool(expected) and all(isinstance(v, torch.Tensor) for v in expected.values())
        for key, value in expected.items():
            if key in loaded:
                check_state_fits(value, loaded[key], f"{path}/{key}" if path else str(key))
            elif weights:
                raise CheckpointError(
                    f"{where}: tensor {key!r} {describe(value)} is missing from the checkpoint"
                )
        for key in loaded.keys() - expected.keys():
            if holds_tensor(loaded[key]):
                raise CheckpointError(
                    f"{where}: the checkpoint holds {key!r}, which this agent does not have"
                )
    elif isinstance(expected, (list, tuple)):
        if not holds_tensor(expected) and not holds_tensor(loaded):
            return
        if not isinstance(loaded, (list, tuple)) or len(loaded) != len(expected):
            found = len(loaded) if isinstance(loaded, (list, tuple)) else type(loaded).__name__
            raise CheckpointError(f"{where}: expected {len(expected)} entries, found {found}")
        for i, (want, got) in enumerate(zip(expected, loaded, strict=True)):
            check_state_fits(want, got, f"{path}/{i}")
    elif holds_tensor(loaded):
        raise CheckpointError(f"{where}: expected {expected!r}, found tensors")


def check_optimizer_state(optimizer: torch.optim.Optimizer, loaded: Any, where: str) -> None:
    """An optimiser's saved state against the parameters it will update: as many groups, as
    many parameters in each, and every per-parameter tensor of its parameter's shape and dtype
    (``step``: a float32 scalar)."""
    if not isinstance(loaded, dict) or not isinstance(loaded.get("param_groups"), list):
        raise CheckpointError(f"{where}: not an optimiser state (no param_groups list)")
    groups, live = loaded["param_groups"], optimizer.param_groups
    if len(groups) != len(live):
        raise CheckpointError(
            f"{where}/param_groups: {len(groups)} parameter groups, expected {len(live)}"
        )
    params: dict[Any, torch.Tensor] = {}  # saved parameter id -> the live parameter
    for i, (group, live_group) in enumerate(zip(groups, live, strict=True)):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(live_group["params"]):
            found = len(ids) if isinstance(ids, list) else "no"
            raise CheckpointError(
                f"{where}/param_groups/{i}: {found} parameters, expected "
                f"{len(live_group['params'])}"
            )
        params.update(zip(ids, live_group["params"], strict=True))
    state = loaded.get("state", {})
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}/state: expected a mapping, found {type(state).__name__}")
    for pid, entry in state.items():
        if pid not in params:
            raise CheckpointError(f"{where}/state/{pid}: no parameter of id {pid} in param_groups")
        if not isinstance(entry, dict):
            raise CheckpointError(f"{where}/state/{pid}: expected a mapping, found "
                                  f"{type(entry).__name__}")
        param = params[pid]
        for name, value in entry.items():
            # torch keeps Adam's step count as a float32 scalar; every other entry (exp_avg,
            # exp_avg_sq, max_exp_avg_sq, momentum_buffer) has its parameter's shape and dtype
            want = torch.empty((), dtype=torch.float32) if name == "step" else param
            check_state_fits(want, value, f"{where}/state/{pid}/{name}")


def describe(tensor: torch.Tensor) -> str:
    return f"shape {list(tensor.shape)} dtype {str(tensor.dtype).removeprefix('torch.')}"


def holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(holds_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_tensor(v) for v in value)
    return False


def checkpoint_hash(path: str | Path) -> str:
    """Short content hash of a checkpoint's tensors: the lineage id fine-tuned runs record."""
    step_dir = resolve_checkpoint(path)
    digest = hashlib.sha256()
    with open(step_dir / "tensors.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
