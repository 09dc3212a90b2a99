"""`goalrl dynamics` and `goalrl eval act_rule=model_lookahead`: a state GCIVL checkpoint acts
through a learned one-step model; rows name the read-out and its model; what cannot act so
is refused naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from goalrl import cli
from goalrl.agents.lookahead import SPREAD
from goalrl.errors import UserError

TINY = ["agent.encoder.kind=state", "agent.encoder.state_hidden=[16]", "agent.encoder.embed_dim=8",
        "agent.encoder.fusion_dim=16", "steps=4", "batch_size=8", "save_every=4",
        "eval_episodes=0", "videos=0", "threads=1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(state dataset, GCIVL run, GCBC run, dynamics folder) on 4 Reach play episodes."""
    root = tmp_path_factory.mktemp("lookahead")
    data = root / "reach-state"
    cli.run_command("collect", ["dataset=reach-play", "episodes=4", "image_size=8", "workers=1",
                                f"out={data}"])
    runs = {}
    for agent in ("gcivl", "gcbc"):
        runs[agent] = root / agent
        heads = ["agent.head_hidden_dim=16"] if agent == "gcivl" else []
        cli.run_command("pretrain", [f"agent={agent}", f"data={data}", f"out={runs[agent]}",
                                     *TINY, *heads])
    report = cli.run_command("dynamics", [f"data={data}", f"out={root / 'dyn'}", "steps=30",
                                          "holdout=20", "members=2", "hidden=16"])
    return data, runs["gcivl"], runs["gcbc"], root / "dyn", report


def test_dynamics_writes_a_model_that_loads_and_predicts_the_same(tiny) -> None:
    from goalrl.agents.dynamics import load_dynamics

    data, _, _, dyn, report = tiny
    model, meta = load_dynamics(dyn)
    assert meta["config"]["members"] == 2 and meta["steps"] == 30
    assert meta["dataset"] == str(data.resolve()) and len(meta["dataset_fingerprint"]) == 16
    assert report["holdout_error"] == pytest.approx(meta["holdout_error"])
    again, _ = load_dynamics(dyn)
    s, a = torch.randn(3, model.state_dim), torch.rand(3, model.action_dim)
    assert torch.equal(model.predict(s, a), again.predict(s, a))
    assert model.predict(s, a).shape == (2, 3, model.state_dim)


def test_eval_acts_by_lookahead_and_its_rows_name_the_readout_and_model(tiny, tmp_path) -> None:
    _, gcivl, _, dyn, _ = tiny
    store = tmp_path / "store.jsonl"
    out = cli.run_command("eval", [f"ckpt={gcivl}", "act_rule=model_lookahead", f"dynamics={dyn}",
                                   "goals=val", "episodes=1", "videos=0", f"out={tmp_path / 'e'}",
                                   f"results={store}", "+env_kwargs.max_episode_steps=3"])
    assert out["act_rule"] == "model_lookahead" and out["episodes"] == 6
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert {r["act_rule"] for r in rows} == {"model_lookahead_on_v"}
    assert {r["readout"]["dynamics"] for r in rows} == {str(dyn.resolve())}
    assert {r["readout"]["candidates"] for r in rows} == {16}
    assert {r["readout"]["spread"] for r in rows} == {SPREAD}


def test_am_looks_ahead_on_its_q_at_its_actors_action_and_its_rows_say_so(tiny, tmp_path
                                                                          ) -> None:
    data, _, _, dyn, _ = tiny
    run_dir = tmp_path / "am"
    cli.run_command("pretrain", ["agent=am", f"data={data}", f"out={run_dir}", *TINY,
                                 "agent.head_hidden_dim=16", "agent.actor=true"])
    store = tmp_path / "store.jsonl"
    cli.run_command("eval", [f"ckpt={run_dir}", "act_rule=model_lookahead", f"dynamics={dyn}",
                             "goals=val", "episodes=1", "videos=0", f"out={tmp_path / 'e'}",
                             f"results={store}", "+env_kwargs.max_episode_steps=3"])
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(rows) == 6 and {r["act_rule"] for r in rows} == {"model_lookahead_on_q"}


@pytest.mark.parametrize("case", ["no_model", "missing_model", "gcbc", "mismatch", "ogbench"])
def test_what_cannot_act_by_lookahead_is_refused_naming_the_field(tiny, tmp_path, case) -> None:
    from goalrl.agents.dynamics import DynamicsConfig, DynamicsEnsemble, save_dynamics
    from goalrl.commands.evaluate import EvalConfig, run

    _, gcivl, gcbc, dyn, _ = tiny
    ckpt, model, match, env = gcivl, str(dyn), "", None
    if case == "no_model":
        model, match = None, "needs dynamics=<folder>"
    elif case == "missing_model":
        model, match = str(tmp_path / "nowhere"), "no dynamics model there"
    elif case == "gcbc":
        ckpt, match = gcbc, "needs a state agent with a value V"
    elif case == "ogbench":
        env, match = "ogbench:cube-single-play-v0", "env=ogbench:cube-single-play-v0 is OGBench"
    else:  # a model of another scene's state width
        other = save_dynamics(DynamicsEnsemble(5, 4, DynamicsConfig(members=1, hidden=4)),
                              tmp_path / "other", {})
        model, match = str(other), "the model maps 5 state values"
    with pytest.raises(UserError, match=match):
        run(EvalConfig(ckpt=str(ckpt), act_rule="model_lookahead", dynamics=model, episodes=1,
                       videos=0, out=str(tmp_path / "e"), device="cpu", env=env))
    assert not (tmp_path / "e").exists()  # refused before anything was written


def test_dynamics_refuses_a_dataset_too_small_for_its_holdout(tiny, tmp_path) -> None:
    from goalrl.commands.dynamics import DynamicsCommandConfig, run

    with pytest.raises(UserError, match="not more than holdout=100000"):
        run(DynamicsCommandConfig(data=str(tiny[0]), out=str(tmp_path / "m"), holdout=100000))
    assert not (tmp_path / "m").exists()


def test_a_damaged_model_folder_is_one_clear_error(tiny, tmp_path) -> None:
    import shutil

    from goalrl.agents.dynamics import load_dynamics

    broken = tmp_path / "broken"
    shutil.copytree(tiny[3], broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(UserError, match="cannot load model.safetensors"):
        load_dynamics(broken)
    (broken / "meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="not a goalrl dynamics model"):
        load_dynamics(broken)
    assert np.isfinite(tiny[4]["holdout_error"])
