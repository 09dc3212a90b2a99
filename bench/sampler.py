"""Benchmark: relabeled goal-conditioned batches per second, and the memory it takes.

    python bench/sampler.py                 # 10k, 100k and 1M frames at 64x64 (~12 GB disk, ~5 min)
    python bench/sampler.py --quick         # small sizes, a smoke test (< 1 minute)
    python bench/sampler.py --workdir /data/tmp --sizes 10000,1000000
    python bench/sampler.py --image-check --sizes 10000,100000 --seconds 4 --rounds 4
                                            # cost of checking images on first read (~2 min)

For each size a synthetic dataset is written with DatasetWriter into a temporary folder
under --workdir (deleted afterwards). Each measurement runs in a fresh subprocess pinned to
one core (sched_setaffinity + torch.set_num_threads(1)) that samples batches of 256
(obs, next obs and goal images, uint8 64x64x3, plus actions and proprio), wraps them as torch
tensors, and reports transitions/s and its resident memory from /proc/self/status.

Prints a table and writes docs/benchmarks/sampler.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

TARGET_RATE = 20_000  # transitions/s on one core
TARGET_FLAT = 0.25  # max/min - 1 across dataset sizes
TARGET_RSS_GIB = 2.0
NO_CHECK = "-nocheck"  # mode suffix: EpisodeDataset(verify_images=False)
CHECK_BEGIN, CHECK_END = "<!-- image-check:begin -->", "<!-- image-check:end -->"


# ----------------------------------------------------------------------------- dataset


def make_dataset(root: Path, frames: int, image_size: int, seed: int = 0) -> dict:
    """Synthetic play data: episodes of 50-150 frames, random pixels, 7-D actions, 9-D proprio.

    Pixels come from a pool of random frames (generating 12 GB of fresh random bytes would
    dominate the set-up); the reads measured do not depend on pixel values.
    """
    from goalrl.data.storage import DatasetWriter, EpisodeData

    rng = np.random.default_rng(seed)
    shape = (image_size, image_size, 3)
    pool = rng.integers(0, 256, (2048, *shape), dtype=np.uint8)  # (P, H, W, 3)
    t0 = time.perf_counter()
    written = 0
    with DatasetWriter(root, image_shape=shape, action_dim=7, proprio_dim=9, source="bench",
                       env_id="synthetic", durable=False) as w:
        while written < frames:
            n = int(min(rng.integers(50, 151), frames - written))
            n = max(n, 2)
            o = int(rng.integers(0, len(pool) - n))
            w.append(EpisodeData(
                images=pool[o : o + n],
                actions=rng.uniform(-1, 1, (n - 1, 7)).astype(np.float32),
                proprio=rng.normal(size=(n, 9)).astype(np.float32),
                seed=w.num_episodes,
            ))
            written += n
        episodes = w.num_episodes
    dt = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"frames": written, "episodes": episodes, "write_s": dt, "bytes": size}


def evict_page_cache(root: Path) -> None:
    """Drop the dataset's clean pages from the OS page cache (no root needed)."""
    for p in root.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def warm_page_cache(root: Path) -> None:
    """Read every chunk file once so that frames are served from the page cache."""
    buf = bytearray(64 << 20)
    for p in sorted(root.rglob("images.u8")):
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# ----------------------------------------------------------------------------- measurement


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
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", str(root), mode,
               str(batch_size), str(threads)]
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


def measure_collection(args: argparse.Namespace) -> list[dict]:
    """Hook: collection frames/s with workers (goalrl collect), to be filled in later.

    Return rows like {"workers": k, "frames_per_s": x, "note": "..."}; they are appended to
    the report as their own table.
    """
    return []


# ----------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Python "
            f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}")


