"""The thread that owns the arm: every pybullet and policy call of the server happens here.

pybullet clients are not thread-safe, and HTTP requests arrive on many threads, so the
server never touches the ``GoalReacher`` directly. Requests hand callables to this worker:
quick ones (capture, reset, checkpoint swap) run at once, or between two steps of a running
command; a command runs in the background while the page polls its status. One command at
a time: a second one is refused (``Busy``, HTTP 409) rather than queued, so a click never
sets off a motion the user no longer expects.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.sheets import write_browser_video
from goalrl.goal_image import Goal, save_goal_png
from goalrl.reacher import GoalReacher, ReachResult, StepInfo

STEP_PERIOD_S = 0.1  # one env step is 0.1 s of simulated time; realtime pacing sleeps to it


class Busy(RuntimeError):
    """The arm is moving; the message says toward what and how far along."""


# ---- gallery ------------------------------------------------------------------------------
@dataclass
class GalleryItem:
    id: str
    goal: Goal
    name: str  # shown under the thumbnail
    url: str  # /files/goals/<id>.png

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "source": self.goal.source,
            "seed": self.goal.seed,
            "state_known": self.goal.state_known,
            "notes": list(self.goal.notes),
        }


class Gallery:
    """Goal images the page can command; each is a PNG under ``<out>/goals/`` (thread-safe)."""

    def __init__(self, out: Path) -> None:
        self.folder = out / "goals"
        self._items: dict[str, GalleryItem] = {}
        self._lock = threading.Lock()
        self._count = 0
        self.version = 0  # bumped on every change, so the page knows when to reload

    def add(self, goal: Goal, name: str) -> GalleryItem:
        with self._lock:
            self._count += 1
            gid = f"g{self._count:04d}"
        save_goal_png(self.folder / f"{gid}.png", goal)  # file first: the page may load it
        item = GalleryItem(gid, goal, name, f"/files/goals/{gid}.png")
        with self._lock:
            self._items[gid] = item
            self.version += 1
        return item

    def get(self, gid: str) -> GalleryItem:
        with self._lock:
            if gid not in self._items:
                raise KeyError(f"no goal {gid!r} in the gallery")
            return self._items[gid]

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [item.public() for item in self._items.values()]


# ---- jobs ---------------------------------------------------------------------------------
@dataclass
class Job:
    """One command: mutated by the worker, read (as a copy) by status requests."""

    id: str
    goal_id: str
    max_steps: int
    state: str = "queued"  # queued | running | done | stopped | failed
    step: int = 0
    q_values: list[float] = field(default_factory=list)
    success: bool | None = None
    distance: float | None = None
    result: dict[str, Any] | None = None
    video: str | None = None  # /files/runs/<id>.mp4 (or .webm)
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "goal": self.goal_id,
            "state": self.state,
            "step": self.step,
            "max_steps": self.max_steps,
            "q_values": [round(q, 4) for q in self.q_values],
            "success": self.success,
            "distance": self.distance,
            "result": self.result,
            "video": self.video,
            "error": self.error,
            "seconds": round((self.finished or time.time()) - self.started, 2)
            if self.started
            else 0.0,
        }


class ArmWorker:
    """Owns a ``GoalReacher`` on its own thread; see the module docstring."""

    def __init__(
        self,
        make_reacher: Callable[[], GoalReacher],
        out: Path,
        *,
        realtime: bool = True,
        start_seed: int = 0,
        gallery_seeds: list[int] | tuple[int, ...] = (),
    ) -> None:
        self.out = out
        self.gallery = Gallery(out)
        self.realtime = realtime
        self._make_reacher = make_reacher
        self._start_seed = start_seed
        self._gallery_seeds = list(gallery_seeds)
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._frame_cond = threading.Condition(self._lock)
        self._frame: np.ndarray | None = None  # (S, S, 3) uint8, latest camera view
        self._frame_seq = 0
        self._seed: int | None = None  # episode seed the scene was reset to (None: moved since)
        self._job: Job | None = None  # the running or last command
        self._busy = False
        self._stop = threading.Event()
        self._count = 0
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.info: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._main, name="goalrl-arm", daemon=True)
        self.reacher: GoalReacher | None = None  # touched only on the worker thread

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 300.0) -> None:
        """Start the thread, build the reacher there, capture the gallery; re-raise failures."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the arm did not start within {timeout:.0f} s")
        if self._startup_error is not None:
            raise self._startup_error

    def close(self) -> None:
        self._stop.set()
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            self.reacher = self._make_reacher()
            self._update_info()
            self._publish(self.reacher.reset(self._start_seed), self._start_seed)
            for seed in self._gallery_seeds:
                self.gallery.add(self.reacher.capture(seed), f"scene goal, seed {seed}")
        except BaseException as err:  # reported by start()
            self._startup_error = err
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    break
                job()
        finally:
            self.reacher.close()

    def _update_info(self) -> None:
        r = self.reacher
        self.info = {
            "env": r.env_id,
            "checkpoint": r.checkpoint,
            "agent": r.meta.get("agent"),
            "step": r.meta.get("step"),
            "image_size": r.image_size,
            "max_steps": r.max_steps,
            "objects": [spec.name for spec in r.core.task.objects],
            "realtime": self.realtime,
        }

    # ---- quick jobs -----------------------------------------------------------------------
    def call(self, fn: Callable[[GoalReacher], Any], timeout: float = 120.0) -> Any:
        """Run ``fn(reacher)`` on the worker thread (between steps if a command runs)."""
        if threading.current_thread() is self._thread:
            return fn(self.reacher)
        future: Future = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(self.reacher))
            except BaseException as err:
                future.set_exception(err)

        self._jobs.put(job)
        return future.result(timeout)

    def _drain_quick(self) -> None:
        """Serve waiting quick jobs (commands cannot be waiting: only one is admitted)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is None:  # closing: let the main loop see it after this command
                self._stop.set()
                self._jobs.put(None)
                return
            job()

    def capture(self, seed: int) -> GalleryItem:
        goal = self.call(lambda r: r.capture(seed))
        return self.gallery.add(goal, f"scene goal, seed {seed}")

    def reset(self, seed: int | None) -> dict[str, Any]:
        with self._lock:
            self._refuse_if_busy("reset the scene")
            self._busy = True  # no command may start while the reset runs
        try:
            seed = self._next_seed() if seed is None else int(seed)
            frame = self.call(lambda r: r.reset(seed))
            self._publish(frame, seed)
            return {"seed": seed}
        finally:
            with self._lock:
                self._busy = False

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        with self._lock:
            self._refuse_if_busy("switch checkpoints")
            self._busy = True
        try:
            self.call(lambda r: r.load_checkpoint(path))
            self._update_info()
            return dict(self.info)
        finally:
            with self._lock:
                self._busy = False

    def _next_seed(self) -> int:
        with self._lock:
            self._start_seed += 1
            return self._start_seed

    # ---- commands -------------------------------------------------------------------------
    def _refuse_if_busy(self, what: str) -> None:
        """Raise Busy (caller holds the lock) when a command or another change is under way."""
        if not self._busy:
            return
        job = self._job
        if job is not None and job.state in ("queued", "running"):
            raise Busy(
                f"cannot {what}: the arm is moving toward goal {job.goal_id} (command {job.id}, "
                f"step {job.step} of {job.max_steps}); wait for it to finish or press Stop"
            )
        raise Busy(f"cannot {what}: the arm is busy (reset or checkpoint switch); try again")

    def command(self, goal_id: str) -> dict[str, Any]:
        """Start moving toward gallery goal ``goal_id``; Busy if a command is under way."""
        item = self.gallery.get(goal_id)  # KeyError -> 404 before anything starts
        with self._lock:
            self._refuse_if_busy("start a command")
            self._count += 1
            job = Job(f"c{self._count:04d}", goal_id, int(self.info.get("max_steps", 0)))
            self._job = job
            self._busy = True
            self._stop.clear()
        self._jobs.put(lambda: self._run(job, item))
        return job.public()

    def stop(self) -> bool:
        """Ask a running command to stop after its current step; False when none runs."""
        with self._lock:
            running = self._job is not None and self._job.state in ("queued", "running")
        if running:
            self._stop.set()
        return running

    def _run(self, job: Job, item: GalleryItem) -> None:
        reacher = self.reacher
        with self._lock:
            job.state, job.started = "running", time.time()
        last = [time.perf_counter()]

        def on_step(info: StepInfo) -> None:
            with self._lock:
                job.step, job.success, job.distance = info.step, info.success, info.distance
                if info.q is not None:
                    job.q_values.append(float(info.q))
            self._publish(info.frame, None)
            self._drain_quick()
            if self.realtime:  # watchable motion: the scene's own 10 steps per second
                wait = STEP_PERIOD_S - (time.perf_counter() - last[0])
                if wait > 0:
                    time.sleep(wait)
            last[0] = time.perf_counter()

        try:
            result = reacher.reach(item.goal, on_step=on_step, should_stop=self._stop.is_set)
            video, summary = self._save(job, item, result)
            with self._lock:
                job.result, job.video = summary, video
                job.success, job.distance = result.success, result.final_distance
                job.state = "stopped" if result.stopped else "done"
        except Exception as err:  # the server goes on; the page shows the message
            with self._lock:
                job.state, job.error = "failed", f"{type(err).__name__}: {err}"
        finally:
            with self._lock:
                job.finished = time.time()
                self._busy = False
            self._publish(reacher.frame, None)

    def _save(self, job: Job, item: GalleryItem, result: ReachResult) -> tuple[str, dict]:
        """Rollout video (H.264 MP4, or WebM: both play in the page) and summary JSON under
        ``<out>/runs/``."""
        runs = self.out / "runs"
        video = write_browser_video(runs / job.id, result.panels())
        summary = {"command": job.id, "goal": item.id, **result.summary()}
        tmp = runs / f".{job.id}.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(runs / f"{job.id}.json")
        return f"/files/runs/{video.name}", summary

    # ---- frames and status ----------------------------------------------------------------
    def _publish(self, frame: np.ndarray, seed: int | None) -> None:
        with self._frame_cond:
            self._frame = frame.copy()
            self._frame_seq += 1
            self._seed = seed
            self._frame_cond.notify_all()

    def wait_frame(self, after: int, timeout: float) -> tuple[int, np.ndarray | None]:
        """(seq, frame) once a frame newer than ``after`` exists, or the latest at timeout."""
        with self._frame_cond:
            self._frame_cond.wait_for(lambda: self._frame_seq > after, timeout=timeout)
            return self._frame_seq, self._frame

    def status(self) -> dict[str, Any]:
        with self._lock:
            job = self._job.public() if self._job is not None else None
            return {
                **self.info,
                "busy": self._busy,
                "seed": self._seed,
                "frame_seq": self._frame_seq,
                "gallery_version": self.gallery.version,
                "job": job,
            }
