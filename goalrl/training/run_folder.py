"""A run folder's housekeeping: one run at a time, no litter, a bounded number of checkpoints.

- ``RunFolderLock``: the datasets' writer lock (an flock the kernel drops when the process
  dies, so a killed run never blocks the next) held on ``<out>`` for the whole run, with the
  holder's pid written into the lock file so a refused run can name it.
- ``remove_partial_saves``: ``.tmp_step_*`` folders of saves a kill interrupted.
- ``prune_checkpoints``: the last ``keep_last`` step checkpoints, plus the best by evaluation,
  the end of each phase and ``latest``.
- ``Best``: the best evaluated checkpoint so far (``checkpoints/best.json``), kept across resumes.
- ``write_curve`` / ``read_curve``: the evaluations so far (``checkpoints/curve.json``), so a
  resumed run's summary holds the whole learning curve.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from goalrl.checkpoint import TMP_PREFIX, checkpoint_dirs, write_atomic
from goalrl.data.storage import DatasetError
from goalrl.data.storage.files import FolderLock
from goalrl.training.checks import TrainingError

BEST_FILE = "best.json"


class RunFolderLock:
    """``with RunFolderLock(out):`` holds ``out`` (created if needed) for one run; a second run
    on the same folder (fresh or resumed) gets a TrainingError naming the folder and the pid
    of the run that holds it."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.lock: FolderLock | None = None

    def __enter__(self) -> RunFolderLock:
        self.out.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(self.out)
        try:
            lock.acquire()
        except DatasetError:
            raise TrainingError(
                f"run folder {self.out} is in use by another run (pid {holder_pid(lock.path)}, "
                f"lock {lock.path}); wait for it to end or choose another out="
            ) from None
        # who holds it, for the message above (the flock itself is the lock)
        os.ftruncate(lock.fd, 0)
        os.pwrite(lock.fd, f"{os.getpid()}\n".encode(), 0)
        self.lock = lock
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def holder_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def remove_partial_saves(out: Path) -> list[Path]:
    """Remove the temporary folders of checkpoint saves that never finished (the run was killed
    mid-save; the previous checkpoint stayed ``latest``). Call while holding the run's lock:
    then no other process is writing one. Returns what was removed."""
    root = Path(out) / "checkpoints"
    litter = sorted(root.glob(f"{TMP_PREFIX}*")) if root.is_dir() else []
    for path in litter:
        shutil.rmtree(path, ignore_errors=True)
    return litter


def prune_checkpoints(out: Path, keep_last: int, keep: set[str]) -> list[Path]:
    """Remove step checkpoints older than the last ``keep_last`` (0: keep all), except the
    folders named in ``keep`` and the one ``latest`` names. Returns what was removed."""
    if keep_last <= 0:
        return []
    root = Path(out) / "checkpoints"
    latest = root / "latest"
    keep = set(keep) | ({latest.read_text().strip()} if latest.is_file() else set())
    removed = []
    for path in checkpoint_dirs(root)[:-keep_last]:
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@dataclass
class Best:
    """The checkpoint with the highest evaluation success so far.

    It is judged on the run's evaluation episodes (eval_episodes seeds from 1,000,000 up on
    the evaluation scene): the goals configured for evaluation, not a validation split (the
    benchmark chooses its checkpoints on validation goals itself, in bench/table.py). Only
    evaluations at steps that have a checkpoint (save_every, phase ends) are candidates."""

    checkpoint: str  # step folder name, e.g. step_0000500
    step: int
    success_rate: float

    @classmethod
    def read(cls, out: Path) -> Best | None:
        path = Path(out) / "checkpoints" / BEST_FILE
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as err:
            raise TrainingError(f"{path} is damaged ({err}); delete it to start over") from err

    def write(self, out: Path) -> None:
        write_atomic(Path(out) / "checkpoints" / BEST_FILE, json.dumps(asdict(self)) + "\n")


CURVE_FILE = "curve.json"


def write_curve(out: Path, curve: list[dict[str, Any]]) -> None:
    """The run's learning curve so far (``checkpoints/curve.json``), so a resumed run reports
    the evaluations made before it was stopped."""
    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)  # the step-0 evaluation comes before any save
    write_atomic(root / CURVE_FILE, json.dumps(curve) + "\n")


def read_curve(out: Path, upto: int) -> list[dict[str, Any]]:
    """The saved curve's points at steps up to ``upto`` (the resumed checkpoint's step: later
    points were measured on weights the resumed run does not have)."""
    path = Path(out) / "checkpoints" / CURVE_FILE
    if not path.is_file():
        return []
    try:
        points = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise TrainingError(f"{path} is damaged ({err}); delete it to start over") from err
    return [p for p in points if p["step"] <= upto]
