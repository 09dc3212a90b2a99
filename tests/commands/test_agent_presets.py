"""The agent config group: every preset under configs/agent composes into its agent's schema."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from goalrl.agents import AMConfig, GCBCConfig
from goalrl.agents.registry import agent_kind
from goalrl.cli import CONFIG_DIR
from goalrl.commands.pretrain import PretrainConfig, register_configs


def pretrain_config(*overrides: str) -> PretrainConfig:
    ConfigStore.instance().store(name="pretrain_schema", node=PretrainConfig)
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose("pretrain", overrides=["data=d", "out=o", *overrides]))


@pytest.mark.parametrize(("preset", "schema", "fields"), [
    ("am", AMConfig, {"behaviour_prior": False, "act_rule": "cem"}),
    ("gcbc", GCBCConfig, {}),
    ("am_prior", AMConfig,
     {"behaviour_prior": True, "neg_source": "swap", "act_rule": "prior_mean"}),
])
def test_agent_presets_compose(preset: str, schema: type, fields: dict) -> None:
    agent = pretrain_config(f"agent={preset}").agent
    assert type(agent) is schema and agent_kind(agent) in {"am", "gcbc"}
    assert {k: getattr(agent, k) for k in fields} == fields
    # every other field is the schema's default, and overrides still apply on top
    defaults = schema()
    assert all(getattr(agent, k) == getattr(defaults, k)
               for k in schema.__dataclass_fields__ if k not in fields)
    tuned = pretrain_config(f"agent={preset}", "agent.lr=0.001").agent
    assert tuned.lr == 0.001
