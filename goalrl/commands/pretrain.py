"""``goalrl pretrain``: Actionable Models (or GCBC) on a dataset; see goalrl/training/."""

from __future__ import annotations

from typing import Any

from goalrl.training.pretrain import PretrainConfig, pretrain

__all__ = ["PretrainConfig", "pretrain", "register_configs"]


def register_configs() -> None:
    """The agent config group: agent=am | agent=gcbc, each over its dataclass schema."""
    from hydra.core.config_store import ConfigStore

    from goalrl.agents import AMConfig, GCBCConfig

    store = ConfigStore.instance()
    store.store(group="agent", name="am_schema", node=AMConfig)
    store.store(group="agent", name="gcbc_schema", node=GCBCConfig)


def run(cfg: Any) -> dict[str, Any]:
    return pretrain(cfg)