def damon_note() -> str:
    """Describe proactive reclaim (DAMON pageout) if the kernel runs it: it evicts page cache."""
    ctx = Path("/sys/kernel/mm/damon/admin/kdamonds/0")
    try:
        if (ctx / "state").read_text().strip() != "on":
            return ""
        scheme = ctx / "contexts/0/schemes/0"
        action = (scheme / "action").read_text().strip()
        aggr = int((ctx / "contexts/0/monitoring_attrs/intervals/aggr_us").read_text()) / 1e6
        age = int((scheme / "access_pattern/age/min").read_text())
    except (OSError, ValueError):
        return ""
    return (f"This machine runs DAMON with a `{action}` scheme: memory regions idle for "
            f"{age} x {aggr:g} s = {age * aggr:g} s are reclaimed, page cache included. Random "
            "sampling touches each page of a 12 GB dataset too rarely for DAMON to count it as "
            "used, so over minutes the 1M-frame dataset drifts from RAM to disk whatever the "
            "free memory; the `disk read` column shows how much of each row did.")


def fmt_rows(rows: list[dict]) -> list[str]:
    head = ("| frames | episodes | read mode | page cache | transitions/s | ms/batch | "
            "disk read MiB | RSS MiB | anon MiB | file MiB | peak MiB | RSS before open | "
            "open s | load |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['frames']:,} | {r['episodes']:,} | {r['mode']} | {r['cache']} | "
            f"{r['rate']:,.0f} | {r['batch_ms']:.2f} | {r['disk_mib']:.0f} | {r['rss']:.0f} | "
            f"{r['rss_anon']:.0f} | "
            f"{r['rss_file']:.0f} | {r['rss_peak']:.0f} | {r['rss_before_open']:.0f} | "
            f"{r['open_s']:.2f} | {r['load']:.1f} |"
        )
    return lines


def verdicts(rows: list[dict]) -> list[str]:
    out = []
    for mode in sorted({r["mode"] for r in rows}):
        warm = [r for r in rows if r["mode"] == mode and r["cache"] == "warm"]
        if not warm:
            continue
        rates = [r["rate"] for r in warm]
        spread = max(rates) / min(rates) - 1
        big = max(warm, key=lambda r: r["frames"])
        checks = [
            (f">= {TARGET_RATE:,} transitions/s", min(rates) >= TARGET_RATE,
             f"min {min(rates):,.0f}"),
            (f"flat within {TARGET_FLAT:.0%} across sizes", spread <= TARGET_FLAT,
             f"max/min - 1 = {spread:.1%}"),
            (f"RSS < {TARGET_RSS_GIB} GiB at {big['frames']:,} frames",
             big["rss"] < TARGET_RSS_GIB * 1024, f"{big['rss']:.0f} MiB"),
        ]
        for name, ok, detail in checks:
            out.append(f"| {mode} | {name} | {'pass' if ok else 'FAIL'} | {detail} |")
    return ["| read mode | target | result | measured |", "|---|---|---|---|", *out]


