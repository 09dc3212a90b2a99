"""Benchmark: the host-side cost of one update, the floor under any device's update rate.

    python bench/update_overhead.py             # AM and GCBC, batch 2, 64x64, CPU, one thread
    python bench/update_overhead.py --updates 20 --no-save
    python bench/update_overhead.py --device cuda --batch 256   # on a GPU: pinned batches
    python bench/update_overhead.py --against 56585fd --rounds 5  # A/B against a commit

At batch 2 an update does almost no arithmetic, so its wall time is the Python, dispatch and
optimiser bookkeeping that a GPU update pays as well. On an H200 an AM update took 10.8 ms at
batch 32 and 15.8 ms at batch 512 (``pretrain_speed_cuda_1threads.json``): a cost that hardly
grows with the work is this floor. cProfile splits it into the optimiser step, backward, the
Polyak averages (target network and acting average), gradient clipping, and the rest (the
loss's forward pass, host-to-device copies, diagnostics); torch's profiler counts the aten ops
an update dispatches, and HostReads the values it reads back to the host (each one makes
the host wait for the GPU). Prints a table and writes docs/benchmarks/update_overhead.md.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "benchmarks" / "update_overhead.md"


def load_pretrain_bench() -> Any:
    """bench/pretrain.py as a module: its synthetic batches and default agents are the ones its
    speed part times (loaded by path: bench/ is not a package)."""
    import importlib.util

    name = "bench_pretrain"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered: later calls reuse this one module
    spec.loader.exec_module(module)
    return module


# (file name suffix, function name) -> phase; cumulative times, each counted once per update
PHASES = {
    ("adam.py", "step"): "optimiser",
    ("_tensor.py", "backward"): "backward",
    ("losses.py", "__call__"): "averaging",  # PolyakAverage.__call__
    ("clip_grad.py", "clip_grad_norm_"): "clipping",
}


def phase_ms(stats: pstats.Stats, updates: int) -> dict[str, float]:
    """Milliseconds per update in each PHASES entry, from a cProfile of ``updates`` updates."""
    out = dict.fromkeys(PHASES.values(), 0.0)
    for (path, _line, func), row in stats.stats.items():  # type: ignore[attr-defined]
        for (suffix, name), phase in PHASES.items():
            if func == name and path.endswith(suffix):
                out[phase] += row[3] * 1e3 / updates  # row[3]: cumulative seconds
    return out


def host_reads_mode():
    """A context manager counting reads of tensor values by the host (``HostReads``)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class HostReads(TorchDispatchMode):
        """Counts .item(), bool(t), float(t) (dispatched as _local_scalar_dense) and .tolist()
        and .numpy() (which bypass the dispatcher, so they are wrapped while it is active)."""

        def __init__(self) -> None:
            super().__init__()
            self.reads = 0
            self._patched: dict[str, Any] = {}

        def __enter__(self) -> HostReads:
            import torch

            for name in ("tolist", "numpy"):
                real = self._patched[name] = getattr(torch.Tensor, name)
                setattr(torch.Tensor, name, self._counting(real))
            return super().__enter__()

        def __exit__(self, *exc: Any) -> None:
            import torch

            for name, real in self._patched.items():
                setattr(torch.Tensor, name, real)
            super().__exit__(*exc)

        def _counting(self, real):
            def read(tensor, *args, **kwargs):
                self.reads += 1
                return real(tensor, *args, **kwargs)

            return read

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            import torch

            if func is torch.ops.aten._local_scalar_dense.default:
                self.reads += 1
            return func(*args, **(kwargs or {}))

    return HostReads()


def host_reads(update, batch: dict[str, Any]) -> int:
    """Values one update reads back to the host, its stats left unread (as trainers do)."""
    with host_reads_mode() as counter:
        update(batch)
    return counter.reads


