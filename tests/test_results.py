"""The results store: rows from an evaluation, appends that survive concurrent writers and
torn lines, and clear errors for a damaged store."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from goalrl.results import (
    ResultsError,
    append_rows,
    eval_rows,
    method_name,
    read_rows,
    readout_name,
    withdraw_rows,
    withdrawn_path,
)


def store_row(**fields) -> dict:
    row = dict(v=1, method="am", act_rule="cem_on_q", dataset="play", train_seed=0, step=100,
               env="goalrl/Reach-v0", goal_split="test", task="task1", env_seed=1_000_000,
               success=True)
    return {**row, **fields}


def fake_meta(kind: str = "am", **agent_config) -> dict:
    return {
        "agent": kind, "agent_config": {"chaining": True, "negatives": True, **agent_config},
        "train_config": {"seed": 3}, "step": 5000, "phase": "pretrain",
        "path": "/runs/x/checkpoints/step_0005000", "dataset": "/data/push_noisy",
        "dataset_fingerprint": "abc123",
    }


def fake_summary(n: int = 2) -> dict:
    rollouts = [{"seed": 1_000_000 + i, "success": i % 2 == 0, "start_distance": 0.3,
                 "final_distance": 0.01 * i, "min_distance": 0.0, "first_success_step": None,
                 "final_arm_distance": None, "objects_off_table": 0, "steps": 50}
                for i in range(n)]
    return {"env": "goalrl/Push-v0", "rollouts": rollouts}


# ---- rows from an evaluation ------------------------------------------------------------------
def test_eval_rows_name_what_acted_and_what_it_was_trained_on() -> None:
    rows = eval_rows(fake_summary(3), fake_meta(chaining=False), act_rule="prior_mean",
                     env_kwargs={"max_episode_steps": 50})
    assert len(rows) == 3
    row = rows[1]
    assert row["method"] == "am_no_chaining"
    assert row["act_rule"] == "prior_mean"  # the prior's mean, never called the Q's policy
    assert (row["train_seed"], row["step"], row["dataset"]) == (3, 5000, "push_noisy")
    assert row["dataset_fingerprint"] == "abc123"
    assert row["checkpoint"] == "/runs/x/checkpoints/step_0005000"
    assert (row["env"], row["env_seed"], row["success"]) == ("goalrl/Push-v0", 1_000_001, False)
    assert (row["goal_split"], row["task"]) == ("env_seed", "random")
    assert row["env_kwargs"] == {"max_episode_steps": 50}
    assert row["final_distance"] == pytest.approx(0.01) and row["min_distance"] == 0.0


def test_a_rollout_names_its_own_task_and_split() -> None:
    summary = fake_summary(2)
    summary["rollouts"][0].update(task="task3", goal_split="validation")
    rows = eval_rows(summary, fake_meta(), act_rule="cem", goal_split="test")
    assert [(r["task"], r["goal_split"]) for r in rows] == [("task3", "validation"),
                                                             ("random", "test")]


@pytest.mark.parametrize(("kind", "rule", "name"), [
    ("am", "cem", "cem_on_q"), ("am", "prior_mean", "prior_mean"), ("am", "actor", "actor"),
    ("task_q", "cem", "cem_on_q"), ("gcbc", None, "policy_mean"), ("gciql", None, "actor"),
    ("am", "some_new_rule", "some_new_rule"), ("hiql", "actor", "hierarchical_actor"),
    ("hiql", None, "hierarchical_actor"),
])
def test_the_read_out_is_named_by_what_produced_the_action(kind, rule, name) -> None:
    assert readout_name(kind, rule) == name


def test_method_names_spell_out_am_ablations() -> None:
    assert method_name(fake_meta()) == "am"
    assert method_name(fake_meta(chaining=False, negatives=False)) == "am_no_chaining_no_negatives"
    task = {"agent": "task_q", "agent_config": {"am": {"chaining": True, "negatives": False}}}
    assert method_name(task) == "task_q_no_negatives"
    assert method_name({"agent": "gcbc", "agent_config": {}}) == "gcbc"
    # fine-tuned checkpoints name what acts and what it started from
    assert method_name({**task, "method": "task_q_from_scratch_aux"}) == "task_q_from_scratch_aux"


def test_goalrl_eval_appends_one_row_per_rollout(tmp_path: Path,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    from tiny_reacher import ENV, tiny_checkpoint

    from goalrl.commands.evaluate import EvalConfig, run

    store = tmp_path / "results.jsonl"
    for _ in range(2):  # a second evaluation appends; it does not replace
        summary = run(EvalConfig(ckpt=str(tiny_checkpoint(tmp_path_factory)), episodes=2,
                                 videos=0, out=str(tmp_path / "eval"), device="cpu",
                                 results=str(store)))
    assert summary["results"] == {"path": str(store), "rows": 2}
    rows = read_rows(store)
    assert len(rows) == 4
    assert [r["env_seed"] for r in rows] == [1_000_000, 1_000_001] * 2
    assert [r["success"] for r in rows[:2]] == [r["success"] for r in summary["rollouts"]]
    assert {(r["method"], r["act_rule"], r["env"], r["train_seed"], r["step"], r["dataset"])
            for r in rows} == {("am", "cem_on_q", ENV, 0, 4, "data")}


# ---- the store --------------------------------------------------------------------------------
def test_rows_appended_are_read_back(tmp_path: Path) -> None:
    store = tmp_path / "sub" / "results.jsonl"
    first = [store_row(env_seed=1_000_000 + i) for i in range(3)]
    append_rows(store, first)
    append_rows(store, [])
    append_rows(store, [store_row(method="gcbc", act_rule="policy_mean")])
    rows = read_rows(store)
    assert rows == [*first, store_row(method="gcbc", act_rule="policy_mean")]
    assert store.read_bytes().endswith(b"\n")


def append_many(store: str, writer: int, batches: int) -> None:
    pad = "x" * 20_000  # long lines: a write split between writers would show
    for batch in range(batches):
        append_rows(store, [store_row(method=f"w{writer}", step=batch, env_seed=i, pad=pad)
                            for i in range(3)])


def test_two_concurrent_writers_lose_and_tear_no_rows(tmp_path: Path) -> None:
    store = str(tmp_path / "results.jsonl")
    batches = 40
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=append_many, args=(store, w, batches)) for w in range(2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    rows = read_rows(store)  # a torn or interleaved line would fail to parse here
    assert len(rows) == 2 * batches * 3
    for writer in range(2):
        mine = [(r["step"], r["env_seed"]) for r in rows if r["method"] == f"w{writer}"]
        assert mine == [(b, i) for b in range(batches) for i in range(3)]  # each batch whole


def test_a_torn_last_line_is_ignored_by_readers_and_cut_by_the_next_writer(
        tmp_path: Path) -> None:
    store = tmp_path / "results.jsonl"
    append_rows(store, [store_row()])
    with open(store, "ab") as file:  # a writer that died mid-row
        file.write(json.dumps(store_row(env_seed=7)).encode()[:30])
    with pytest.warns(UserWarning, match="incomplete last line"):
        assert read_rows(store) == [store_row()]
    with pytest.warns(UserWarning, match="dropped an incomplete last line"):
        append_rows(store, [store_row(env_seed=8)])
    assert read_rows(store) == [store_row(), store_row(env_seed=8)]


def test_a_malformed_line_is_an_error_naming_the_file_and_line(tmp_path: Path) -> None:
    store = tmp_path / "results.jsonl"
    append_rows(store, [store_row()])
    with open(store, "a") as file:
        file.write('{"v": 1, "method": "am",\n')
    append_rows(store, [store_row()])
    with pytest.raises(ResultsError, match=rf"{store} line 2: not JSON"):
        read_rows(store)


@pytest.mark.parametrize(("line", "message"), [
    ("[1, 2]", "line 1: expected an object, got list"),
    (json.dumps({k: v for k, v in store_row().items() if k != "train_seed"}),
     "line 1: field 'train_seed' is missing"),
    (json.dumps(store_row(success=1)), "line 1: field 'success' is 1, expected bool"),
    (json.dumps(store_row(step=True)), "line 1: field 'step' is True, expected int"),
    (json.dumps(store_row(v=2)), "line 1: field 'v' is 2"),
])
def test_a_row_without_its_fields_is_an_error_naming_the_field(tmp_path: Path, line: str,
                                                                 message: str) -> None:
    store = tmp_path / "results.jsonl"
    store.write_text(line + "\n")
    with pytest.raises(ResultsError, match=message):
        read_rows(store)


def test_a_missing_store_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="does not exist.*goalrl eval results="):
        read_rows(tmp_path / "nothing.jsonl")


def test_am_with_a_behaviour_prior_is_its_own_method() -> None:
    assert method_name(fake_meta(behaviour_prior=True)) == "am_prior"
    assert method_name(fake_meta(behaviour_prior=True, chaining=False)) == "am_prior_no_chaining"


# ---- withdrawal ---------------------------------------------------------------------------------
def test_withdrawn_rows_move_to_their_file_with_the_reason(tmp_path: Path) -> None:
    store = tmp_path / "results.jsonl"
    append_rows(store, [store_row(method=m, env_seed=i) for m in ("am", "gcbc") for i in range(3)])
    before = store.read_bytes().splitlines()
    assert withdraw_rows(store, lambda r: r["method"] == "am", "blind states") == (3, 3)
    # the kept rows byte for byte, the withdrawn ones beside the store with the reason
    assert store.read_bytes().splitlines() == [line for line in before if b'"gcbc"' in line]
    gone = read_rows(withdrawn_path(store))
    assert [(r["method"], r["env_seed"]) for r in gone] == [("am", 0), ("am", 1), ("am", 2)]
    assert {r["withdrawn"]["reason"] for r in gone} == {"blind states"}
    assert withdraw_rows(store, lambda r: r["method"] == "am", "again") == (0, 3)  # no-op


def test_a_writer_waiting_during_a_withdrawal_appends_to_the_new_store(tmp_path: Path) -> None:
    import fcntl
    import os
    import threading

    store = tmp_path / "results.jsonl"
    append_rows(store, [store_row(method="am"), store_row(method="gcbc")])
    held = os.open(store, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # stand in for a withdrawal holding the old file's lock
    writer = threading.Thread(target=append_rows, args=(store, [store_row(method="crl")]))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive()  # waiting for the lock
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(store.read_bytes().splitlines(keepends=True)[1])  # gcbc only
    os.replace(replacement, store)
    os.close(held)
    writer.join(5)
    assert [r["method"] for r in read_rows(store)] == ["gcbc", "crl"]


def test_the_withdraw_command_names_what_is_missing_and_changes_nothing_then(
        tmp_path: Path) -> None:
    from goalrl.commands.results import WithdrawConfig, withdraw
    from goalrl.compare import CompareError
    from goalrl.errors import UserError

    store = tmp_path / "results.jsonl"
    append_rows(store, [store_row(method="am"), store_row(method="gcbc")])
    before = store.read_bytes()
    cases = [({}, "why", r"\+where"), ({"method": "am"}, " ", "reason="),
             ({"methd": "am"}, "why", "field 'methd' is in no row"),
             ({"method": "crl"}, "why", "no row has")]
    for where, reason, message in cases:
        with pytest.raises((UserError, CompareError), match=message):
            withdraw(WithdrawConfig(results=str(store), where=where, reason=reason))
    dry = withdraw(WithdrawConfig(results=str(store), where={"method": "am|gcbc"},
                                  reason="why", dry_run=True))
    assert dry["would_withdraw"] == 2 and store.read_bytes() == before
    done = withdraw(WithdrawConfig(results=str(store), where={"method": "am"}, reason="why"))
    assert (done["withdrawn"], done["kept"]) == (1, 1)
    assert withdrawn_path(store).name == "results.withdrawn.jsonl"
