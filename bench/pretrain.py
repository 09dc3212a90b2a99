"""Benchmark: how fast `goalrl pretrain`'s agents update, against a peer library.

    pip install -e '.[bench]'              # the d3rlpy peer
    python bench/pretrain.py speed         # updates/s, CEM latency, scaling, d3rlpy CQL
    python bench/pretrain.py speed --device cuda --no-peer   # the same on a GPU
    python bench/pretrain.py report        # rewrite the markdown from saved results

Each run saves its measurements as JSON next to the report
(``docs/benchmarks/pretrain_speed_<device>_<threads>threads.json``) and rewrites
``docs/benchmarks/pretrain.md`` from all of them, so CPU and GPU runs made on different
machines end up in one report. What the agents learn is measured by the benchmark table,
bench/table.py (datasets/README.md, docs/results.md).

The agent's ``update`` is timed on batches already sampled (the sampler's own rate is in
sampler.md: ~150k transitions/s, far above what an update consumes), so both sides of the
peer comparison time the learner alone. The peer is d3rlpy 2.8.0's CQL with its default
pixel encoder on the same kind of input: observation and goal stacked as 6 channels, 64x64,
4-d actions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks"

IMAGE = 64
ACTION_DIM = 4
TARGET_SPEEDUP = 10.0  # goalrl update vs d3rlpy CQL update at the same batch size
TARGET_ACT_MS = 20.0  # CEM action selection for one env on CPU
TARGET_GPU_UPS = 200.0  # updates/s at batch 256 on a GPU


# ------------------------------------------------------------------------------- helpers


def machine(device: str) -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_before": os.getloadavg()[0],
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def synthetic_batch(rng: np.random.Generator, batch: int, size: int) -> dict[str, np.ndarray]:
    """A relabeled batch with the sampler's keys: (B, H, W, 3) uint8 images, (B, A) actions."""
    from goalrl.data import keys as K

    def img() -> np.ndarray:
        return rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)

    reached, chained = rng.random(batch) < 0.1, rng.random(batch) < 0.2
    return {
        K.OBS_IMAGE: img(),
        K.NEXT_OBS_IMAGE: img(),
        K.GOAL_IMAGE: img(),
        K.ACTION: rng.uniform(-1, 1, (batch, ACTION_DIM)).astype(np.float32),
        K.REACHED: reached,
        K.CHAINED: chained,
        # hindsight offset k: 1 when reached, -1 when chained, else 2..20
        K.OFFSET: np.select([chained, reached], [-1, 1], rng.integers(2, 21, batch)),
    }


def time_updates(update, batches: list, seconds: float, min_updates: int = 3) -> float:
    """Updates/s of ``update`` cycling over ``batches`` (one untimed warm-up update first)."""
    update(batches[0])
    n, t0 = 0, time.perf_counter()
    while n < min_updates or time.perf_counter() - t0 < seconds:
        update(batches[n % len(batches)])
        n += 1
    if _cuda_sync is not None:
        _cuda_sync()
    return n / (time.perf_counter() - t0)


_cuda_sync = None


