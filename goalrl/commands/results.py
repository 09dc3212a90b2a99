"""``goalrl results withdraw``: take rows found wrong out of a results store, with the reason
(goalrl.results.withdraw_rows keeps them in ``<name>.withdrawn.jsonl`` beside it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goalrl.errors import UserError


@dataclass
class WithdrawConfig:
    results: str = "???"  # the results store (JSON Lines) to take rows out of
    # which rows, as goalrl compare's filter: +where.method=am +where.goal_split='val|test'
    where: dict[str, str] = field(default_factory=dict)
    reason: str = ""  # why they are wrong, kept with each withdrawn row (required)
    dry_run: bool = False  # count the rows it would withdraw, change nothing


def withdraw(cfg: WithdrawConfig) -> dict[str, Any]:
    """Withdraw the rows ``cfg.where`` selects; UserError when no filter or reason is given,
    a field is in no row, or nothing matches (the store is then unchanged)."""
    from goalrl.compare import filter_rows, where_predicate
    from goalrl.results import read_rows, withdraw_rows, withdrawn_path

    store = Path(cfg.results)
    if not cfg.where:
        raise UserError("results withdraw: name the rows with +where.<field>=<value> (it does "
                        "not withdraw a whole store)")
    if not cfg.reason.strip():
        raise UserError("results withdraw: reason='<why these rows are wrong>' is required; "
                        "it is kept with every withdrawn row")
    matched = len(filter_rows(read_rows(store), cfg.where))
    if not matched:
        raise UserError(f"results store {store}: no row has {cfg.where}; nothing withdrawn")
    summary: dict[str, Any] = {"results": str(store), "where": dict(cfg.where),
                               "withdrawn_file": str(withdrawn_path(store))}
    if cfg.dry_run:
        return {**summary, "would_withdraw": matched}
    withdrawn, kept = withdraw_rows(store, where_predicate(cfg.where), cfg.reason)
    return {**summary, "withdrawn": withdrawn, "kept": kept}
