"""Build and load agents, and the adapters that make them act.

Inference (``goalrl eval``, ``goalrl command``, ``goalrl serve``, ``GoalReacher``) needs only
this module and ``goalrl.checkpoint``: it never imports the training package.

Agent kinds, as checkpoints name them in ``meta["agent"]``: ``am`` (Actionable Models),
``gcbc`` (the baseline) and ``task`` (a fine-tuned task Q, ``goalrl finetune``).
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.config import AgentConfigError
from goalrl.agents.crl import CRLAgent, CRLConfig
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig
from goalrl.agents.gciql import GCIQLAgent, GCIQLConfig
from goalrl.agents.gcivl import GCIVLAgent, GCIVLConfig
from goalrl.agents.hiql import HIQLAgent, HIQLConfig
from goalrl.agents.qrl import QRLAgent, QRLConfig
from goalrl.agents.task_bc import TaskBCAgent, TaskBCConfig
from goalrl.agents.task_q import TaskQAgent, TaskQConfig
from goalrl.checkpoint import CheckpointError, check_state_fits, load_checkpoint
from goalrl.errors import UserError

Agent = (AMAgent | GCBCAgent | TaskQAgent | GCIVLAgent | GCIQLAgent | CRLAgent | HIQLAgent
         | QRLAgent)

AGENT_CLASSES: dict[str, type] = {"am": AMAgent, "gcbc": GCBCAgent, "task": TaskQAgent,
                                  "gcivl": GCIVLAgent, "gciql": GCIQLAgent, "crl": CRLAgent,
                                  "hiql": HIQLAgent, "task_bc": TaskBCAgent, "qrl": QRLAgent}
CONFIG_CLASSES: dict[str, type] = {"am": AMConfig, "gcbc": GCBCConfig, "task": TaskQConfig,
                                   "gcivl": GCIVLConfig, "gciql": GCIQLConfig, "crl": CRLConfig,
                                   "hiql": HIQLConfig, "task_bc": TaskBCConfig, "qrl": QRLConfig}


def agent_kind(agent_cfg: Any) -> str:
    """The kind of agent a config builds (``am``, ``gcbc`` or ``task``)."""
    for kind, cls in CONFIG_CLASSES.items():
        if type(agent_cfg) is cls:  # exact: HIQLConfig is a GCIVLConfig, yet builds HIQL
            return kind
    raise UserError(f"unknown agent config {type(agent_cfg).__name__}; use agent="
                    f"{' or '.join(k for k in AGENT_CLASSES if k != 'task')}")


def build_agent(
    kind: str,
    agent_cfg: Any,
    image_shape: tuple[int, int, int],
    action_dim: int,
    proprio_dim: int | None,
    device: str | torch.device,
    *,
    seed: int = 0,
    amp: bool = False,
) -> Agent:
    """A fresh agent of ``kind``; ``amp``: bfloat16 autocast on CUDA (ignored on CPU), the one
    switch of a run, for every kind."""
    cls = AGENT_CLASSES[kind]
    check_agent_config(agent_cfg)
    return cls(agent_cfg, image_shape, action_dim, proprio_dim, device, seed=seed, amp=amp)


# Agent config fields (at any depth: agent.am.num_q_heads too) that count something and must be
# at least 1, and the CEM (elites, samples) pairs whose elites are drawn from the samples.
# A zero here ended in an IndexError or an empty tensor deep inside the first update.
COUNT_FIELDS = ("num_q_heads", "cem_iterations", "cem_samples", "cem_elites",
                "act_cem_iterations", "act_cem_samples", "act_cem_elites", "head_hidden_dim",
                "embed_dim", "proprio_embed_dim", "fusion_dim")
ELITES_OF = {"cem_elites": "cem_samples", "act_cem_elites": "act_cem_samples"}


def check_agent_config(agent_cfg: Any, prefix: str = "agent.") -> None:
    """AgentConfigError naming the first count field below 1 (or CEM elites above samples)."""
    if not is_dataclass(agent_cfg):
        return
    values = asdict(agent_cfg)
    for name, value in values.items():
        if isinstance(value, dict):
            check_agent_config(getattr(agent_cfg, name), f"{prefix}{name}.")
        elif name in COUNT_FIELDS and (isinstance(value, bool) or not isinstance(value, int)
                                       or value < 1):
            raise AgentConfigError(f"{prefix}{name}={value!r}: must be a whole number >= 1")
    for elites, samples in ELITES_OF.items():
        if elites in values and samples in values and values[elites] > values[samples]:
            raise AgentConfigError(
                f"{prefix}{elites}={values[elites]} is more than {prefix}{samples}="
                f"{values[samples]}: CEM keeps its elites among its samples"
            )
    if "conv_channels" in values and any(c < 1 for c in values["conv_channels"] or []):
        raise AgentConfigError(f"{prefix}conv_channels={values['conv_channels']}: every width "
                               "must be at least 1")


def config_from_dict(kind: str, values: dict[str, Any]) -> Any:
    """The agent config a checkpoint's ``agent_config`` describes (old layouts included)."""
    return CONFIG_CLASSES[kind].from_dict(values)


