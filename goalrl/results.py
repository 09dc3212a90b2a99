"""The results store: one JSON line per evaluation rollout, appended by ``goalrl eval
results=<file>`` and read by ``goalrl compare``.

A row names what acted (``method``: the agent and its ablation; ``act_rule``: what produced
the action, e.g. ``cem_on_q`` or ``prior_mean``, never a behaviour-cloning head under the
Q-function's name), on which data it was trained (dataset name and fingerprint, training
seed, checkpoint and step) and what it was asked (scene, goal split, task, env seed), then
the outcome (success, distances).

Appends are whole lines: each call takes an exclusive ``flock`` on the file, writes its rows
as one buffer to a descriptor opened with ``O_APPEND`` and syncs it, so two writers (two
evaluations at once) never lose or interleave rows. Readers take a shared lock, so they never
see a write in progress. A line cut short by a writer that died mid-write is the only line
that can be incomplete: it is dropped with a warning (by the next writer, which cuts it off,
or by a reader, when it is the last line).

Rows found wrong after the fact (a bug in what was measured) are withdrawn, not deleted:
``withdraw_rows`` moves them to ``<name>.withdrawn.jsonl`` beside the store with the reason,
and replaces the store by a copy without them (a temp file renamed over it, under the lock).
A writer that was waiting for the lock then finds the name pointing at a new file and
appends there (``lock_store``), so no row is lost to the replaced one.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from goalrl.errors import UserError

ROW_VERSION = 1  # the ``v`` of every row; bump when a field changes meaning

# what produced the action, by the agent's act rule (AMConfig.act_rule)
READOUT_BY_RULE = {"cem": "cem_on_q", "prior_mean": "prior_mean", "actor": "actor",
                   "model_lookahead": "model_lookahead_on_v"}
# the read-out of agents with no act rule: their policy head
READOUT_BY_KIND = {"gcbc": "policy_mean", "gcivl": "actor", "gciql": "actor", "crl": "actor",
                   "hiql": "hierarchical_actor", "qrl": "actor"}
# a rollout of no benchmark goal set (goalrl.benchmark): the scene drew its goal from the env
# seed, outside the val/test splits
DEFAULT_GOAL_SPLIT = "env_seed"
DEFAULT_TASK = "random"

# field -> accepted types; a row without one of these (or of another type) is malformed
REQUIRED_FIELDS: dict[str, tuple[type, ...]] = {
    "v": (int,),
    "method": (str,),
    "act_rule": (str,),
    "dataset": (str,),
    "train_seed": (int,),
    "step": (int,),
    "env": (str,),
    "goal_split": (str,),
    "task": (str,),
    "env_seed": (int,),
    "success": (bool,),
}


class ResultsError(UserError, ValueError):
    """A results store that cannot be read (malformed line, missing field)."""


# ---- rows from an evaluation ----------------------------------------------------------------
def method_name(meta: dict[str, Any]) -> str:
    """The checkpoint's agent kind, with AM's variants spelled out (``am_prior`` for a
    behaviour prior, ``am_no_chaining`` for an ablation); a fine-tuned checkpoint's own
    ``method`` (what acts and what it started from, e.g. ``task_q_from_scratch_aux``)."""
    if meta.get("method"):
        return str(meta["method"])
    kind = str(meta["agent"])
    config = meta.get("agent_config") or {}
    config = config.get("am", config)  # a task agent nests the AM config it acts by
    prior = ["prior"] if config.get("behaviour_prior") is True else []
    off = [name for name in ("chaining", "negatives") if config.get(name) is False]
    return "_".join([kind, *prior, *(f"no_{name}" for name in off)])


def readout_name(kind: str, act_rule: str | None) -> str:
    """What produced the action: the act rule's read-out, or the agent kind's policy head."""
    if kind == "am" and act_rule == "model_lookahead":  # scored by Q, AM has no V
        return "model_lookahead_on_q"
    if kind in READOUT_BY_KIND and act_rule in (None, "actor"):  # one policy: name it by kind
        return READOUT_BY_KIND[kind]
    if act_rule is not None:
        return READOUT_BY_RULE.get(act_rule, act_rule)  # an unknown rule keeps its own name
    return f"{kind}_policy"


def eval_rows(
    summary: dict[str, Any],
    meta: dict[str, Any],
    *,
    act_rule: str | None,
    env_kwargs: dict[str, Any] | None = None,
    goal_split: str | None = None,
    task: str | None = None,
    readout: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One store row per rollout of an evaluation ``summary`` (evaluate.summarize_rollouts)
    of the checkpoint described by ``meta``. A rollout row's own ``goal_split``/``task``
    (benchmark goals) win over the arguments, which win over ``env_seed``/``random``.
    ``readout``: what else the act rule acted with (a lookahead's model and candidates)."""
    train_config = meta.get("train_config") or {}
    dataset_path = meta.get("dataset") or ""
    common = {
        "v": ROW_VERSION,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": method_name(meta),
        "agent": meta["agent"],
        "act_rule": readout_name(meta["agent"], act_rule),
        "checkpoint": meta.get("path"),
        "step": int(meta["step"]),
        "phase": meta.get("phase"),
        "dataset": Path(dataset_path).name or "unknown",
        "dataset_path": dataset_path or None,
        "dataset_fingerprint": meta.get("dataset_fingerprint"),
        "train_seed": int(train_config.get("seed", 0)),
        "env": summary["env"],
        "env_kwargs": dict(env_kwargs or {}),
        **({"readout": readout} if readout else {}),
    }
    rows = []
    for rollout in summary["rollouts"]:
        outcome = {k: v for k, v in rollout.items() if k not in ("seed", "goal_split", "task")}
        rows.append({
            **common,
            "goal_split": rollout.get("goal_split") or goal_split or DEFAULT_GOAL_SPLIT,
            "task": rollout.get("task") or task or DEFAULT_TASK,
            "env_seed": int(rollout["seed"]),
            **outcome,
        })
    return rows