def aten_ops(update, batch: dict[str, np.ndarray]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        update(batch)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def measure(
    kind: str, batch_size: int, image: int, updates: int, device: str = "cpu"
) -> dict[str, Any]:
    """One agent's row. On a GPU the batch is pinned (as the trainer's prefetcher gives it) and
    the wall time is of ``updates`` updates queued back to back, then one wait for the device."""
    import torch

    from goalrl.data.prefetch import tensor_batch

    bench = load_pretrain_bench()
    agent = bench.make_agent(kind, image, device)
    batch: dict[str, Any] = bench.synthetic_batch(np.random.default_rng(0), batch_size, image)
    cuda = device.startswith("cuda")
    if cuda:
        batch = tensor_batch(batch, pin=True)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(3):  # first updates allocate optimiser state and warm caches
        agent.update(batch)
    sync()
    times = []
    for _ in range(updates):
        t0 = time.perf_counter()
        agent.update(batch)
        times.append((time.perf_counter() - t0) * 1e3)  # host time only on a GPU
    t0 = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
    sync()
    wall = (time.perf_counter() - t0) * 1e3 / updates
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(updates):
        agent.update(batch)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt * 1e3 / updates  # type: ignore[attr-defined]
    phases = phase_ms(stats, updates)
    return {
        "agent": kind, "batch": batch_size, "image": image, "device": device,
        "ms_per_update": statistics.median(times), "wall_ms_per_update": wall,
        "aten_ops": aten_ops(agent.update, batch),
        "host_reads": host_reads(agent.update, batch),
        "profiled_ms": total, **phases, "rest": total - sum(phases.values()),
    }


def table(rows: list[dict[str, Any]]) -> list[str]:
    cols = ["optimiser", "backward", "averaging", "clipping", "rest"]
    lines = [
        "| agent | device | batch | image | ms/update (median) | wall ms/update | aten ops | "
        "host reads | " + " | ".join(f"{c} (ms)" for c in cols) + " |",
        "|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(cols),
    ]
    for r in rows:
        lines.append(
            f"| {r['agent']} | {r['device']} | {r['batch']} | {r['image']} | "
            f"{r['ms_per_update']:.1f} | {r['wall_ms_per_update']:.1f} | {r['aten_ops']} | "
            f"{r['host_reads']} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |"
        )
    return lines


# Median CPU time per update of the default agents in the tree at sys.argv[1]: run in a child
# process per tree and round, so both trees share the same minutes of this machine. The child
# runs in the tree with PYTHONPATH set to it, so its goalrl is the tree's.
AB_CHILD = """
import importlib.util, json, statistics, sys, time
import numpy as np
repo, batch, updates = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import torch
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("bench_pretrain", repo + "/bench/pretrain.py")
bench = sys.modules["bench_pretrain"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
make_agent, synthetic_batch = bench.make_agent, bench.synthetic_batch
out = {}
for kind in ("am", "gcbc"):
    agent = make_agent(kind, 64, "cpu")
    b = synthetic_batch(np.random.default_rng(0), batch, 64)
    for _ in range(5):
        agent.update(b)
    times = []
    for _ in range(updates):
        t0 = time.process_time()
        agent.update(b)
        times.append(time.process_time() - t0)
    out[kind] = statistics.median(times) * 1e3
print(json.dumps(out))
"""


def ab_rounds(against: str, rounds: int, batch: int, updates: int) -> dict[str, Any]:
    """Interleaved rounds of the tree at git revision ``against`` and this one: CPU time
    (process time: steal from other guests on a shared machine is not counted) per update."""
    import subprocess
    import tempfile

    times: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(old),
                        against], check=True)
        try:
            for _ in range(rounds):
                for label, tree in (("before", old), ("after", REPO)):
                    res = subprocess.run(
                        [sys.executable, "-c", AB_CHILD, str(tree), str(batch), str(updates)],
                        check=True, capture_output=True, text=True,
                        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
                    for kind, ms in json.loads(res.stdout.strip().splitlines()[-1]).items():
                        times[label].setdefault(kind, []).append(ms)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                           check=False)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    return {"against": against, "head": head, "rounds": rounds, "batch": batch,
            "updates": updates, "date": time.strftime("%Y-%m-%d"), "times": times}