EXPLANATION = """\
## Reading strategy

Frames live in raw `(N, H, W, 3)` uint8 chunk files. Two strategies are implemented in
`EpisodeDataset` (`read_mode=`); three settings are measured above:

- **pread** (default): one `os.preadv` system call per transition reads frames t and t+1
  (contiguous on disk) and scatters them straight into the obs and next-obs batch arrays, one
  more call per goal frame: 512 calls per batch of 256, no intermediate copy. Nothing is
  mapped into the process, so resident memory is the batch arrays plus the low-dim fields
  (actions, proprio: about 64 MB at 1M frames), whatever the dataset size. The calls release
  the GIL, so a prefetch thread (`GoalBatchSampler.prefetch()`) overlaps with training.
- **mmap**: each chunk is memory-mapped and gathered with numpy fancy indexing (no Python
  loop). Every page touched is mapped into the process and counted in its RSS as file-backed
  memory, which grows toward the dataset size under random access. The reader therefore
  calls `madvise(MADV_DONTNEED)` on its mappings after every 256 MiB read; that drops them
  from the process (the pages stay in the OS page cache), and RSS stays bounded at the cost
  of re-faulting pages.
- **mmap-keep** (`read_mode="mmap", mmap_release_bytes=huge`): the same, never released. Once
  the pages are mapped a batch is a plain memory copy; total RSS grows toward the dataset size,
  but as file-backed page cache (`file` column) that the kernel can reclaim, not as the
  process's own memory (`anon` column).

Every reader checks each episode's image CRC-32 on its first read (the default); the rows
above measure the steady state after it (each process runs `verify()` before its warm-up,
which marks every episode checked). What the check costs the first batches is in the
section at the end.

pread is the default. Its cost per transition is a system call plus a copy out of the page
cache, which hardly depends on the dataset size, and its memory is flat by construction. mmap
has no Python loop, but every first touch of a page is a page fault that maps it (and, by
"fault-around", up to 64 KiB of cached neighbours), the periodic release makes the pages fault
again, and the work grows with the number of distinct pages touched: it slows down and its
peak RSS grows with the dataset (see the table), and its RSS depends on a tuning knob.
mmap-keep is the fastest from RAM and, because mapped pages count as in use, it also resists
proactive reclaim (below); choose it where a process RSS near the dataset size is acceptable
(it is page cache, reclaimable), e.g. a dedicated training machine with RAM to spare.

**Flatness.** Nothing in the sampler grows with the dataset except two binary searches over
the episode boundaries (index sampling is about 0.1 ms per batch at 10k episodes). What does
grow is the memory the copies read from: 12 GB of page cache spread over RAM at 1M frames
against 120 MB at 10k, which defeats CPU caches and TLBs (in a VM, nested page tables too).
That cost belongs to the machine and varied from run to run here: over the runs made while
writing this (some with other jobs on the 2 cores, some with part of the 1M dataset paged out
to disk, see the `load` and `disk read` columns) pread at 1M frames ran at 0.6 to 0.95 of its
10k rate. Compare rows of one run only.

**RSS columns.** `RSS` is VmRSS; `anon` (RssAnon) is the process's own heap (numpy arrays,
torch, Python); `file` (RssFile) is file-backed pages mapped into the process: shared
libraries (torch alone maps a few hundred MiB of .so files), plus, in mmap mode, dataset pages
touched since the last release. Page-cache pages that are not mapped (everything pread reads)
are not in RSS at all: they belong to the kernel and are reclaimed under memory pressure.
`RSS before open` is the process after `import torch` and goalrl, before the dataset is
opened.

**Page cache.** `warm`: the size's frame files were read once just before its rows, so
reads come from RAM (check `disk read`). `cold`: the files' pages were evicted
(`posix_fadvise(DONTNEED)`) right before, so nearly every frame is a random disk read; this is
the figure for datasets larger than RAM, and it measures the disk, not the sampler.
Because `os.preadv` releases the GIL, `prefetch(num_threads=k)` keeps k reads in flight on
the same single core, which is what the last row shows. For datasets that do not fit in RAM,
train with `GoalBatchSampler.prefetch(num_threads=8 or more)`.
"""


