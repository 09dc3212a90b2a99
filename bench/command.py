"""Speed of commanding the arm: action selection, control rate, and the web page's frame rate.

1. Action-selection latency: wall time of one CEM action choice (encode camera + goal, CEM
   over the action box on the Q heads) per step, from ``GoalReacher.reach`` on CPU.
2. End-to-end control rate: steps/s of ``reach`` with the page's pacing off (policy,
   physics and rendering of the camera view, frames kept).
3. Page frame rate: distinct camera frames per second that the ``goalrl serve`` page shows
   in headless Chromium while the arm runs back-to-back commands, over ``--page-seconds``.

4. ``load``: the ``goalrl serve`` process under load on 127.0.0.1: 50 parallel uploads
   (connection resets, latency), 100 slow clients holding half-sent requests (is a normal
   request answered, how many threads), and the RGBA bomb (a 16-megapixel transparent PNG
   of 62 KB, alone and 4 at once: the server's peak RSS).
5. ``goals``: the image distance between the scene's camera views and real goals, photos
   and gray pictures, which sets the goal-picture rule's threshold (goalrl/goal_match.py).

Without ``--ckpt``, a checkpoint of the default network size at 64x64 is trained briefly
(a few play episodes, ``--train-steps`` updates): enough for timing, not for success.
Each mode writes its own section of docs/benchmarks/command.md.

    python bench/command.py [speed] [--ckpt RUN] [--steps 200] [--page-seconds 10]
    python bench/command.py load [--ckpt RUN]
    python bench/command.py goals
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path

import numpy as np
import torch

TARGET_ACTION_MS = 20.0  # action selection per step on CPU
TARGET_PAGE_FPS = 5.0  # distinct camera frames per second on the page
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


def brief_checkpoint(root: Path, env: str, episodes: int, steps: int) -> Path:
    from goalrl.agents import AMConfig
    from goalrl.commands.collect import CollectConfig, collect
    from goalrl.training import PretrainConfig, pretrain

    collect(CollectConfig(env=env, episodes=episodes, out=str(root / "data"), image_size=64,
                          sheet=False))  # fmt: skip
    pretrain(PretrainConfig(data=str(root / "data"), out=str(root / "run"), agent=AMConfig(),
                            steps=steps, batch_size=64, eval_episodes=0, videos=0,
                            save_every=steps, prefetch=2))  # fmt: skip
    return root / "run"


def action_latency(ckpt: Path, steps: int, seed: int, threads: int) -> dict:
    """Per-step action-selection times and the control rate over ``steps`` steps."""
    from goalrl.agents import AMConfig
    from goalrl.data.sheets import write_browser_video
    from goalrl.reacher import GoalReacher

    times, steps_done, wall = [], 0, 0.0
    with GoalReacher(ckpt, device="cpu", stop_on_success=False, threads=threads) as arm:
        arm.reset(seed)
        arm.reach(arm.capture(seed), max_steps=5)  # warm-up: allocator, first-call costs
        i = 0
        while steps_done < steps:
            arm.reset(seed + i)
            goal = arm.capture(seed + i)
            n = min(arm.max_steps, steps - steps_done)
            t0 = time.perf_counter()
            result = arm.reach(goal, max_steps=n)
            wall += time.perf_counter() - t0
            times += result.action_ms
            steps_done += result.steps
            i += 1
        image = arm.image_size
        agent_cfg = arm.meta["agent_config"]
        arm.reset(seed)
        full = arm.reach(arm.capture(seed), max_steps=arm.max_steps)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            write_browser_video(Path(tmp) / "run", full.panels())
        video_s = time.perf_counter() - t0
    ms = np.asarray(times)
    return {
        "steps": steps_done,
        "image_size": image,
        "cem": f"{agent_cfg['act_cem_iterations']} x {agent_cfg['act_cem_samples']} samples",
        "conv": AMConfig.from_dict(agent_cfg).encoder.conv_channels,
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "control_hz": steps_done / wall,
        "env_ms": 1e3 * wall / steps_done - float(ms.mean()),
        "video_s": video_s,
        "video_steps": full.steps,
    }


def page_frame_rate(ckpt: Path, seconds: float, realtime: bool, out: Path) -> dict:
    """Distinct frames/s the page shows while commands run back to back."""
    from playwright.sync_api import sync_playwright

    from goalrl.serve import start_server

    srv = start_server(ckpt, out, port=0, device="cpu", realtime=realtime, gallery=2)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    stop = threading.Event()
    commands = [0]

    def keep_moving() -> None:  # a new command whenever the last one ended
        goals = ["g0001", "g0002"]
        while not stop.is_set():
            if not srv.worker.status()["busy"]:
                req = urllib.request.Request(
                    srv.url + "api/command",
                    data=json.dumps({"goal": goals[commands[0] % 2]}).encode(),
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                try:
                    urllib.request.urlopen(req).read()
                    commands[0] += 1
                except urllib.error.HTTPError:
                    pass  # raced with the page's own polling of a finishing command
            time.sleep(0.02)

    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = ctx.new_page()
            page.goto(srv.url)
            page.wait_for_function("window.goalrl.framesShown >= 1", timeout=60_000)
            mover = threading.Thread(target=keep_moving, daemon=True)
            mover.start()
            time.sleep(1.0)  # let the first command get going
            n0 = page.evaluate("window.goalrl.framesShown")
            t0 = time.perf_counter()
            time.sleep(seconds)
            n1 = page.evaluate("window.goalrl.framesShown")
            elapsed = time.perf_counter() - t0
            stop.set()
            mover.join(5)
            ctx.close()
    finally:
        stop.set()
        srv.close()
    return {"fps": (n1 - n0) / elapsed, "frames": n1 - n0, "seconds": elapsed,
            "commands": commands[0]}  # fmt: skip


def describe(ckpt: Path) -> str:
    """How the checkpoint was trained, from its metadata."""
    from goalrl.checkpoint import read_meta

    meta = read_meta(ckpt)
    train = meta.get("train_config", {})
    episodes = "?"
    data = Path(str(meta.get("dataset", "")))
    if (data / "meta.json").is_file():
        episodes = json.loads((data / "meta.json").read_text()).get("num_episodes", "?")
    return (
        f"{meta.get('agent')}, update {meta.get('step')}, batch {train.get('batch_size')}, "
        f"{episodes} play episodes"
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="speed", choices=["speed", "load", "goals"])
    parser.add_argument(
        "--label", default="after", help="load: 'after' (this code) or a note naming other code"
    )
    parser.add_argument("--ckpt", help="checkpoint to time (default: train a brief one)")
    parser.add_argument("--env", default="goalrl/Push-v0")
    parser.add_argument("--steps", type=int, default=200, help="steps timed for latency")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=4, help="play episodes to train on")
    parser.add_argument("--page-seconds", type=float, default=10.0)
    parser.add_argument("--out", default="docs/benchmarks/command.md")
    args = parser.parse_args()
    if args.mode in ("load", "goals"):  # bench/command_load.py (run as a script: bench/ on path)
        import command_load

        return (
            command_load.main_goals(args)
            if args.mode == "goals"
            else command_load.main_load(args, brief_checkpoint, cpu_name)
        )

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.ckpt:
            ckpt = Path(args.ckpt)
        else:
            ckpt = brief_checkpoint(tmp, args.env, args.episodes, args.train_steps)
        trained = describe(ckpt)
        lat = action_latency(ckpt, args.steps, seed=1_000_000, threads=1)
        default_threads = os.cpu_count() or 1
        lat_mt = action_latency(ckpt, max(20, args.steps // 4), 1_000_000, default_threads)
        page_rt = page_frame_rate(ckpt, args.page_seconds, True, tmp / "serve_rt")
        page_fast = page_frame_rate(ckpt, args.page_seconds, False, tmp / "serve_fast")
    load_after = os.getloadavg()

    ok = "meets" if lat["median_ms"] <= TARGET_ACTION_MS else "misses"
    ok_fps = "meets" if page_rt["fps"] >= TARGET_PAGE_FPS else "misses"
    rows = [
        ("action selection per step, median", f"{lat['median_ms']:.1f} ms",
         f"<= {TARGET_ACTION_MS:.0f} ms ({ok})"),
        ("action selection, p90 / p99", f"{lat['p90_ms']:.1f} / {lat['p99_ms']:.1f} ms", ""),
        (f"action selection with {default_threads} torch threads, median / p90",
         f"{lat_mt['median_ms']:.1f} / {lat_mt['p90_ms']:.1f} ms", "(not the default)"),
        ("physics + camera render + bookkeeping per step", f"{lat['env_ms']:.1f} ms", ""),
        ("end-to-end control rate (no pacing)", f"{lat['control_hz']:.1f} steps/s", ""),
        (f"rollout video of {lat['video_steps']} steps written (H.264, as the page gets it)",
         f"{lat['video_s']:.2f} s", ""),
        ("page frame rate, `realtime=true` (default)", f"{page_rt['fps']:.1f} frames/s",
         f">= {TARGET_PAGE_FPS:.0f} frames/s ({ok_fps})"),
        ("page frame rate, `realtime=false`", f"{page_fast['fps']:.1f} frames/s", ""),
    ]  # fmt: skip
    table = "\n".join(
        ["| measure | value | target |", "|---|---:|---|"]
        + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    )
    doc = f"""# Commanding the arm: speed, the server under load, goal pictures

