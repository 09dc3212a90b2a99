"""bench/sampler.py's measurement process, one per (dataset, read mode), and its parent-side
handle.

Run by ``Worker`` as ``python bench/sampler_worker.py ROOT MODE BATCH_SIZE THREADS``: it pins
itself to one core, opens the dataset, and answers one command a line on stdin with one JSON
line on stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sampler_data import evict_page_cache

NO_CHECK = "-nocheck"  # mode suffix: EpisodeDataset(verify_images=False)


def proc_status() -> dict[str, float]:
    """Resident memory of this process in MiB: total, anonymous, file-backed, peak."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def disk_read_bytes() -> int:
    """Bytes this process made the kernel fetch from storage (not from the page cache)."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


def worker(root: str, mode: str, batch_size: int, threads: int) -> None:
    """Measurement process: one core; answers "run SECONDS" / "evict" / "stats" on stdin.

    A persistent process per (dataset, mode) lets the parent interleave short rounds across
    dataset sizes, so that a noisy neighbour slows every size alike instead of one of them.
    ``threads`` > 0 reads through ``sampler.prefetch(num_threads=threads)`` (still one core:
    the threads only keep several disk reads in flight).
    """
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch

    torch.set_num_threads(1)
    from goalrl.data.sampler import GoalBatchSampler
    from goalrl.data.storage import EpisodeDataset

    base = proc_status()
    t0 = time.perf_counter()
    if mode == "mmap-keep":  # mmap, never releasing mapped pages
        ds = EpisodeDataset(root, read_mode="mmap", mmap_release_bytes=1 << 62)
    elif mode.endswith(NO_CHECK):  # images not checked against their CRC on first read
        ds = EpisodeDataset(root, read_mode=mode.removesuffix(NO_CHECK), verify_images=False)
    else:
        ds = EpisodeDataset(root, read_mode=mode)
    open_s = time.perf_counter() - t0
    sampler = GoalBatchSampler(ds, batch_size, goal_mode="geometric", gamma=0.9, p_chain=0.2,
                               seed=0)
    source = sampler.prefetch(depth=2 * threads, num_threads=threads) if threads else None

    def step() -> None:
        batch = next(source) if source else sampler.sample()
        tensors = {k: torch.from_numpy(v) for k, v in batch.items()}  # what training does
        assert tensors["obs_image"].shape[0] == batch_size

    def reply(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"open_s": open_s, "rss_before_open": base["VmRSS"]})
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "run":
            n, io0, t0 = 0, disk_read_bytes(), time.perf_counter()
            while time.perf_counter() - t0 < float(arg[0]):
                step()
                n += 1
            dt = time.perf_counter() - t0
            reply({"rate": n * batch_size / dt, "disk_read": disk_read_bytes() - io0})
        elif cmd == "first":  # the first batches of a fresh reader: image checks happen here
            t0 = time.perf_counter()
            for _ in range(int(arg[0])):
                step()
            reply({"first_s": time.perf_counter() - t0,
                   "checked": ds.episodes_checked / max(ds.num_episodes, 1)})
        elif cmd == "verify":  # what checking every image at open would cost
            t0 = time.perf_counter()
            problems = ds.verify()
            reply({"verify_s": time.perf_counter() - t0, "problems": len(problems)})
        elif cmd == "evict":
            evict_page_cache(Path(root))
            reply({})
        elif cmd == "stats":
            st = proc_status()
            reply({"rss": st["VmRSS"], "rss_anon": st["RssAnon"], "rss_file": st["RssFile"],
                   "rss_peak": st["VmHWM"]})
        else:
            break
    if source:
        source.close()


class Worker:
    """Parent-side handle of a measurement process."""

    def __init__(self, root: Path, mode: str, batch_size: int, threads: int = 0) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), str(root), mode, str(batch_size),
               str(threads)]
        self.batch_size = batch_size
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.info = self._read()
        self.rates: list[float] = []
        self.disk_read = 0

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"measurement process failed (exit {self.proc.wait()})")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def run(self, seconds: float) -> None:
        r = self.ask(f"run {seconds}")
        self.rates.append(r["rate"])
        self.disk_read += r["disk_read"]

    def finish(self) -> dict:
        stats = self.ask("stats")
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()
        rate = statistics.median(self.rates)
        return {**self.info, **stats, "rate": rate, "rates": self.rates,
                "load": os.getloadavg()[0],
                "batch_ms": 1000 * self.batch_size / rate,
                "disk_mib": self.disk_read / 2**20}


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