def checkpoint_amp(meta: dict[str, Any]) -> bool:
    """Whether a checkpoint's run trained under autocast: older checkpoints kept the switch in
    the agent config (set only on CUDA), newer ones in the run's config."""
    agent_cfg = meta.get("agent_config", {})
    for values in (agent_cfg, agent_cfg.get("am", {})):
        if "amp" in values:
            return bool(values["amp"])
    return bool(meta.get("train_config", {}).get("amp", False))


def load_agent(
    path: str | Path, device: str | torch.device = "cpu", amp: bool | None = None
) -> tuple[Agent, dict[str, Any]]:
    """Rebuild the agent a checkpoint was saved from (weights only; no training state needed).

    ``amp``: autocast while acting on CUDA; None acts as the checkpoint's run trained."""
    state, meta = load_checkpoint(path, map_location=str(device))
    check_agent_meta(meta)
    kind = meta["agent"]
    try:
        agent_cfg = config_from_dict(kind, meta["agent_config"])
        agent = build_agent(
            kind,
            agent_cfg,
            tuple(meta["image_shape"]),
            meta["action_dim"],
            meta.get("proprio_dim"),
            torch.device(device),
            seed=0,
            amp=checkpoint_amp(meta) if amp is None else amp,
        )
    except (UserError, ValueError, TypeError) as err:  # e.g. an option since removed
        raise CheckpointError(f"checkpoint {meta['path']}: {err}") from err
    if not isinstance(state, dict) or "agent" not in state:
        raise CheckpointError(f"checkpoint {meta['path']}: state.json holds no 'agent' state")
    load_agent_state(agent, state["agent"], meta["path"])
    return agent, meta


def check_agent_meta(meta: dict[str, Any]) -> None:
    """CheckpointError naming the meta.json field an agent cannot be rebuilt from."""
    where = f"checkpoint {Path(meta['path']) / 'meta.json'}"

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    fields = {
        "agent": (lambda v: v in AGENT_CLASSES, f"one of {', '.join(AGENT_CLASSES)}"),
        "agent_config": (lambda v: isinstance(v, dict), "a mapping"),
        "image_shape": (lambda v: isinstance(v, list) and len(v) == 3 and all(map(count, v)),
                        "[height, width, channels]"),
        "action_dim": (count, "a whole number >= 1"),
        "proprio_dim": (lambda v: v is None or count(v), "null or a whole number >= 1"),
    }
    for name, (holds, rule) in fields.items():
        value = meta.get(name)
        if (name != "proprio_dim" and name not in meta) or not holds(value):
            raise CheckpointError(f"{where}: field {name!r} is {value!r}; it must be {rule}")


def expected_state(agent: Any) -> dict[str, Any]:
    """The agent's live state with each optimiser in place of its state dict, for
    ``check_state_fits`` (optimiser moments are checked against their parameters)."""
    state = agent.state_dict()
    for name, value in vars(agent).items():
        if isinstance(value, torch.optim.Optimizer) and name in state:
            state[name] = value
    return state


def load_agent_state(agent: Any, state: Any, where: str | Path) -> None:
    """Load a checkpoint's agent state after checking every tensor in it (weights and optimiser
    moments) against the agent's own: CheckpointError naming the first that does not fit."""
    try:
        check_state_fits(expected_state(agent), state, "agent")
        agent.load_state_dict(state)
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {where}: {err}") from err
    except (KeyError, RuntimeError, ValueError, TypeError) as err:  # a part the agent needs
        raise CheckpointError(f"checkpoint {where}: cannot load the agent state: {err!r}") from err


def agent_policy(agent: Agent):
    """evaluate.Policy over an agent: greedy action and (for Q agents) its Q-value."""

    def policy(obs_image: np.ndarray, goal_image: np.ndarray, proprio: np.ndarray):
        # CEM scored the action already: no second pass. A task agent reads the goal
        # image only with agent.task_input=goal_image.
        if isinstance(agent, (AMAgent, TaskQAgent)):
            action, q = agent.act(obs_image, goal_image, proprio, return_q=True)
            return action, float(q)
        return agent.act(obs_image, goal_image, proprio), None

    return policy


def override_act_rule(agent: Agent, rule: str) -> None:
    """Make an AM or task agent act by ``rule`` (AMConfig.act_rule)."""
    am = agent.goal_agent if isinstance(agent, TaskQAgent) else agent
    if not isinstance(am, AMAgent):
        raise ValueError(f"act_rule={rule}: a {type(agent).__name__} acts with its policy's "
                         "mean; only Q checkpoints (AM, fine-tuned) choose how to act")
    am.set_act_rule(rule)