def write_report(path: Path, rows: list[dict], gen: list[dict], args: argparse.Namespace,
                 collection: list[dict]) -> None:
    lines = [
        "# Sampler benchmark",
        "",
        "Generated by `python bench/sampler.py" + (" --quick" if args.quick else "") + "` on "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        f"Machine: {machine()}.",
        "",
        f"Relabeled transitions per second from `GoalBatchSampler` (batches of "
        f"{args.batch_size}: obs, next obs and goal images {args.image_size}x{args.image_size}x3 "
        "uint8, actions, proprio, geometric goals with gamma 0.9, 20% chained), one core "
        "(`sched_setaffinity` to one CPU, `torch.set_num_threads(1)`), single process, no "
        f"prefetch thread. Each row is its own process. For each size the frame files are read "
        f"into the page cache, then the read modes run interleaved, {args.rounds} rounds of "
        f"{args.seconds / args.rounds:.1f} s each; the rate is the median round. `disk read` is "
        "what the process fetched from storage (`/proc/self/io`) rather than from the page "
        "cache. `load` is the 1-minute load average as the row finished: the benchmark accounts "
        "for about 1, more means other processes shared the 2 cores and the row is pessimistic.",
        "",
        *fmt_rows(rows),
        "",
        "## Targets",
        "",
        *verdicts(rows),
        "",
        "## Datasets",
        "",
        "| frames | episodes | size on disk | written in | writer frames/s (durable=False) |",
        "|---|---|---|---|---|",
        *[f"| {g['frames']:,} | {g['episodes']:,} | {g['bytes'] / 2**30:.2f} GiB | "
          f"{g['write_s']:.1f} s | {g['frames'] / g['write_s']:,.0f} |" for g in gen],
        "",
        EXPLANATION,
        damon_note(),
        "",
    ]
    if collection:
        lines += ["## Collection", "", "| " + " | ".join(collection[0]) + " |",
                  "|" + "---|" * len(collection[0]),
                  *["| " + " | ".join(str(v) for v in r.values()) + " |" for r in collection], ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.is_file() else ""
    if CHECK_BEGIN in old:  # the --image-check section (and the notes after it) is kept
        lines += [CHECK_BEGIN + old.split(CHECK_BEGIN, 1)[1]]
    path.write_text("\n".join(lines))


# ----------------------------------------------------------------------------- image checks


def measure_image_checks(args: argparse.Namespace, sizes: list[int], work: Path) -> list[dict]:
    """Cost of checking each episode's image CRC-32 the first time it is read.

    Per size, two fresh readers on a warm page cache, with and without the check: the time of
    their first ``--first-batches`` batches (where the checks happen), the share of episodes
    checked by then, then the interleaved steady-state rounds; and the time of a full
    ``EpisodeDataset.verify()`` (what checking everything at open would cost).
    """
    rows = []
    for frames in sizes:
        root = work / f"ds{frames}"
        print(f"writing {frames:,} frames to {root} ...", flush=True)
        info = make_dataset(root, frames, args.image_size)
        warm_page_cache(root)
        workers = {m: Worker(root, m, args.batch_size) for m in ("pread", "pread" + NO_CHECK)}
        first = {m: w.ask(f"first {args.first_batches}") for m, w in workers.items()}
        for r in range(args.rounds):
            print(f"{frames:,} frames: round {r + 1}/{args.rounds}", flush=True)
            for w in workers.values():
                w.run(args.seconds / args.rounds)
        full = workers["pread"].ask("verify")
        for mode, w in workers.items():
            rows.append({**w.finish(), **first[mode], "frames": info["frames"],
                         "episodes": info["episodes"], "bytes": info["bytes"],
                         "mode": mode, "verify_s": full["verify_s"]})
        shutil.rmtree(root)
    return rows


def image_check_section(rows: list[dict], args: argparse.Namespace) -> str:
    head = (f"| frames | episodes | images checked on first read | first {args.first_batches} "
            "batches s | episodes checked by then | steady transitions/s | "
            "full verify() s | load |")
    lines = [
        CHECK_BEGIN,
        "## Image checks on first read",
        "",
        f"Generated by `python bench/sampler.py --image-check --sizes "
        f"{','.join(str(r['frames']) for r in rows[::2])} --seconds {args.seconds:g} --rounds "
        f"{args.rounds}` on {time.strftime('%Y-%m-%d')}; machine as above; pread, one core, "
        f"batches of {args.batch_size}, warm page cache.",
        "",
        "`EpisodeDataset` checks an episode's image CRC-32 the first time any of its frames is "
        "read (`verify_images=True`, the default): the whole episode is read once and never "
        "checked again by that reader. The first batches of a run pay for it (a full pass over "
        "the dataset, spread over the batches that first touch each episode); afterwards a "
        "batch only looks up a per-episode flag. Checking everything at open instead would make "
        "every open, `goalrl data info` included, cost the `full verify()` column.",
        "",
        head,
        "|" + "---|" * 8,
    ]
    for r in rows:
        checked = "yes" if not r["mode"].endswith(NO_CHECK) else "no"
        lines.append(
            f"| {r['frames']:,} | {r['episodes']:,} | {checked} | {r['first_s']:.3f} | "
            f"{r['checked']:.0%} | {r['rate']:,.0f} | {r['verify_s']:.3f} | {r['load']:.1f} |")
    lines += ["", CHECK_END, ""]
    return "\n".join(lines)


def write_image_check_section(path: Path, section: str) -> None:
    """Replace (or append) the image-check section of the report, leaving the rest as is."""
    text = path.read_text() if path.is_file() else "# Sampler benchmark\n\n"
    if CHECK_BEGIN in text and CHECK_END in text:
        before, rest = text.split(CHECK_BEGIN, 1)
        text = before + section.rstrip("\n") + rest.split(CHECK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# ----------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes and short runs")
    p.add_argument("--sizes", default=None, help="comma-separated frame counts")
    p.add_argument("--modes", default="pread,mmap,mmap-keep",
                   help="read modes to measure (mmap-keep: mmap without releasing pages)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seconds", type=float, default=None, help="measurement time per row")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per row")
    p.add_argument("--no-cold", action="store_true", help="skip the cold page cache rows")
    p.add_argument("--cold-threads", type=int, default=8,
                   help="prefetch threads for the second cold row")
    p.add_argument("--workdir", default=None, help="where to write the temporary datasets")
    p.add_argument("--image-check", action="store_true",
                   help="measure only the cost of image checks on first read (with and "
                        "without); writes its own section of the report")
    p.add_argument("--first-batches", type=int, default=50,
                   help="batches timed from a fresh reader (--image-check)")
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "sampler.md"))
    args = p.parse_args()
    sizes = [int(s) for s in (args.sizes or ("2000,10000" if args.quick
                                             else "10000,100000,1000000")).split(",")]
    args.seconds = args.seconds or (2.0 if args.quick else 8.0)
    args.rounds = args.rounds or (4 if args.quick else 8)
    modes = args.modes.split(",")

    if args.image_check:
        work = Path(tempfile.mkdtemp(prefix="goalrl-bench-", dir=args.workdir))
        try:
            rows = measure_image_checks(args, sizes, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        section = image_check_section(rows, args)
        print(section)
        write_image_check_section(Path(args.out), section)
        print(f"\nwrote {args.out}")
        return
    rows, gen = [], []
    work = Path(tempfile.mkdtemp(prefix="goalrl-bench-", dir=args.workdir))
    try:
        for frames in sizes:  # one dataset on disk at a time
            root = work / f"ds{frames}"
            print(f"writing {frames:,} frames to {root} ...", flush=True)
            info = make_dataset(root, frames, args.image_size)
            gen.append(info)
            labels = {"frames": info["frames"], "episodes": info["episodes"]}
            # read the frames into the page cache, then measure at once and briefly, so that
            # proactive reclaim (see damon_note) has no time to evict them; the read modes run
            # interleaved in rounds so that machine noise hits them alike
            warm_page_cache(root)
            workers = {m: Worker(root, m, args.batch_size) for m in modes}
            for w in workers.values():
                w.ask("verify")  # every episode's first-read image check, done up front
                w.run(0.3)  # warm-up: allocator, first faults
                w.rates.clear()
            for r in range(args.rounds):
                print(f"{frames:,} frames: round {r + 1}/{args.rounds}", flush=True)
                for w in workers.values():
                    w.run(args.seconds / args.rounds)
            for mode, w in workers.items():
                rows.append({**w.finish(), **labels, "mode": mode, "cache": "warm"})
            if frames == max(sizes) and not args.no_cold:
                # cold page cache: evicted right before each row
                for threads in (0, args.cold_threads):
                    w = Worker(root, modes[0], args.batch_size, threads)
                    w.ask("verify")  # first-read checks done (it reads every frame) ...
                    w.ask("evict")  # ... then the cache is emptied
                    w.run(args.seconds / 2)
                    mode = f"{modes[0]}, prefetch {threads} threads" if threads else modes[0]
                    rows.append({**w.finish(), **labels, "mode": mode, "cache": "cold"})
            shutil.rmtree(root)
        for r in rows:
            print(fmt_rows([r])[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    collection = measure_collection(args)

    print()
    print("\n".join(fmt_rows(rows)))
    print()
    print("\n".join(verdicts(rows)))
    write_report(Path(args.out), rows, gen, args, collection)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