def make_agent(kind: str, size: int, device: str):
    """The default AM or GCBC agent for ``size`` x ``size`` images, as training builds it."""
    from goalrl.agents.am import AMAgent, AMConfig
    from goalrl.agents.gcbc import GCBCAgent, GCBCConfig

    amp = device.startswith("cuda")  # as training's default amp=true: bfloat16 on CUDA only
    if kind == "gcbc":
        return GCBCAgent(GCBCConfig(), (size, size, 3), ACTION_DIM, device=device, amp=amp)
    cfg = AMConfig(pad=max(1, size // 16))
    return AMAgent(cfg, (size, size, 3), ACTION_DIM, device=device, amp=amp)


# ------------------------------------------------------------------------------- speed


def goalrl_ups(
    kind: str, batch: int, size: int, device: str, seconds: float, graph: bool = False
) -> float:
    """Updates/s on pre-sampled batches; on a GPU pinned, as the trainer's prefetcher gives them
    (a copy from ordinary memory would make the host wait for the device every update). With
    ``graph`` each update replays a CUDA graph (``cuda_graph=true``), captured before timing."""
    from goalrl.agents.graphed import GraphedUpdate
    from goalrl.data.prefetch import tensor_batch

    rng = np.random.default_rng(0)
    agent = make_agent(kind, size, device)
    batches = [synthetic_batch(rng, batch, size) for _ in range(4)]
    if device.startswith("cuda"):
        batches = [tensor_batch(b, pin=True) for b in batches]
    update = agent.update
    if graph:
        update = GraphedUpdate(agent)
        for b in batches:  # warm-up updates and the capture, untimed
            update(b)
    return time_updates(update, batches, seconds)


def d3rlpy_cql_ups(batch: int, device: str, updates: int) -> float | None:
    """d3rlpy 2.8.0 CQL, default pixel encoder, (6, 64, 64) uint8 obs+goal, 4-d actions."""
    try:
        import d3rlpy
    except ImportError:
        return None
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    rng = np.random.default_rng(0)
    n = 1000
    obs = rng.integers(0, 256, (n, 6, IMAGE, IMAGE), dtype=np.uint8)  # (N, 6, H, W)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=obs,
        actions=rng.uniform(-1, 1, (n, ACTION_DIM)).astype(np.float32),
        rewards=(rng.random(n) < 0.1).astype(np.float32),
        terminals=(np.arange(n) % 50 == 49).astype(np.float32),
    )
    cql = d3rlpy.algos.CQLConfig(
        batch_size=batch, observation_scaler=d3rlpy.preprocessing.PixelObservationScaler()
    ).create(device="cuda:0" if device.startswith("cuda") else "cpu:0")
    cql.build_with_dataset(dataset)
    batches = [dataset.sample_transition_batch(batch) for _ in range(2)]
    return time_updates(cql.update, batches, seconds=0.0, min_updates=updates)


def cem_latency_ms(size: int, device: str, calls: int) -> dict[str, float]:
    """Wall time of agent.act for one env (one obs, one goal), default acting CEM."""
    rng = np.random.default_rng(0)
    agent = make_agent("am", size, device)
    obs = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    goal = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for _ in range(5):
        agent.act(obs, goal)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        agent.act(obs, goal)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


def run_speed(args: argparse.Namespace) -> dict[str, Any]:
    global _cuda_sync
    device = args.device
    if device.startswith("cuda"):
        _cuda_sync = torch.cuda.synchronize
    if args.threads > 0:  # one thread is robust on shared cores; 0 keeps torch's default
        torch.set_num_threads(args.threads)
    secs = 3.0 if args.quick else args.seconds
    result: dict[str, Any] = {"machine": machine(device), "rows": [], "scaling": []}
    for batch in (128, 256):
        row: dict[str, Any] = {"batch": batch}
        row["am_ups"] = goalrl_ups("am", batch, IMAGE, device, secs)
        row["gcbc_ups"] = goalrl_ups("gcbc", batch, IMAGE, device, secs)
        if device.startswith("cuda"):
            for kind in ("am", "gcbc"):
                try:
                    row[f"{kind}_graph_ups"] = goalrl_ups(kind, batch, IMAGE, device, secs,
                                                          graph=True)
                except Exception as e:  # noqa: BLE001 - recorded, the eager rows still count
                    row[f"{kind}_graph_error"] = f"{type(e).__name__}: {e}"[:500]
        if not args.no_peer:
            row["d3rlpy_cql_ups"] = d3rlpy_cql_ups(batch, device, 1 if args.quick else 4)
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
    result["act"] = cem_latency_ms(IMAGE, device, 50 if args.quick else 300)
    print(json.dumps({"act": result["act"]}), flush=True)
    for batch, size in scaling_grid(args.quick):
        ups = goalrl_ups("am", batch, size, device, secs / 2)
        point = {"batch": batch, "image": size, "am_ups": ups, "ms_per_update": 1e3 / ups}
        result["scaling"].append(point)
        print(json.dumps(point), flush=True)
    result["machine"]["load_after"] = os.getloadavg()[0]
    return result


def scaling_grid(quick: bool) -> list[tuple[int, int]]:
    if quick:
        return [(64, 64), (128, 64), (128, 32)]
    batches = [(b, IMAGE) for b in (32, 64, 128, 256, 512)]
    sizes = [(128, s) for s in (32, 48, 96, 128)]
    return batches + sizes


# ------------------------------------------------------------------------------- report


def load_results(docs: Path = DOCS) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(docs.glob("pretrain_speed_*.json"))}


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def speed_section(name: str, res: dict[str, Any]) -> list[str]:
    m = res["machine"]
    where = m.get("gpu") or f"CPU, {m['cpus']} cores, {m['threads']} torch threads"
    lines = [
        f"### Update speed: {where} (`{name}.json`)",
        "",
        f"torch {m['torch']}; load average {m['load_before']:.2f} before, "
        f"{m.get('load_after', float('nan')):.2f} after. 64x64 images, 4-d actions, "
        "batches pre-sampled (learner only).",
        "",
        "| batch | goalrl AM updates/s | goalrl GCBC updates/s | d3rlpy 2.8.0 CQL updates/s "
        "| AM / CQL |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        peer = r.get("d3rlpy_cql_ups")
        ratio = r["am_ups"] / peer if peer else None
        lines.append(
            f"| {r['batch']} | {r['am_ups']:.1f} | {r['gcbc_ups']:.1f} | {fmt(peer, '.3f')} "
            f"| {fmt(ratio, '.0f') + 'x' if ratio else 'n/a'} |"
        )
    graphed = [r for r in res["rows"] if any(k.startswith(("am_graph", "gcbc_graph")) for k in r)]
    if graphed:
        lines += ["", "Each update replayed as one CUDA graph (`cuda_graph=true`):", "",
                  "| batch | AM updates/s | GCBC updates/s |", "|---:|---:|---:|"]
        for r in graphed:
            cells = [fmt(r.get(f"{k}_graph_ups"), ".1f") if f"{k}_graph_ups" in r
                     else f"failed: {r.get(f'{k}_graph_error', 'n/a')}" for k in ("am", "gcbc")]
            lines.append(f"| {r['batch']} | {cells[0]} | {cells[1]} |")
    act = res["act"]
    lines += [
        "",
        f"CEM action selection for one env (3 iterations x 128 samples, image encoded once): "
        f"median **{act['median_ms']:.2f} ms**, p95 {act['p95_ms']:.2f} ms "
        f"(target at most {TARGET_ACT_MS:.0f} ms on CPU).",
        "",
        "How an AM update grows with batch size (64x64) and image size (batch 128):",
        "",
        "| batch | image | updates/s | ms/update |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {p['batch']} | {p['image']} | {p['am_ups']:.1f} | {p['ms_per_update']:.1f} |"
        for p in res["scaling"]
    ]
    return lines + [""]


def speed_verdicts(res: dict[str, Any]) -> list[str]:
    out = []
    for r in res["rows"]:
        peer = r.get("d3rlpy_cql_ups")
        if peer:
            ratio = r["am_ups"] / peer
            out.append(f"- Batch {r['batch']}: AM {r['am_ups']:.1f} updates/s vs CQL "
                       f"{peer:.3f}: {ratio:.0f}x (target {TARGET_SPEEDUP:.0f}x): "
                       f"**{'met' if ratio >= TARGET_SPEEDUP else 'not met'}**.")
        if res["machine"]["device"].startswith("cuda") and r["batch"] == 256:
            ok = r["am_ups"] >= TARGET_GPU_UPS
            out.append(f"- GPU batch 256: {r['am_ups']:.0f} updates/s (target "
                       f"{TARGET_GPU_UPS:.0f}): **{'met' if ok else 'not met'}**.")
            if r.get("am_graph_ups"):
                ok = r["am_graph_ups"] >= TARGET_GPU_UPS
                out.append(f"- GPU batch 256, CUDA graph: {r['am_graph_ups']:.0f} updates/s "
                           f"(target {TARGET_GPU_UPS:.0f}): **{'met' if ok else 'not met'}**.")
    if not res["machine"]["device"].startswith("cuda"):
        ok = res["act"]["median_ms"] <= TARGET_ACT_MS
        out.append(f"- CEM act {res['act']['median_ms']:.2f} ms (target {TARGET_ACT_MS:.0f} ms): "
                   f"**{'met' if ok else 'not met'}**.")
    return out


def write_report(docs: Path = DOCS) -> Path:
    """pretrain.md in ``docs`` from every speed JSON there."""
    results = load_results(docs)
    lines = [
        "# Pretraining benchmark: update speed",
        "",
        "Written by `bench/pretrain.py` from the `pretrain_speed_*.json` files beside this "
        "report. Rerun with `python bench/pretrain.py speed` (`--device cuda` on a GPU). What "
        "the agents learn is measured by `bench/table.py`: [docs/results.md](../results.md).",
        "",
    ]
    verdicts = [f"{v} ({name})" for name, res in results.items() for v in speed_verdicts(res)]
    if verdicts:
        lines += ["## Targets", "", *verdicts, ""]
    for name, res in results.items():
        lines += speed_section(name, res)
    path = docs / "pretrain.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)


def save(name: str, result: dict[str, Any]) -> None:
    write_json(DOCS / f"{name}.json", result)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("part", choices=["speed", "report"])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (0: torch's default, all cores)")
    p.add_argument("--seconds", type=float, default=20.0, help="timing window per speed cell")
    p.add_argument("--quick", action="store_true", help="short speed timings (a smoke test)")
    p.add_argument("--no-peer", action="store_true", help="skip the d3rlpy CQL timing")
    p.add_argument("--no-save", action="store_true", help="print only; keep docs/ untouched")
    args = p.parse_args()
    if args.part == "speed":
        result = run_speed(args)
        tag = "cuda" if args.device.startswith("cuda") else "cpu"
        if not args.no_save:
            save(f"pretrain_speed_{tag}_{args.threads or 'default'}threads", result)
    if not args.no_save:
        print(write_report().read_text())


if __name__ == "__main__":
    main()