def ab_table(ab: dict[str, Any]) -> list[str]:
    lines = [f"| agent | before ({ab['against']}), median of rounds | after ({ab['head']}) "
             "| each round, before / after |", "|---|---:|---:|---|"]
    for kind in ab["times"]["before"]:
        b, a = ab["times"]["before"][kind], ab["times"]["after"][kind]
        rounds = ", ".join(f"{x:.1f} / {y:.1f}" for x, y in zip(b, a, strict=True))
        lines.append(f"| {kind} | {statistics.median(b):.1f} ms | {statistics.median(a):.1f} ms "
                     f"| {rounds} |")
    return lines


def report(results: list[dict[str, Any]]) -> list[str]:
    """The markdown report: one section per saved result (one per device type)."""
    lines = [
        "# Host-side cost of one update",
        "",
        "Written by `python bench/update_overhead.py` from the update_overhead_*.json files "
        "beside it. Default AM and GCBC agents (bench/pretrain.py's speed part), synthetic "
        "batches, stats left unread as the trainer leaves them between log steps. 'ms/update' "
        "is the host's time per call; 'wall' adds the final wait for the device (the same on "
        "a CPU). 'host reads' counts values the update reads back to the host: on a GPU each "
        "one waits for every kernel queued before it. The phase columns come from cProfile "
        "(which slows Python a little); 'rest' is the loss's forward pass, host-to-device "
        "copies and diagnostics.",
        "",
    ]
    for res in results:
        if "against" in res:
            lines += [
                f"## A/B against {res['against']}, batch {res['batch']}",
                "",
                f"`python bench/update_overhead.py --against {res['against']} --rounds "
                f"{res['rounds']}` (batch {res['batch']}, {res['updates']} updates per tree and "
                f"round, one thread, CPU time), {res['date']}. The two trees alternate, so "
                "both see the same minutes of the machine.",
                "",
                *ab_table(res),
                "",
            ]
            continue
        m = res["machine"]
        where = m.get("gpu") or f"{m['cpus']} CPU cores, {m['threads']} torch thread(s)"
        lines += [
            f"## {res['device']}: {where}",
            "",
            f"`python bench/update_overhead.py {res['args']}`, torch {m['torch']}, "
            f"{res['date']}.",
            "",
            *table(res["rows"]),
            "",
        ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--image", type=int, default=64)
    p.add_argument("--updates", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("--against", default=None,
                   help="git revision: time its tree and this one in alternating rounds (CPU)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    import torch

    bench = load_pretrain_bench()
    machine, write_json = bench.machine, bench.write_json
    torch.set_num_threads(1)
    if args.against:
        ab = ab_rounds(args.against, args.rounds, args.batch, args.updates)
        print("\n".join(ab_table(ab)))
        if not args.no_save:
            write_json(OUT.parent / f"update_overhead_ab_batch{args.batch}.json", ab)
            write_report()
        return
    rows = [measure(kind, args.batch, args.image, args.updates, args.device)
            for kind in ("am", "gcbc")]
    result = {
        "device": args.device, "machine": machine(args.device), "date": time.strftime("%Y-%m-%d"),
        "args": f"--device {args.device} --batch {args.batch} --image {args.image} "
                f"--updates {args.updates}",
        "rows": rows,
    }
    print("\n".join(table(rows)))
    if args.no_save:
        return
    write_json(OUT.parent / f"update_overhead_{args.device.split(':')[0]}.json", result)
    write_report()


def write_report() -> None:
    results = [json.loads(f.read_text()) for f in sorted(OUT.parent.glob("update_overhead_*.json"))]
    tmp = OUT.with_suffix(".md.tmp")
    tmp.write_text("\n".join(report(results)))
    os.replace(tmp, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