def append_eval_rows(path: str | Path, summary: dict[str, Any], meta: dict[str, Any],
                     **kwargs: Any) -> int:
    """Append ``eval_rows(summary, meta, **kwargs)`` to the store at ``path``; rows written."""
    rows = eval_rows(summary, meta, **kwargs)
    append_rows(path, rows)
    return len(rows)


# ---- the store ------------------------------------------------------------------------------
def append_rows(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append ``rows`` as JSON lines, all or none visible to a locked reader (see module doc)."""
    lines = [json.dumps(row, sort_keys=True, allow_nan=False) for row in rows]
    for i, line in enumerate(lines):
        if "\n" in line:  # json.dumps escapes newlines in strings; a guard, not a case
            raise ValueError(f"row {i} would span lines: {line[:80]}")
    if not lines:
        return
    data = ("\n".join(lines) + "\n").encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = lock_store(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)  # read: the tail check
    try:
        cut_torn_tail(fd, path)
        view = memoryview(data)
        while view:  # os.write may write less than asked (signals, full pipes): go on
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_store(path: Path, flags: int) -> int:
    """A descriptor of the file now at ``path``, exclusively locked (released when it closes).
    A withdrawal replaces the file while others wait for its lock: the one the name points to
    once the lock is ours is the store, so a descriptor of a replaced file is dropped."""
    while True:
        fd = os.open(path, flags, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)


def withdrawn_path(path: str | Path) -> Path:
    """Where ``withdraw_rows`` keeps the rows it takes out of the store at ``path``."""
    path = Path(path)
    return path.with_name(f"{path.name.removesuffix('.jsonl')}.withdrawn.jsonl")


def withdraw_rows(path: str | Path, select: Callable[[dict[str, Any]], bool],
                  reason: str) -> tuple[int, int]:
    """Move the rows ``select`` picks from the store at ``path`` to ``withdrawn_path(path)``,
    each with ``withdrawn: {reason, time}``; returns (withdrawn, kept). The withdrawn rows are
    synced there first, then the store is replaced by a copy without them: a crash between
    the two leaves them in both files, never in neither."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results store {path} does not exist")
    fd = lock_store(path, os.O_RDWR)
    try:
        cut_torn_tail(fd, path)
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        lines = [line for line in data.split(b"\n") if line.strip()]
        rows = [parse_row(line, path, number) for number, line in enumerate(lines, start=1)]
        keep = [line for line, row in zip(lines, rows, strict=True) if not select(row)]
        if len(keep) == len(lines):
            return 0, len(lines)
        from goalrl.data.storage.files import atomic_write

        stamp = {"reason": reason, "time": datetime.now(timezone.utc).isoformat()}
        append_rows(withdrawn_path(path),
                    [{**row, "withdrawn": stamp} for row in rows if select(row)])
        # replaced while the old file's lock is held: waiting writers retry on the new one
        atomic_write(path, b"".join(line + b"\n" for line in keep), durable=True)
    finally:
        os.close(fd)
    return len(lines) - len(keep), len(keep)


def cut_torn_tail(fd: int, path: Path) -> None:
    """Cut a last line without its newline (a writer died mid-write) off the locked file."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    # read back from the end to the last newline; a torn line is at most one write long
    end = size
    while end > 0:
        start = max(0, end - 65536)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    else:
        keep = 0
    warnings.warn(f"results store {path}: dropped an incomplete last line "
                  f"({size - keep} bytes, a writer stopped mid-write)", stacklevel=3)
    os.ftruncate(fd, keep)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every row of the store at ``path``; ResultsError naming the file and line of a bad one."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results store {path} does not exist (goalrl eval results={path} "
                           "writes it)")
    with open(path, "rb") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_SH)  # no half-written append is visible
        data = file.read()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as every complete append does
    if torn:
        warnings.warn(f"results store {path}: ignored an incomplete last line "
                      f"(line {len(lines) + 1}, {len(torn)} bytes)", stacklevel=2)
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            rows.append(parse_row(line, path, number))
    return rows


def parse_row(line: bytes, path: Path, number: int) -> dict[str, Any]:
    where = f"results store {path} line {number}"
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(f"{where}: not JSON ({err})") from err
    if not isinstance(row, dict):
        raise ResultsError(f"{where}: expected an object, got {type(row).__name__}")
    for field, types in REQUIRED_FIELDS.items():
        if field not in row:
            raise ResultsError(f"{where}: field {field!r} is missing")
        value = row[field]
        # bool is an int to isinstance: an int field must not be given true/false
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise ResultsError(f"{where}: field {field!r} is {value!r}, expected "
                               f"{' or '.join(t.__name__ for t in types)}")
    if row["v"] != ROW_VERSION:
        raise ResultsError(f"{where}: field 'v' is {row['v']}, this goalrl reads version "
                           f"{ROW_VERSION}")
    return row
