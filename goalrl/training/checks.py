"""Checks before training: refuse data, checkpoints and settings that cannot work, before any
update is spent or anything is written."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import torch

from goalrl.distributed import DistInfo
from goalrl.errors import UserError


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (non-finite loss, incompatible data); the message says why."""


def simulator_available() -> bool:
    return importlib.util.find_spec("pybullet") is not None


def check_dataset_fits(dataset: Any, env_id: str | None, evaluates: bool = True) -> dict[str, Any]:
    """The eval scene's action/proprio sizes; TrainingError when the dataset does not match.

    A dataset of another robot (its env id is not a goalrl scene) trains unchecked when the
    run does not evaluate.

    Without the simulator (a GPU node with only the learning stack) a run that never
    evaluates trains unchecked, with a warning; one that would evaluate is refused now rather
    than after its updates are spent.
    """
    if env_id is None:
        return {}
    if not simulator_available():
        if evaluates:
            raise TrainingError(
                f"evaluating on {env_id} needs pybullet, which is not installed here; install "
                "it, or train only with eval_every=0 eval_episodes=0 and evaluate elsewhere"
            )
        warnings.warn(
            f"pybullet is not installed: {dataset.root} is not checked against {env_id} "
            "and this run does not evaluate",
            stacklevel=2,
        )
        return {}
    from goalrl.data.collect import env_spec
    from goalrl.envs.registration import ENV_IDS

    if env_id not in ENV_IDS:
        # imported logs name their own robot's environment (robomimic's "Lift"): there is no
        # scene to check them against, nor to evaluate in
        if evaluates:
            raise TrainingError(
                f"{env_id} (env= or the dataset's env id) is not a goalrl scene, so this run "
                f"cannot evaluate; pass env=<one of {', '.join(ENV_IDS)}> or train only with "
                "eval_every=0 eval_episodes=0"
            )
        return {}

    spec = env_spec(env_id, dataset.image_shape[0])
    if spec["action_dim"] != dataset.action_dim:
        raise TrainingError(
            f"dataset {dataset.root} has {dataset.action_dim}-d actions but env {env_id} takes "
            f"{spec['action_dim']}-d actions"
        )
    if dataset.image_shape[0] != dataset.image_shape[1]:
        raise TrainingError(f"dataset {dataset.root} images are not square: {dataset.image_shape}")
    return spec


def check_out_free(out: Path, what: str = "a run", resumable: bool = True) -> None:
    """TrainingError if ``out`` already holds a checkpoint (a new run would overwrite it)."""
    if (out / "checkpoints" / "latest").is_file():
        how = "pass resume=true to continue it or " if resumable else ""
        raise TrainingError(f"{out} already holds {what}; {how}choose another out=")


def check_checkpoint_fits(meta: dict[str, Any], dataset: Any, path: str) -> None:
    if tuple(meta["image_shape"]) != tuple(dataset.image_shape):
        raise TrainingError(
            f"checkpoint {path} was trained on {tuple(meta['image_shape'])} images, "
            f"dataset {dataset.root} has {tuple(dataset.image_shape)}"
        )
    if meta["action_dim"] != dataset.action_dim:
        raise TrainingError(
            f"checkpoint {path} has {meta['action_dim']}-d actions, "
            f"dataset {dataset.root} has {dataset.action_dim}-d"
        )


def check_init_fits(
    meta: dict[str, Any], step_dir: str, dataset: Any, spec: dict[str, Any], task: str
) -> None:
    """TrainingError naming the file and field where a fine-tuning init checkpoint does not fit
    the labeled data or the task scene."""
    where = f"init checkpoint {Path(step_dir) / 'meta.json'}"
    kind = meta.get("agent")
    if kind not in ("am", "task"):  # the kinds with a goal-conditioned Q network
        raise TrainingError(
            f"{where}: field 'agent' is {kind!r}; fine-tuning needs a goal-conditioned "
            "Q-function (a checkpoint of `goalrl pretrain agent=am` or of `goalrl finetune`)"
        )
    shape = tuple(meta["image_shape"])
    if shape != tuple(dataset.image_shape):
        raise TrainingError(
            f"{where}: field 'image_shape' is {list(shape)} but the labeled dataset "
            f"{dataset.root} has {list(dataset.image_shape)} images (task {task} is rendered at "
            "the data's size); collect the data at the checkpoint's image_size"
        )
    if meta["action_dim"] != spec["action_dim"]:
        raise TrainingError(
            f"{where}: field 'action_dim' is {meta['action_dim']} but task {task} takes "
            f"{spec['action_dim']}-d actions"
        )
    if meta["action_dim"] != dataset.action_dim:
        raise TrainingError(
            f"{where}: field 'action_dim' is {meta['action_dim']} but the labeled dataset "
            f"{dataset.root} has {dataset.action_dim}-d actions"
        )
    if reads_proprio(meta["agent_config"]) and meta.get("proprio_dim"):
        for name, dim in (("task " + task, spec["proprio_dim"]),
                          (f"the labeled dataset {dataset.root}", dataset.proprio_dim)):
            if dim != meta["proprio_dim"]:
                raise TrainingError(
                    f"{where}: field 'proprio_dim' is {meta['proprio_dim']} (the encoder reads "
                    f"proprioception) but {name} has {dim}"
                )


def reads_proprio(agent_config: dict[str, Any]) -> bool:
    """use_proprio of a checkpoint's agent config: flat or nested (``encoder``), pretrained
    (top level) or fine-tuned (under ``am``)."""
    am = agent_config.get("am", agent_config)
    return bool(am.get("use_proprio", am.get("encoder", {}).get("use_proprio", False)))


def check_aux_data_fits(aux: Any, dataset: Any) -> None:
    """TrainingError unless the auxiliary (unlabeled) data has the labeled data's shapes."""
    if tuple(aux.image_shape) != tuple(dataset.image_shape) or aux.action_dim != dataset.action_dim:
        raise TrainingError(
            f"auxiliary data {aux.root} has {list(aux.image_shape)} images and "
            f"{aux.action_dim}-d actions; the labeled dataset {dataset.root} has "
            f"{list(dataset.image_shape)} and {dataset.action_dim}-d"
        )
    if (aux.proprio_dim is None) != (dataset.proprio_dim is None):
        raise TrainingError(f"auxiliary data {aux.root} and {dataset.root} differ in proprio")


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name: old -> new"`` for every field of ``current`` whose value differs in ``saved``
    (nested configs by dotted name, e.g. ``encoder.embed_dim``)."""
    saved, current = flatten(saved), flatten(current)
    return [
        f"{name}: {saved[name]!r} -> {value!r}"
        for name, value in current.items()
        if name in saved and saved[name] != value
    ]


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"encoder": {"embed_dim": 16}}`` -> ``{"encoder.embed_dim": 16}``."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def check_cuda_graph(enabled: bool, device: torch.device, info: DistInfo) -> None:
    """TrainingError before anything runs unless a CUDA-graph run can work here."""
    if not enabled:
        return
    if device.type != "cuda":
        raise TrainingError(f"cuda_graph=true needs a CUDA device; this run is on {device}")
    if info.enabled:
        raise TrainingError(
            "cuda_graph=true runs one process; under torchrun (world size "
            f"{info.world_size}) leave it off"
        )
