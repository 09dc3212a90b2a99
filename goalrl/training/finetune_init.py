"""What fine-tuning starts from: the init checkpoint, read and checked, and its weights loaded.

Which weights carry over depends on the fine-tuning method (``FinetuneConfig.method``) and on
the kind of agent the checkpoint holds:

- method ``q`` (the task Q): from ``am`` or ``task`` every weight (the goal-conditioned Q
  network); from an agent without a Q network of that shape (``gcbc``, and the policy of
  ``gcivl``, ``gciql``, ``crl``, ``hiql``, ``qrl``) only the observation/goal encoder of its acting
  policy (conv trunk, proprio embedding, fusion MLP): the Q heads start fresh (``qrl`` too:
  its quasimetric value has no action head either). That is the
  closest "same fine-tuning" such a checkpoint allows.
- method ``bc`` (behaviour cloning): from ``gcbc`` or ``task_bc`` the whole policy network
  (a value agent's policy where its tensors fit the GCBC network; refused by name otherwise);
  an ``am`` checkpoint has no policy head and is refused.

The network's shape always comes from the checkpoint: a user override of a shape field that
differs is refused by name before anything is trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from goalrl.agents import AMConfig
from goalrl.agents.registry import config_from_dict
from goalrl.agents.task_q import ARCHITECTURE_FIELDS
from goalrl.checkpoint import CheckpointError, check_state_fits
from goalrl.training.checks import TrainingError, check_init_fits, check_states_fit, flatten

Q_KINDS = ("am", "task")  # a goal-conditioned Q network: every weight carries over to a task Q
POLICY_KINDS = ("gcbc", "gcivl", "gciql", "crl", "hiql", "qrl")  # an acting policy's encoder
BC_KINDS = ("gcbc", "task_bc", "gcivl", "gciql", "crl", "qrl")  # a Gaussian policy network
INIT_KINDS = {"q": Q_KINDS + POLICY_KINDS, "bc": BC_KINDS}
# GCBCConfig fields that fix the policy network's shape (the checkpoint's values are the only
# valid ones); the log-std bounds are read by the network itself
BC_ARCHITECTURE_FIELDS = ("encoder", "log_std_min", "log_std_max")


@dataclass
class Init:
    """What fine-tuning starts from: agent config, weights (None: scratch) and lineage."""

    agent_cfg: Any  # TaskQConfig (method q) or TaskBCConfig (method bc)
    state: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    path: str | None = None  # the checkpoint's step folder
    parent: str | None = None  # checkpoint_hash of the init checkpoint
    kind: str | None = None  # the init checkpoint's agent kind (None: from scratch)
    carried: str = "nothing"  # all weights | encoder | nothing


def is_none(value: str | None) -> bool:
    return value is None or str(value).strip().lower() in ("none", "null", "")


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"encoder.embed_dim": 16}`` -> ``{"encoder": {"embed_dim": 16}}``."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def merge_config(
    kind: str, user: Any, ckpt_values: dict[str, Any], where: str, *,
    shape_fields: tuple[str, ...], prefix: str, dropped: tuple[str, ...] = (),
) -> Any:
    """The checkpoint's ``kind`` config, with the fields the user changed from the defaults.

    A changed shape field that differs from the checkpoint cannot be honoured (the weights
    have another shape): TrainingError naming the field (``prefix``: its command-line path).
    ``dropped``: checkpoint fields not inherited (the default stands unless the user set it).
    """
    inherited = {k: v for k, v in ckpt_values.items() if k not in dropped}
    merged = flatten(asdict(config_from_dict(kind, inherited)))  # today's layout
    defaults = flatten(asdict(type(user)()))
    for name, value in flatten(asdict(user)).items():
        if value == defaults[name]:
            continue
        if set(name.split(".")) & set(shape_fields) and merged[name] != value:
            raise TrainingError(
                f"{where}: field 'agent_config.{name}' is {merged[name]!r} but "
                f"{prefix}.{name}={value!r} was asked for; the encoder and heads of a checkpoint "
                "cannot change shape (drop the override or pretrain with it)"
            )
        merged[name] = value
    return config_from_dict(kind, unflatten(merged))


def merge_am_config(user: AMConfig, ckpt_values: dict[str, Any], where: str) -> AMConfig:
    """The checkpoint's AM config with the user's changes (``merge_config``). How the
    pretrained policy acted is not inherited: with act_rule=prior_mean the task policy would
    follow the goal-reaching prior and never use the task Q it learns; nor is its actor on Q
    (the task agent never acts with it or optimises it)."""
    return merge_config("am", user, ckpt_values, where, shape_fields=ARCHITECTURE_FIELDS,
                        prefix="agent.am", dropped=("act_rule", "actor"))


def with_encoder_of(user: AMConfig, encoder: Any, where: str) -> AMConfig:
    """The user's AM config with the checkpoint's ``EncoderConfig`` (an encoder-only init); a
    changed encoder field that differs is refused by name."""
    ckpt = asdict(encoder)
    default = asdict(AMConfig().encoder)
    for name, value in asdict(user.encoder).items():
        if value != default[name] and value != ckpt[name]:
            raise TrainingError(
                f"{where}: field 'agent_config.encoder.{name}' is {ckpt[name]!r} but "
                f"agent.am.encoder.{name}={value!r} was asked for; the encoder of a checkpoint "
                "cannot change shape (drop the override or pretrain with it)"
            )
    return replace(user, encoder=encoder)


def resolve_init(cfg: Any, dataset: Any, spec: dict[str, Any], device: torch.device) -> Init:
    """Read and check the init checkpoint for ``cfg.method`` (nothing is trained or written)."""
    agent_cfg = cfg.bc if cfg.method == "bc" else cfg.agent
    if is_none(cfg.init):
        return Init(agent_cfg=agent_cfg)
    from goalrl.checkpoint import checkpoint_hash, load_checkpoint, read_meta, resolve_checkpoint

    step_dir = str(resolve_checkpoint(cfg.init))
    meta = read_meta(step_dir)
    kind = meta.get("agent")
    where = f"init checkpoint {Path(step_dir) / 'meta.json'}"
    if kind not in INIT_KINDS[cfg.method]:
        what = ("a Q-function or a policy on the shared encoder" if cfg.method == "q"
                else "a Gaussian policy network (GCBC's)")
        raise TrainingError(
            f"{where}: field 'agent' is {kind!r}; method={cfg.method} fine-tunes from {what}: "
            f"one of {', '.join(INIT_KINDS[cfg.method])}"
        )
    check_init_fits(meta, step_dir, dataset, spec, cfg.task)
    values = meta["agent_config"]
    carried = "all weights"
    if cfg.method == "bc":
        gcbc = merge_config("gcbc", agent_cfg.gcbc, values.get("gcbc", values), where,
                            shape_fields=BC_ARCHITECTURE_FIELDS, prefix="bc.gcbc")
        agent_cfg = replace(agent_cfg, gcbc=gcbc)
    elif kind in Q_KINDS:
        am = merge_am_config(agent_cfg.am, values.get("am", values), where)
        agent_cfg = replace(agent_cfg, am=am)
    else:
        encoder = config_from_dict(kind, values).encoder  # old flat layouts too
        agent_cfg = replace(agent_cfg, am=with_encoder_of(agent_cfg.am, encoder, where))
        carried = "encoder"
    state, meta = load_checkpoint(step_dir, map_location=str(device))
    return Init(agent_cfg, state["agent"], meta, step_dir, checkpoint_hash(step_dir), kind,
                carried)


def encoder_of(cfg: Any, init: Init) -> tuple[Any, str, str]:
    """(the run's EncoderConfig, where it came from, its field path there): the init
    checkpoint's meta.json, or the command line for a scratch run."""
    encoder = init.agent_cfg.gcbc.encoder if cfg.method == "bc" else init.agent_cfg.am.encoder
    if init.path is None:
        return encoder, "finetune", "bc.gcbc.encoder" if cfg.method == "bc" else "agent.am.encoder"
    nested = {"task": "am.", "task_bc": "gcbc."}.get(init.kind or "", "")
    return encoder, f"init checkpoint {Path(init.path) / 'meta.json'}", \
        f"agent_config.{nested}encoder"


def resolve_observation(cfg: Any, init: Init, dataset: Any, spec: dict[str, Any]) -> str:
    """What the task agent reads, "image" or "state" (its encoder's ``kind``), checked against
    the labeled data and the task scene before any training: a state encoder needs their
    states, both of the encoder's width (a scratch run takes the data's width); goal-image task
    input needs images. TrainingError naming the field otherwise. The auxiliary data:
    ``check_aux_states``."""
    from goalrl.agents.observations import observation_kind

    encoder, where, field = encoder_of(cfg, init)
    if encoder.kind == "image":
        return "image"
    if cfg.method == "q" and init.agent_cfg.task_input == "goal_image":
        raise TrainingError(
            f"agent.task_input=goal_image reads the scene's goal image, but {where}: field "
            f"'{field}.kind' is 'state'; a state network is fine-tuned on the task given by its "
            "reward: agent.task_input=embedding"
        )
    check_states_fit(encoder, dataset, where, field, f"the labeled dataset {dataset.root}")
    observation = observation_kind(encoder, dataset)  # a scratch run: the data's state width
    if spec:
        check_states_fit(encoder, spec, where, field, f"task scene {cfg.task}")
    return observation


def check_aux_states(cfg: Any, init: Init, aux: Any) -> None:
    """The auxiliary (unlabeled) data has states of the encoder's width where it reads states."""
    encoder, where, field = encoder_of(cfg, init)
    check_states_fit(encoder, aux, where, field, f"the auxiliary data {aux.root}")


def init_weights(agent: Any, init: Init) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the agent expects, what the checkpoint gives) for ``load_init_weights``."""
    if hasattr(agent, "policy"):  # task behaviour cloning: the policy network and z_task
        policy = agent.policy.state_dict()
        expected = {"policy": policy, "policy_ema": policy, "z": agent.z.detach()}
    elif init.carried == "encoder":  # a policy's encoder into the task Q
        encoder = agent.q.encoder.state_dict()
        policy = init.state.get("policy_ema", init.state.get("policy"))
        if policy is None:
            raise CheckpointError(f"init checkpoint {init.path}: its agent state holds no "
                                  "'policy' network to take the encoder from")
        given = {k.removeprefix("encoder."): v for k, v in policy.items()
                 if k.startswith("encoder.")}
        return {"encoder": encoder}, {"encoder": given}
    else:
        q = agent.q.state_dict()
        expected = {"q": q, "q_ema": q, "z": agent.z.detach()}
    return expected, {key: init.state[key] for key in expected if key in init.state}


def load_init_weights(agent: Any, init: Init) -> None:
    """The init checkpoint's weights (its weight average where it kept one) and task
    embedding, each tensor checked against the agent's before it is loaded."""
    try:
        expected, used = init_weights(agent, init)
        check_state_fits(expected, used, "agent")
        if "encoder" in used:  # encoder only: online and target Q alike, heads left fresh
            agent.q.encoder.load_state_dict(used["encoder"])
            agent.q_target.encoder.load_state_dict(used["encoder"])
        else:
            agent.load_pretrained(used)
    except CheckpointError as err:
        raise CheckpointError(f"init checkpoint {init.path}: {err}") from err
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"init checkpoint {init.path}: cannot load its weights: {err!r}") \
            from err