`python bench/command.py{" --ckpt " + args.ckpt if args.ckpt else ""}` on {date.today()}:
{cpu_name()}, {os.cpu_count()} cores **shared with other jobs** (load average
{load_before[0]:.2f} before, {load_after[0]:.2f} after), torch {torch.__version__} on CPU.
`GoalReacher` acts with one torch thread (its default, `threads=1`) unless a row says
otherwise.

Checkpoint: {args.env} at {lat["image_size"]}x{lat["image_size"]} pixels, default network
(conv {lat["conv"]}, acting CEM {lat["cem"]}), trained briefly:
{trained}. Enough for timing, not for success; without `--ckpt` the script trains one like
it itself ({args.episodes} play episodes, {args.train_steps} updates).

{table}

- Action selection: one `GoalReacher` step's policy call (encode camera and goal once, then
  CEM on the Q heads), timed over {lat["steps"]} steps of real rollouts toward captured goals.
- One thread is the default because of the third row: with torch's default of one thread
  per core, the intra-op threads of each small op wait on each other whenever another job
  holds a core, and a step that takes a few milliseconds takes tens to hundreds.
- Control rate: `reach` steps per second with frames kept (what `goalrl command` does);
  the rest of a step is pybullet physics (24 substeps) and the TinyRenderer camera view.
- Page frame rate: distinct camera frames the page displayed per second in headless
  Chromium over {page_rt["seconds"]:.0f} s of back-to-back commands
  ({page_rt["commands"]} with `realtime=true`, {page_fast["commands"]} with `realtime=false`).
  The page long-polls `/api/frame.jpg?after=<seq>` and shows each new frame once. With
  `realtime=true` (the default) the server paces the arm at the scene's own 10 steps/s (one
  step is 0.1 s of simulated time), which caps the page at 10 frames/s; the gaps between
  commands (video encoding, the next command's start) keep it a little below that. With
  `realtime=false` the arm outruns the page, which shows the newest frame each time it asks
  and skips the rest, and the camera is still while each command's video is encoded.
- Latency and frame rate move with machine load; these figures were taken with other jobs
  running on the same 2 cores.
"""
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from command_load import write_section

    write_section(Path(args.out), "speed", doc)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
