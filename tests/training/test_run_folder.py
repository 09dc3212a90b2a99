"""A run folder holds one run at a time, loses its litter and keeps a bounded set of checkpoints
(issue 39, defects 2 and 9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_pretrain import config, reach_data  # noqa: F401  (reach_data: a fixture)

from goalrl.training import TrainingError, pretrain

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from goalrl.training.run_folder import RunFolderLock
    with RunFolderLock(Path(sys.argv[1])):
        print("holding", flush=True)
        time.sleep(600)
""")


def step_folders(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("step_*"))


def test_a_second_run_on_a_held_folder_is_refused_and_a_killed_holder_blocks_nothing(
    reach_data, tmp_path  # noqa: F811
) -> None:
    out = tmp_path / "run"
    pretrain(config(reach_data, out, steps=3))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        for resume in (True, False):  # a resumed run and a fresh one alike
            with pytest.raises(TrainingError, match=rf"run folder {out} is in use by another "
                                                    rf"run \(pid {holder.pid},"):
                pretrain(config(reach_data, out, steps=6, resume=resume))
        assert step_folders(out) == ["step_0000003"]  # the refused runs wrote nothing
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # as a crash would end it: no cleanup runs
        holder.wait()
    # the kernel dropped the dead holder's lock; its lock file is still there
    assert (out / ".writer.lock").read_text().strip() == str(holder.pid)
    assert pretrain(config(reach_data, out, steps=6, resume=True))["steps"] == 6


def test_interrupted_saves_are_removed_when_a_run_starts(reach_data, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "run"
    litter = out / "checkpoints" / ".tmp_step_0000003_4242"  # a fresh run killed mid-save
    litter.mkdir(parents=True)
    (litter / "tensors.safetensors").write_bytes(b"half")
    pretrain(config(reach_data, out, steps=3))
    assert not litter.exists()
    litter = out / "checkpoints" / ".tmp_step_0000006_4243"  # then a resumed one
    litter.mkdir()
    pretrain(config(reach_data, out, steps=6, resume=True))
    assert not litter.exists()
    assert step_folders(out) == ["step_0000003", "step_0000006"]


def test_checkpoints_are_pruned_to_the_last_n_plus_the_best(
    reach_data, tmp_path, monkeypatch  # noqa: F811
) -> None:
    # scripted evaluation results: step 3 (not saved) would be best but has no checkpoint;
    # step 4 is the best saved one
    rates = {3: 1.0, 4: 0.9}
    evaluated = []

    def fake_evaluate(agent, env_id, episodes, image_size, videos, video_dir):
        evaluated.append(agent.step)
        return {"success_rate": rates.get(agent.step, 0.1)}

    monkeypatch.setattr("goalrl.training.loop.evaluate_agent", fake_evaluate)
    out = tmp_path / "run"
    summary = pretrain(config(reach_data, out, steps=12, save_every=2, eval_every=1,
                              eval_episodes=1, keep_last=2))
    assert evaluated == list(range(1, 13))
    assert step_folders(out) == ["step_0000004", "step_0000010", "step_0000012"]
    assert summary["best"] == {"checkpoint": "step_0000004", "step": 4, "success_rate": 0.9}
    assert json.loads((out / "checkpoints" / "best.json").read_text()) == summary["best"]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_0000012"
    # a resumed run keeps the best of the whole run, and a better one replaces it
    rates[16] = 0.95
    summary = pretrain(config(reach_data, out, steps=16, save_every=2, eval_every=1,
                              eval_episodes=1, keep_last=2, resume=True))
    assert step_folders(out) == ["step_0000014", "step_0000016"]
    assert summary["best"]["checkpoint"] == "step_0000016"
    # keep_last=0 keeps them all
    pretrain(config(reach_data, tmp_path / "all", steps=8, save_every=2, keep_last=0))
    assert len(step_folders(tmp_path / "all")) == 4
