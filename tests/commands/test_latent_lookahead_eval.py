"""`goalrl dynamics ckpt=...` and the lookahead through it: an image GCIVL acts on its V through
a model of its own frame embedding; the model serves that checkpoint only, and what cannot be
modelled so is refused naming the field."""

from __future__ import annotations

import json

import pytest
import torch

from goalrl import cli
from goalrl.errors import UserError

TINY = ["agent.encoder.conv_channels=[8,8]", "agent.encoder.embed_dim=8",
        "agent.encoder.fusion_dim=16", "agent.head_hidden_dim=16", "steps=4", "batch_size=8",
        "save_every=4", "eval_episodes=0", "videos=0", "threads=1"]
MODEL = ["steps=30", "holdout=20", "members=2", "hidden=16"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(image dataset, two GCIVL runs of other seeds, latent model of the first, its report)."""
    root = tmp_path_factory.mktemp("latent")
    data = root / "reach"
    cli.run_command("collect", ["dataset=reach-play", "episodes=4", "image_size=16", "workers=1",
                                f"out={data}"])
    runs = [root / f"gcivl{seed}" for seed in (0, 1)]
    for seed, run in enumerate(runs):
        cli.run_command("pretrain", ["agent=gcivl", f"data={data}", f"out={run}", f"seed={seed}",
                                     *TINY])
    report = cli.run_command("dynamics", [f"data={data}", f"ckpt={runs[0]}",
                                          f"out={root / 'dyn'}", *MODEL])
    return data, runs, root / "dyn", report


def test_the_latent_model_predicts_the_checkpoints_embedding_and_records_it(tiny) -> None:
    from goalrl.agents.dynamics import load_dynamics
    from goalrl.agents.lookahead import LatentSpace
    from goalrl.reacher import load_checkpoint_agent

    _, runs, dyn, report = tiny
    model, meta = load_dynamics(dyn)
    agent, ckpt_meta = load_checkpoint_agent(str(runs[0]), torch.device("cpu"))
    space = LatentSpace(agent)
    assert meta["space"] == "latent" and meta["observation"] == "image"
    assert meta["embedding_digest"] == space.digest() and meta["checkpoint_step"] == 4
    assert model.state_dim == agent.value.encoder.obs_dim  # image and proprio embedding
    assert report["holdout_error"] >= 0 and report["holdout_error_if_still"] > 0


def test_an_image_agent_acts_by_lookahead_and_its_rows_name_the_latent_space(tiny, tmp_path
                                                                             ) -> None:
    _, runs, dyn, _ = tiny
    store = tmp_path / "store.jsonl"
    out = cli.run_command("eval", [f"ckpt={runs[0]}", "act_rule=model_lookahead",
                                   f"dynamics={dyn}", "goals=val", "episodes=1", "videos=0",
                                   f"out={tmp_path / 'e'}", f"results={store}",
                                   "+env_kwargs.max_episode_steps=3"])
    assert out["episodes"] == 6
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert {r["act_rule"] for r in rows} == {"model_lookahead_on_v"}
    assert {r["readout"]["space"] for r in rows} == {"latent"}


def test_a_latent_model_serves_only_its_own_checkpoint(tiny, tmp_path) -> None:
    from goalrl.commands.evaluate import EvalConfig, run

    _, runs, dyn, _ = tiny
    with pytest.raises(UserError, match="not of ckpt="):
        run(EvalConfig(ckpt=str(runs[1]), act_rule="model_lookahead", dynamics=str(dyn),
                       episodes=1, videos=0, out=str(tmp_path / "e"), device="cpu"))
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("case", ["gcbc", "other_images"])
def test_what_has_no_embedding_to_model_is_refused_naming_the_field(tiny, tmp_path, case
                                                                    ) -> None:
    data, runs, _, _ = tiny
    ckpt, match = runs[0], "ckpt reads"
    if case == "gcbc":
        ckpt = tmp_path / "gcbc"
        cli.run_command("pretrain", ["agent=gcbc", f"data={data}", f"out={ckpt}",
                                     *[t for t in TINY if "head_hidden" not in t]])
        match = "reads a value network with a frame embedding"
    else:  # the same scene at another image size
        data = tmp_path / "reach8"
        cli.run_command("collect", ["dataset=reach-play", "episodes=2", "image_size=8",
                                    "workers=1", f"out={data}"])
        match = r"images of \(8, 8, 3\); ckpt=.* reads \(16, 16, 3\)"
    from goalrl.commands.dynamics import DynamicsCommandConfig, run

    with pytest.raises(UserError, match=match):
        run(DynamicsCommandConfig(data=str(data), ckpt=str(ckpt), out=str(tmp_path / "m"),
                                  steps=30, holdout=20, members=2, hidden=16))
    assert not (tmp_path / "m").exists()
