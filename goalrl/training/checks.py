"""Checks before training: refuse data, checkpoints and settings that cannot work, before any
update is spent or anything is written."""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goalrl.distributed import DistInfo
from goalrl.errors import UserError


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (non-finite loss, incompatible data); the message says why."""


# Run settings by the values they may take; a field a config does not have is skipped.
# (A zero save_every or log_every used to end in ZeroDivisionError, steps=-5 in a run that
# did nothing and exited 0.)
AT_LEAST_ONE = ("batch_size", "log_every", "save_every", "prefetch", "updates_per_episode")
COUNTS = ("steps", "online_steps", "eval_every", "eval_episodes", "videos", "threads",
          "keep_last", "aux_batch_size")  # 0 or more
POSITIVE = ("max_loss",)
NOT_NEGATIVE = ("explore_std", "progress_every")  # progress_every=0: a line after every update
FRACTIONS = ("p_chain", "online_ratio")


def check_settings(cfg: Any, at_least_one: tuple[str, ...] = ()) -> None:
    """TrainingError naming the first run setting whose value cannot work (before anything is
    read, built or written); ``at_least_one``: more fields that must be 1 or more here (a
    pretraining run's steps; fine-tuning may have no offline steps)."""
    at_least_one = AT_LEAST_ONE + at_least_one
    rules = {
        **{name: ("a whole number >= 0", lambda v: v >= 0) for name in COUNTS},
        **{name: ("a whole number >= 1", lambda v: v >= 1) for name in at_least_one},
        **{name: ("above 0", lambda v: v > 0) for name in POSITIVE},
        **{name: ("0 or more", lambda v: v >= 0) for name in NOT_NEGATIVE},
        **{name: ("between 0 and 1", lambda v: 0 <= v <= 1) for name in FRACTIONS},
    }
    for name, (rule, holds) in rules.items():
        if not hasattr(cfg, name):
            continue
        value = getattr(cfg, name)
        whole = name in COUNTS or name in at_least_one
        number = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not holds(value):
            raise TrainingError(f"{name}={value!r}: must be {rule}")


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
    check_action_bounds(dataset, env_id, scene_action_box(env_id, spec), evaluates)
    return spec


def scene_action_box(env_id: str, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(A,) low and high of a scene's action space (from ``spec`` when it carries them)."""
    if "action_low" in spec and "action_high" in spec:
        return np.asarray(spec["action_low"], float), np.asarray(spec["action_high"], float)
    import gymnasium as gym

    import goalrl  # noqa: F401  (registers the scene ids)

    env = gym.make(env_id, image_size=16)  # the action box does not depend on the image size
    try:
        return np.asarray(env.action_space.low, float), np.asarray(env.action_space.high, float)
    finally:
        env.close()


def check_action_bounds(
    dataset: Any, env_id: str, box: tuple[np.ndarray, np.ndarray], evaluates: bool
) -> None:
    """The dataset's action bounds (meta.json's action_low/action_high) against the scene's
    action box. An agent acts (and CEM searches) inside the scene's box, so data recorded on
    another scale trains a Q that is never asked about its own actions: refused when the run
    evaluates on the scene, a warning when it does not."""
    low, high = dataset.meta.get("action_low"), dataset.meta.get("action_high")
    if low is None or high is None:
        return
    scene_low, scene_high = box
    for name, bound in (("action_low", low), ("action_high", high)):
        values = np.asarray(bound, float).reshape(-1)
        outside = ~np.isfinite(values) | (values < scene_low - 1e-6) | (values > scene_high + 1e-6)
        if not outside.any():
            continue
        d = int(np.flatnonzero(outside)[0])
        message = (
            f"dataset {Path(dataset.root) / 'meta.json'}: field '{name}'[{d}] is {values[d]} "
            f"but scene {env_id} takes actions in [{scene_low[d]}, {scene_high[d]}] (the agent "
            "acts inside the scene's box); rescale the actions into it"
        )
        if evaluates:
            raise TrainingError(f"{message}, or train only with eval_every=0 eval_episodes=0")
        warnings.warn(f"{message}; this run does not evaluate, so it trains on", stacklevel=3)
        return


def check_out_free(out: Path, what: str = "a run", resumable: bool = True) -> None:
    """TrainingError if ``out`` already holds a checkpoint (a new run would overwrite it)."""
    if (out / "checkpoints" / "latest").is_file():
        how = "pass resume=true to continue it or " if resumable else ""
        raise TrainingError(f"{out} already holds {what}; {how}choose another out=")


def check_checkpoint_fits(meta: dict[str, Any], dataset: Any, path: str) -> None:
    """TrainingError unless a resumed checkpoint was trained on this very dataset."""
    saved = meta.get("dataset_fingerprint")
    if saved is not None and saved != dataset.fingerprint():
        raise TrainingError(
            f"checkpoint {path} was trained on dataset {meta.get('dataset')} (fingerprint "
            f"{saved}); data={dataset.root} is another dataset (fingerprint "
            f"{dataset.fingerprint()}); resume with the run's own data, or start a new run "
            "(another out=)"
        )
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
    # which agent kinds a method can start from: goalrl.training.finetune_init
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
    (top level) or fine-tuned (under ``am``, or ``gcbc`` for behaviour cloning)."""
    am = agent_config.get("am") or agent_config.get("gcbc") or agent_config  # task_q, task_bc
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


def check_states_fit(encoder: Any, data: Any, where: str, field: str, what: str) -> None:
    """TrainingError naming ``where`` and ``field`` (the encoder config's path) when a state
    encoder (``kind=state``) cannot read ``data``, an EpisodeDataset or a scene's spec (``what``
    says which): it records no state (neither proprio nor achieved_goal), or states of another
    width than ``state_dim``. An image encoder passes."""
    from goalrl.envs.state import state_width

    if encoder.kind != "state":
        return
    width = state_width(data)
    if width == 0:
        raise TrainingError(
            f"{where}: field '{field}.kind' is 'state' but {what} records no state (neither "
            "proprio nor achieved_goal); fine-tune it with an image encoder"
        )
    if encoder.state_dim is not None and encoder.state_dim != width:
        raise TrainingError(
            f"{where}: field '{field}.state_dim' is {encoder.state_dim} but {what} has "
            f"{width}-d states; use data of the checkpoint's scene"
        )


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
