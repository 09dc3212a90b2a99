"""``goalrl pretrain``: Actionable Models (or GCBC) on a dataset; see goalrl/training/."""

from __future__ import annotations

from typing import Any

from goalrl.training.pretrain import PretrainConfig, pretrain

__all__ = ["PretrainConfig", "pretrain", "register_configs"]


def register_configs() -> None:
    """The agent config group: agent=am | gcbc | gcivl | gciql | crl | hiql | qrl, each over its
    dataclass schema."""
    from hydra.core.config_store import ConfigStore

    from goalrl.agents import AMConfig, GCBCConfig
    from goalrl.agents.crl import CRLConfig
    from goalrl.agents.gciql import GCIQLConfig
    from goalrl.agents.gcivl import GCIVLConfig
    from goalrl.agents.hiql import HIQLConfig
    from goalrl.agents.qrl import QRLConfig

    store = ConfigStore.instance()
    store.store(group="agent", name="am_schema", node=AMConfig)
    store.store(group="agent", name="gcbc_schema", node=GCBCConfig)
    store.store(group="agent", name="gcivl_schema", node=GCIVLConfig)
    store.store(group="agent", name="gciql_schema", node=GCIQLConfig)
    store.store(group="agent", name="crl_schema", node=CRLConfig)
    store.store(group="agent", name="hiql_schema", node=HIQLConfig)
    store.store(group="agent", name="qrl_schema", node=QRLConfig)


def run(cfg: Any) -> dict[str, Any]:
    return pretrain(cfg)
