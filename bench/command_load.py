"""``python bench/command.py load`` and ``goals``: the web server under load, and the image
distances that set the goal-picture rule's threshold (see bench/command.py's docstring).

Each writes its own section of docs/benchmarks/command.md (between ``<!-- name -->``
markers), so the speed figures and these are regenerated independently.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np


# ---- load: the server process under parallel uploads, slow clients and the RGBA bomb -------
def start_serve_process(ckpt: Path, out: Path) -> tuple[subprocess.Popen, str, int]:
    """``goalrl serve`` in a child process (its RSS and threads are its own): (proc, host, port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "goalrl.cli", "serve", f"ckpt={ckpt}", "port=0", "gallery=1",
         f"out={out}", "device=cpu", "realtime=false"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    line = ""
    while "http://" not in line:
        line = proc.stdout.readline()
        if (not line and proc.poll() is not None) or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("goalrl serve did not start")
    host, port = line.split()[2].removeprefix("http://").strip("/").rsplit(":", 1)
    return proc, host, int(port)


def proc_status(pid: int) -> dict[str, int]:
    """Threads and VmRSS/VmHWM (peak RSS, kB) of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def post(host: str, port: int, path: str, body: bytes, timeout: float = 120) -> tuple[str, float]:
    """(status or the error's name, seconds) of one POST over a fresh connection."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "image/png"})
        resp = conn.getresponse()
        resp.read()
        outcome = str(resp.status)
    except (OSError, http.client.HTTPException) as err:
        outcome = type(err).__name__
    finally:
        conn.close()
    return outcome, time.perf_counter() - t0


def in_parallel(n: int, fn) -> list:
    """``fn()`` on ``n`` threads released together; their results."""
    start, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        start.wait(60)
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def server_load(ckpt: Path, out: Path, env: str) -> dict:
    from goalrl.reacher import capture_goal

    proc, host, port = start_serve_process(ckpt, out)
    pid, figures = proc.pid, {"idle": proc_status(proc.pid)}
    try:
        picture = png(capture_goal(env, 7, image_size=64).image)  # a goal picture, no state
        post(host, port, "/api/goals", picture)  # warm-up: the first decode loads PIL's plugins
        uploads = in_parallel(50, lambda: post(host, port, "/api/goals", picture))
        figures["uploads"] = {
            "ok": sum(o == "201" for o, _ in uploads),
            "resets": sum(not o.isdigit() for o, _ in uploads),
            "other": sorted({o for o, _ in uploads if o.isdigit() and o != "201"}),
            "median_s": float(np.median([s for _, s in uploads])),
            "max_s": max(s for _, s in uploads),
            "threads_after": proc_status(pid)["Threads"],
        }
        slow = []
        for _ in range(100):  # half-sent requests, held open
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"POST /api/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
            slow.append(sock)
        time.sleep(1.0)
        threads_held = proc_status(pid)["Threads"]
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.request("GET", "/api/status")
            normal = str(conn.getresponse().status)
        except (OSError, http.client.HTTPException) as err:
            normal = type(err).__name__
        finally:
            conn.close()
        normal_s = time.perf_counter() - t0
        dropped, t0 = 0, time.perf_counter()
        for sock in slow:  # each recv ends when the server drops it, or after 30 s in all
            sock.settimeout(max(0.01, 30 - (time.perf_counter() - t0)))
            try:
                dropped += sock.recv(1024) == b""
            except OSError:
                pass
            sock.close()
        figures["slow"] = {
            "threads_held": threads_held, "normal": normal, "normal_s": normal_s,
            "dropped": dropped, "drop_s": time.perf_counter() - t0,
        }  # fmt: skip
        alpha = np.zeros((4000, 4000, 4), np.uint8)  # transparent, 16 megapixels: in the limits
        bomb = png(alpha)
        before = proc_status(pid)
        one = post(host, port, "/api/goals", bomb)
        after_one = proc_status(pid)
        four = in_parallel(4, lambda: post(host, port, "/api/goals", bomb))
        after_four = proc_status(pid)
        figures["bomb"] = {
            "bytes": len(bomb), "one": one, "four": sorted({o for o, _ in four}),
            "four_max_s": max(s for _, s in four), "rss_before_kb": before["VmHWM"],
            "peak_one_kb": after_one["VmHWM"], "peak_four_kb": after_four["VmHWM"],
        }  # fmt: skip
        figures["alive"] = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return figures


def load_section(f: dict, label: str) -> str:
    u, s, b = f["uploads"], f["slow"], f["bomb"]
    mb = 1024.0
    rows = [
        ("50 parallel uploads (64x64 PNG): answered 201 / connection resets",
         f"{u['ok']} / {u['resets']}" + (f" (also {', '.join(u['other'])})" * bool(u["other"]))),
        ("... latency median / max", f"{u['median_s']:.2f} / {u['max_s']:.2f} s"),
        ("100 slow clients (half-sent requests): server threads while held",
         f"{s['threads_held']} (idle: {f['idle']['Threads']})"),
        ("... a normal request meanwhile: status, latency",
         f"{s['normal']}, {s['normal_s']:.2f} s"),
        ("... slow clients dropped by the server (within 30 s)",
         f"{s['dropped']} of 100, after {s['drop_s']:.1f} s"),
        (f"RGBA bomb (4000x4000 transparent PNG, {b['bytes'] / 1000:.0f} KB): answer, latency",
         f"{b['one'][0]}, {b['one'][1]:.2f} s"),
        ("... server peak RSS: before / after one / after 4 in parallel",
         f"{b['rss_before_kb'] / mb:.0f} / {b['peak_one_kb'] / mb:.0f} / "
         f"{b['peak_four_kb'] / mb:.0f} MB"),
    ]  # fmt: skip
    table = "\n".join(
        [f"| {label.split()[0]} | value |", "|---|---:|"] + [f"| {a} | {v} |" for a, v in rows]
    )
    return table


def write_section(path: Path, name: str, text: str) -> None:
    """Replace (or append) the block between ``<!-- name -->`` markers of ``path``."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.strip()}\n{end}"
    doc = path.read_text() if path.is_file() else ""
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(doc)
    tmp.replace(path)


def main_load(args: argparse.Namespace, brief_checkpoint: Callable, cpu_name: Callable) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = Path(args.ckpt) if args.ckpt else brief_checkpoint(tmp, args.env, 2, 10)
        figures = server_load(ckpt, tmp / "serve", args.env)
    table = load_section(figures, args.label)
    print(table)
    print(json.dumps(figures))
    text = f"""## The server under load (`python bench/command.py load`)

{date.today()}, {cpu_name()}, {os.cpu_count()} cores shared with other jobs (load average
{load_before[0]:.2f}); `goalrl serve` in its own process with its defaults (a pool of 32
threads, 10 s to send a request head, backlog 128, 2 uploads decoded at once, 5 MB and 16
megapixels per upload); the client on 127.0.0.1. Peak RSS is the server process's VmHWM
(the idle server, with torch and pybullet loaded, holds about 1 GB).

{table}

- Parallel uploads: 50 threads released together, each one POST of a 64x64 PNG goal
  picture on a fresh connection (after one warm-up upload).
- Slow clients: 100 connections that send half a request head and then nothing; the
  normal request (`GET /api/status`) is sent while they are held. One thread gathers every
  request head, so they take no serving thread; each is dropped 10 s after connecting.
- RGBA bomb: a fully transparent 4000x4000 PNG (16 megapixels, inside both limits). PIL
  decodes it (64 MB) and the server refuses it as see-through before any numpy copy or
  float math; at most 2 decode at once.
- Left as they are: a client that sends a complete head and then stalls in the body holds
  one of the 32 threads for up to 10 s per read; more such clients than threads make later
  requests wait in the queue (256, then 503).
"""
    if args.label != "after":  # the same load on other code, e.g. before a change
        text = f"Run `{args.label}` of the same script ({date.today()}):\n\n{table}\n"
    write_section(Path(args.out), f"load-{args.label.split()[0]}", text)
    print(f"wrote {args.out}")


# ---- goals: how far real goals, photos and gray pictures are from the scene's views ------
PHOTOS = {  # photos shipped with installed packages (found by file name, skipped if absent)
    "portrait (matplotlib grace_hopper.jpg)": "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    "grass (pybullet stadium_grass.jpg)": "pybullet_data/roboschool/models_outdoor/stadium/"
    "stadium_grass.jpg",
    "wood texture (pybullet tray.jpg)": "pybullet_data/tray/tray.jpg",
    "checker board (pybullet checker_grid.jpg)": "pybullet_data/checker_grid.jpg",
}


def goal_distances(env_id: str, size: int, seeds: int = 10, motion_steps: int = 50) -> dict:
    """Image distances (goal_match.image_distance) of real goals, photos and gray pictures
    to the scene's views: episode starts and frames of random motion."""
    import sysconfig

    import gymnasium as gym

    from goalrl.goal_image import load_goal
    from goalrl.goal_match import colour_spread, image_distance

    env = gym.make(env_id, image_size=size)
    rng = np.random.default_rng(0)
    starts, goals, moving, motion = [], [], [], []
    for seed in range(1_000_000, 1_000_000 + seeds):
        obs, _ = env.reset(seed=seed)
        starts.append(obs["image"].copy())
        goals.append(obs["desired_goal_image"].copy())
        for _ in range(motion_steps if seed < 1_000_000 + 5 else 0):
            obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            moving.append(obs["image"].copy())
            motion.append(image_distance(obs["image"], goals[-1]))
    env.close()
    real = [image_distance(v, g) for v in starts for g in goals]
    gray = [np.repeat(g.mean(-1, keepdims=True), 3, -1).astype(np.uint8) for g in goals]
    site = Path(sysconfig.get_paths()["purelib"])
    photos = {k: site / v for k, v in PHOTOS.items() if (site / v).is_file()}
    far = {name: min(image_distance(v, load_goal(path, size).image) for v in starts)
           for name, path in photos.items()}  # fmt: skip
    far["gray copy of a real goal (3 equal channels)"] = min(
        image_distance(v, g) for v in starts for g in gray
    )
    far["uniform noise"] = min(
        image_distance(v, rng.integers(0, 256, v.shape, dtype=np.uint8)) for v in starts
    )
    return {
        "real_max": max(real), "real_p99": float(np.percentile(real, 99)),
        "real_median": float(np.median(real)), "motion_max": max(motion),
        "far": far, "spread_min": min(colour_spread(v) for v in starts + moving),
        "gray_spread_max": max(colour_spread(g) for g in gray),
    }  # fmt: skip


def main_goals(args: argparse.Namespace) -> None:
    from goalrl import ENV_IDS
    from goalrl.goal_match import MAX_VIEW_DISTANCE, MIN_COLOUR_SPREAD

    rows, names, real_max, photo_min = [], [], 0.0, 1.0
    for env_id in ENV_IDS:
        for size in (64, 16):
            d = goal_distances(env_id, size)
            names = list(d["far"])
            real_max = max(real_max, d["real_max"], d["motion_max"])
            photo_min = min([photo_min] + [d["far"][n] for n in PHOTOS if n in d["far"]])
            rows.append(
                f"| {env_id.split('/')[1]} {size}px | {d['real_median']:.3f} / {d['real_p99']:.3f}"
                f" / {d['real_max']:.3f} | {d['motion_max']:.3f} | "
                + " | ".join(f"{d['far'][n]:.3f}" for n in names)
                + f" | {d['spread_min']:.2f} / {d['gray_spread_max']:.2f} |"
            )
            print(rows[-1])
    head = (
        "| scene | real goals to episode starts: median / p99 / max | real goals to frames of"
        " random motion: max | "
        + " | ".join(f"{n}: min" for n in names)
        + " | colour spread: views min / gray max |"
    )
    text = f"""## Goal pictures the camera cannot show (`python bench/command.py goals`)

Image distance (mean absolute pixel difference, 0..1, at the checkpoint's size) between the
scene's camera views and goal pictures, {date.today()}: for each scene, the start views of
10 evaluation episodes against the goals of the same 10 episodes (100 pairs), the goals
against 250 frames of random motion, and pictures that are not of the scene against the
start views (the smallest distance). Colour spread: the mean over pixels of (largest -
smallest channel) / 255.

{head}
|{"---|" * (len(names) + 4)}
{chr(10).join(rows)}

The rule (`goalrl/goal_match.py`, the same for `goalrl command`, `GoalReacher` and the web
page): a goal that is only a picture is refused when it is farther than
**{MAX_VIEW_DISTANCE}** from the scene's camera view (every real goal was within
{real_max:.3f}, every photo {photo_min:.3f} or more away), when it has no colour (spread
below {MIN_COLOUR_SPREAD}, or one channel: a gray copy of a real goal is only about 0.08
away, so distance alone would let it through), or when it has see-through pixels.
`force=true` commands it anyway with a warning. Goals captured from the scene (their state
known) are never refused.
"""
    write_section(Path(args.out), "goals", text)
    print(f"wrote {args.out}")
