"""Pretraining through the shared loop: end to end, resume, refusal of bad data, NaN stop,
torchrun, progress lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from goalrl.agents import AMAgent, AMConfig, EncoderConfig, GCBCConfig
from goalrl.agents.registry import load_agent
from goalrl.checkpoint import load_checkpoint
from goalrl.commands.collect import CollectConfig, collect
from goalrl.data.storage import DatasetWriter, EpisodeData
from goalrl.training import PretrainConfig, TrainingError, pretrain
from goalrl.training.checks import changed_settings

TINY_ENCODER = EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32)
TINY = dict(encoder=TINY_ENCODER, head_hidden_dim=16)


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "reach"
    collect(
        CollectConfig(env="goalrl/Reach-v0", episodes=3, out=str(out), image_size=16, sheet=False)
    )
    return out


def config(data: Path, out: Path, **kw) -> PretrainConfig:
    defaults = dict(
        data=str(data),
        out=str(out),
        agent=AMConfig(**TINY),
        steps=6,
        batch_size=16,
        eval_episodes=0,
        videos=0,
        save_every=3,
        log_every=2,
        prefetch=2,
    )
    defaults.update(kw)
    return PretrainConfig(**defaults)


def scalar_tags(event_file: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_file))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_pretrain_writes_checkpoints_tensorboard_and_evaluates(reach_data, tmp_path) -> None:
    summary = pretrain(
        config(reach_data, tmp_path / "run", eval_episodes=1, videos=1, eval_every=3)
    )
    assert summary["steps"] == 6
    assert summary["device"].startswith("cpu (")  # what trained it; a GPU's model name on cuda
    # one point per eval_every, the final evaluation not repeated
    assert [p["step"] for p in summary["eval_curve"]] == [3, 6]
    assert summary["eval_curve"][-1]["success_rate"] == summary["eval"]["success_rate"]
    assert (tmp_path / "run" / "checkpoints" / "step_0000006").is_dir()
    events = list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    assert events
    assert {"eval/success_rate", "eval/mean_final_distance", "eval/mean_final_arm_distance"} <= (
        scalar_tags(events[0])
    )
    assert summary["eval_curve"][0]["mean_final_arm_distance"] >= 0.0
    assert summary["eval"]["episodes"] == 1 and summary["eval"]["seeds"] == [1_000_000, 1_000_000]
    assert Path(summary["eval"]["videos"][0]).stat().st_size > 0
    agent, meta = load_agent(tmp_path / "run")
    assert meta["image_shape"] == [16, 16, 3] and meta["env_id"] == "goalrl/Reach-v0"
    assert len(meta["dataset_fingerprint"]) > 0 and meta["parent"] is None


def test_gcbc_baseline_runs_on_the_same_data(reach_data, tmp_path) -> None:
    summary = pretrain(
        config(
            reach_data,
            tmp_path / "gcbc",
            agent=GCBCConfig(encoder=TINY_ENCODER),
            device="cpu",
            amp=True,  # the run's one switch reaches GCBC too (ignored on CPU)
        )
    )
    assert summary["agent"] == "gcbc" and summary["steps"] == 6
    agent, meta = load_agent(tmp_path / "gcbc")
    assert "amp" not in meta["agent_config"] and meta["train_config"]["amp"] is True
    assert agent.amp is True  # acts as its run trained


def test_progress_lines_on_stderr_without_a_terminal(reach_data, tmp_path, capsys) -> None:
    # pytest's captured stderr is no terminal: plain lines instead of a bar
    pretrain(config(reach_data, tmp_path / "run", steps=4, log_every=2, progress_every=0))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("pretrain am: ")]
    assert len(lines) == 5  # after each update (cadence 0 s), and once more at the end
    assert lines[0].startswith("pretrain am: step 1/4 (25%), ") and "updates/s, ETA " in lines[0]
    assert ", loss " in lines[1]  # read at update 2, a log_every update
    assert lines[-1].startswith("pretrain am: step 4/4 (100%), ") and ", done in " in lines[-1]


def weights(run: Path) -> dict[str, torch.Tensor]:
    agent, _ = load_agent(run)
    return {k: v.clone() for k, v in agent.q.state_dict().items()}


def test_behaviour_prior_run_evaluates_with_every_act_rule(reach_data, tmp_path) -> None:
    from goalrl.commands.evaluate import EvalConfig
    from goalrl.commands.evaluate import run as evaluate_run

    agent = AMConfig(**TINY, behaviour_prior=True, act_rule="prior_mean")
    summary = pretrain(config(reach_data, tmp_path / "run", agent=agent))
    events = next(Path(summary["tensorboard"]).glob("events.*"))
    assert {"prior/nll", "prior/mse", "prior/std"} <= scalar_tags(events)
    results = {
        rule: evaluate_run(EvalConfig(
            ckpt=str(tmp_path / "run"), episodes=1, videos=0, out=str(tmp_path / rule),
            device="cpu", act_rule=rule))
        for rule in ("cem", "prior_mean")
    }
    assert {r["act_rule"] for r in results.values()} == {"cem", "prior_mean"}
    # without act_rule, the checkpoint acts as it was trained to
    trained = evaluate_run(EvalConfig(ckpt=str(tmp_path / "run"), episodes=1, videos=0,
                                      out=str(tmp_path / "t"), device="cpu"))
    assert trained["act_rule"] == "prior_mean"
    # scene options reach gym.make and are recorded beside the rollouts they shaped
    short = evaluate_run(EvalConfig(ckpt=str(tmp_path / "run"), episodes=2, videos=0,
                                    out=str(tmp_path / "short"), device="cpu",
                                    env_kwargs={"max_episode_steps": 3}))
    assert short["env_kwargs"] == {"max_episode_steps": 3}
    assert [r["steps"] for r in short["rollouts"]] == [3, 3]
    assert all(r["start_distance"] > 0 for r in short["rollouts"])
    gcbc = pretrain(config(reach_data, tmp_path / "gcbc", agent=GCBCConfig(encoder=TINY_ENCODER)))
    with pytest.raises(ValueError, match="act_rule=cem: a GCBCAgent"):
        evaluate_run(EvalConfig(ckpt=str(tmp_path / "gcbc"), episodes=1, videos=0,
                                out=str(tmp_path / "e"), device="cpu", act_rule="cem"))
    assert gcbc["steps"] == 6


def test_resume_reproduces_the_uninterrupted_run(reach_data, tmp_path) -> None:
    pretrain(config(reach_data, tmp_path / "full", steps=6))
    # resume=true with nothing to resume starts fresh (a requeued SLURM job's first run)
    pretrain(config(reach_data, tmp_path / "split", steps=3, resume=True))
    pretrain(config(reach_data, tmp_path / "split", steps=6, resume=True))
    full, split = weights(tmp_path / "full"), weights(tmp_path / "split")
    for k in full:
        torch.testing.assert_close(full[k], split[k], rtol=0, atol=0, msg=k)


def test_resume_applies_and_names_changed_agent_settings(reach_data, tmp_path) -> None:
    pretrain(config(reach_data, tmp_path / "run", steps=3))
    with pytest.warns(UserWarning, match=r"lr: 0.0003 -> 0.0001"):
        pretrain(config(reach_data, tmp_path / "run", steps=6, resume=True,
                        agent=AMConfig(**TINY, lr=1e-4)))
    state, _ = load_checkpoint(tmp_path / "run")
    assert [g["lr"] for g in state["agent"]["optimizer"]["param_groups"]] == [1e-4]
    assert changed_settings({"lr": 3e-4, "tau": 0.02}, {"lr": 3e-4, "tau": 0.02}) == []
    # nested settings by dotted name
    assert changed_settings({"encoder": {"embed_dim": 16}}, {"encoder": {"embed_dim": 32}}) == [
        "encoder.embed_dim: 16 -> 32"]


def test_existing_run_is_not_overwritten_without_resume(reach_data, tmp_path) -> None:
    pretrain(config(reach_data, tmp_path / "run", steps=3))
    with pytest.raises(TrainingError, match="resume=true"):
        pretrain(config(reach_data, tmp_path / "run", steps=6))


def test_dataset_with_wrong_action_size_is_refused(tmp_path) -> None:
    rng = np.random.default_rng(0)
    with DatasetWriter(
        tmp_path / "bad", image_shape=(16, 16, 3), action_dim=3, env_id="goalrl/Reach-v0"
    ) as w:
        for _ in range(2):
            w.append(
                EpisodeData(
                    images=rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8),
                    actions=rng.uniform(-1, 1, (4, 3)).astype(np.float32),
                )
            )
    with pytest.raises(TrainingError, match="3-d actions but env goalrl/Reach-v0 takes 4-d"):
        pretrain(config(tmp_path / "bad", tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_imported_logs_of_another_robot_train_without_evaluating(tmp_path) -> None:
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "lift", image_shape=(16, 16, 3), action_dim=7,
                       env_id="Lift") as w:  # as the robomimic importer records it
        for _ in range(2):
            w.append(EpisodeData(images=rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8),
                                 actions=rng.uniform(-1, 1, (4, 7)).astype(np.float32)))
    with pytest.raises(TrainingError, match="Lift .* is not a goalrl scene.*eval_episodes=0"):
        pretrain(config(tmp_path / "lift", tmp_path / "run", eval_episodes=1))
    assert not (tmp_path / "run" / "checkpoints").exists()
    summary = pretrain(config(tmp_path / "lift", tmp_path / "run", steps=2))
    assert summary["steps"] == 2 and "eval" not in summary


@pytest.mark.parametrize(
    ("bad_loss", "only_once", "reported"),
    [(float("nan"), False, "nan"), (-1e9, True, "1000000000.0")],  # persists; spikes, recovers
)
def test_bad_loss_stops_and_keeps_the_last_good_checkpoint(
    reach_data, tmp_path, monkeypatch, bad_loss, only_once, reported
) -> None:
    real_update = AMAgent.update

    def update(self, batch):
        stats = dict(real_update(self, batch))
        if self.step == 5 or (self.step > 5 and not only_once):
            stats["critic/loss"] = bad_loss
        return stats

    monkeypatch.setattr(AMAgent, "update", update)
    # log_every=2, save_every=3: update 5's loss is checked at update 6, before its save, even
    # when update 6's own loss is fine again
    with pytest.raises(TrainingError, match=f"loss became {reported} by update 6"):
        pretrain(config(reach_data, tmp_path / "run", steps=10))
    latest = (tmp_path / "run" / "checkpoints" / "latest").read_text().strip()
    assert latest == "step_0000003"


def test_cuda_graph_is_refused_off_cuda_before_anything_runs(reach_data, tmp_path) -> None:
    with pytest.raises(TrainingError, match="needs a CUDA device; this run is on cpu"):
        pretrain(config(reach_data, tmp_path / "run", device="cpu", cuda_graph=True))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cuda_graph_is_refused_under_torchrun() -> None:
    from goalrl.distributed import DistInfo
    from goalrl.training.checks import check_cuda_graph

    with pytest.raises(TrainingError, match="world size 2"):
        check_cuda_graph(True, torch.device("cuda"), DistInfo(world_size=2))
    check_cuda_graph(False, torch.device("cpu"), DistInfo(world_size=2))  # off: nothing to check


def ddp_overrides(data: Path, out: Path) -> list[str]:
    return [
        f"data={data}",
        f"out={out}",
        "steps=4",
        "batch_size=8",
        "eval_episodes=0",
        "save_every=2",
        "device=cpu",
        "threads=1",  # two ranks on two cores: no intra-op threads waiting on each other
        "agent.encoder.conv_channels=[8,8]",
        "agent.encoder.embed_dim=16",
        "agent.encoder.fusion_dim=32",
        "agent.head_hidden_dim=16",
    ]


def assert_two_rank_run(out: Path) -> None:
    from goalrl.checkpoint import load_checkpoint

    state, meta = load_checkpoint(out)
    assert meta["step"] == 4
    samplers = state["samplers"]
    assert [s["rank"] for s in samplers] == [0, 1]  # each rank's own stream, saved by rank 0


def test_torchrun_two_processes(reach_data, tmp_path) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                "--master_port=29531", "-m", "goalrl.cli", "pretrain"]
    # with the behaviour prior: DDP then syncs a forward that returns (logits, prior)
    cmd = launcher + ddp_overrides(reach_data, tmp_path / "ddp") + ["agent.behaviour_prior=true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_two_rank_run(tmp_path / "ddp")
    state, _ = load_checkpoint(tmp_path / "ddp")
    assert "prior_head.weight" in state["agent"]["q"]


def test_submitit_launcher_two_ranks(reach_data, tmp_path) -> None:
    """The SLURM path (one task per rank, ranks from the submitit job environment), run by
    submitit's local executor through configs/hydra/launcher/local_ranks.yaml."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = tmp_path / "slurm"
    cmd = [sys.executable, "-m", "goalrl.cli", "pretrain", "--multirun",
           "hydra/launcher=local_ranks", *ddp_overrides(reach_data, out)]
    # submitit's job processes outlive a killed launcher, so the whole process group goes
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers only; a clean run left none
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert_two_rank_run(out)
    logs = sorted((out / "launcher" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # two tasks, one per rank
    summary = (out / "summary.json").read_text()
    assert '"steps": 4' in summary  # rank 0's summary, not rank 1's empty one


def test_import_goalrl_does_not_load_the_simulator() -> None:
    # a GPU node with only the learning stack can import the package and train
    code = ("import sys, goalrl, goalrl.training, goalrl.agents.am, goalrl.data.sampler; "
            "print('pybullet' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_training_only_run_needs_no_simulator(reach_data, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("goalrl.training.checks.simulator_available", lambda: False)
    with pytest.warns(UserWarning, match="pybullet is not installed"):
        summary = pretrain(config(reach_data, tmp_path / "run", steps=3))
    assert summary["steps"] == 3
    assert (tmp_path / "run" / "checkpoints" / "latest").is_file()


def test_evaluating_run_without_simulator_is_refused_before_training(
    reach_data, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("goalrl.training.checks.simulator_available", lambda: False)
    with pytest.raises(TrainingError, match="needs pybullet.*eval_every=0 eval_episodes=0"):
        pretrain(config(reach_data, tmp_path / "run", eval_episodes=2))
    assert not (tmp_path / "run" / "checkpoints").exists()
