"""Benchmark: updates/s of every agent, on 64x64 images and on state vectors, and where a
state update's time goes.

    python bench/agent_speed.py                     # every agent, both observations, batch 256
    python bench/agent_speed.py --agents gcbc,gcivl --observations state --rounds 3 --no-save
    python bench/agent_speed.py --profile gcivl,gcbc  # cProfile + torch.profiler of state updates
    python bench/agent_speed.py --agents hiql --observations image --profile '' --merge
                                                    # rerun a row (e.g. measured under load)
    python bench/agent_speed.py --report-only       # rewrite the markdown from the JSON

Each agent is built as ``goalrl pretrain agent=<kind>`` builds it (the registry's defaults, a
state width filled in from the data) and fed by the sampler pretraining builds for it (its goal
mixtures, HIQL's subgoals) on a synthetic dataset shaped like Push's: 64x64 images, 4-d
actions, 5-d proprio and 6-d object positions (state vectors: 11-d). Batches are drawn before
timing, so a row times the learner alone; the sampler's own time per batch is a column of its
own. One torch thread. After three untimed warm-up updates, ``--rounds`` rounds of about
``--round-seconds`` each; a row gives the median round and the slowest and fastest.

Beside the rate, each state row gives the update's floating-point work (torch.profiler's FLOP
count of its matrix products, forward and backward), the rate that work runs at, and the time
of the same update at batch 2, where it does almost no arithmetic (the Python and dispatch
floor). Writes docs/benchmarks/agent_speed.json and agent_speed.md; the hand-written findings
in agent_speed_findings.md go under the table.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks"
IMAGE, ACTION_DIM, PROPRIO_DIM, GOAL_DIM = 64, 4, 5, 6  # Push's widths
# row name -> (agent kind, config overrides)
AGENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "am": ("am", {}),
    "am actor": ("am", {"actor": True}),
    "gcbc": ("gcbc", {}),
    "gcivl": ("gcivl", {}),
    "gciql": ("gciql", {}),
    "crl": ("crl", {}),
    "hiql": ("hiql", {}),
    "qrl": ("qrl", {}),
}
OBSERVATIONS = ("image", "state")


def write_dataset(root: Path, episodes: int = 20, length: int = 50, seed: int = 0) -> Path:
    """Random frames, actions, proprio and object positions in Push's shapes."""
    from goalrl.data.storage import DatasetWriter, EpisodeData

    rng = np.random.default_rng(seed)
    with DatasetWriter(root, image_shape=(IMAGE, IMAGE, 3), action_dim=ACTION_DIM,
                       proprio_dim=PROPRIO_DIM, goal_dim=GOAL_DIM, durable=False) as writer:
        for _ in range(episodes):
            writer.append(EpisodeData(
                images=rng.integers(0, 256, (length + 1, IMAGE, IMAGE, 3), dtype=np.uint8),
                actions=rng.uniform(-1, 1, (length, ACTION_DIM)).astype(np.float32),
                proprio=rng.normal(size=(length + 1, PROPRIO_DIM)).astype(np.float32),
                achieved_goal=rng.normal(size=(length + 1, GOAL_DIM)).astype(np.float32),
            ))
    return root


def agent_and_sampler(name: str, observation: str, dataset: Any, batch: int) -> tuple[Any, Any]:
    """The agent and sampler ``goalrl pretrain`` builds for row ``name`` (goalrl/training/
    pretrain.py; chaining is off: its sampler cost is the sampler's, not the update's)."""
    from goalrl.agents.observations import observation_kind
    from goalrl.agents.registry import build_agent, config_from_dict
    from goalrl.data.sampler import GoalBatchSampler

    kind, overrides = AGENTS[name]
    cfg = config_from_dict(kind, {**overrides, "encoder": {"kind": observation}})
    observation_kind(cfg.encoder, dataset)  # fills in encoder.state_dim
    agent = build_agent(kind, cfg, dataset.image_shape, dataset.action_dim,
                        dataset.proprio_dim, "cpu")
    sampler = GoalBatchSampler(
        dataset, batch, gamma=getattr(cfg, "gamma", 0.9), observation=observation,
        value_goals=getattr(cfg, "value_goals", None),
        actor_goals=getattr(cfg, "actor_goals", None),
        subgoal_steps=getattr(cfg, "subgoal_steps", 0),
    )
    return agent, sampler


def timed_rounds(update, batches: list, rounds: int, round_seconds: float) -> dict[str, Any]:
    """Three untimed warm-up updates, then ``rounds`` rounds of n updates (n from the warm-up's
    pace, so a round lasts about ``round_seconds``): updates/s of each round, wall and CPU."""
    t0 = time.perf_counter()
    for i in range(3):
        update(batches[i % len(batches)])
    per_update = (time.perf_counter() - t0) / 3
    n = max(2, round(round_seconds / per_update))
    wall, cpu = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            update(batches[i % len(batches)])
        wall.append(n / (time.perf_counter() - w0))
        cpu.append(n / (time.process_time() - c0))
    return {"updates_per_round": n, "ups_rounds": wall, "cpu_ups_rounds": cpu,
            "ups": statistics.median(wall), "cpu_ups": statistics.median(cpu)}


def matmul_gflop(update, batch: dict[str, Any]) -> float:
    """GFLOP of one update's matrix products (forward and backward), torch.profiler's count."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        update(batch)
    return sum(e.flops for e in prof.key_averages()) / 1e9


def floor_ms(name: str, observation: str, dataset: Any) -> float:
    """Median ms of an update at batch 2: its Python, dispatch and optimiser bookkeeping."""
    agent, sampler = agent_and_sampler(name, observation, dataset, 2)
    batches = [sampler.sample() for _ in range(4)]
    for b in batches:
        agent.update(b)
    times = []
    for i in range(30):
        t0 = time.perf_counter()
        agent.update(batches[i % 4])
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure(name: str, observation: str, dataset: Any, batch: int, rounds: int,
            round_seconds: float) -> dict[str, Any]:
    torch.manual_seed(0)
    agent, sampler = agent_and_sampler(name, observation, dataset, batch)
    sampler.sample()  # untimed: the first batch opens the dataset's files
    t0 = time.perf_counter()
    batches = [sampler.sample() for _ in range(8)]
    sample_ms = (time.perf_counter() - t0) * 1e3 / 8
    row = {"agent": name, "observation": observation, "batch": batch, "sample_ms": sample_ms,
           "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load_before": os.getloadavg()[0],
           **timed_rounds(agent.update, batches, rounds, round_seconds)}
    if observation == "state":
        row["gflop"] = matmul_gflop(agent.update, batches[0])
        row["floor_ms"] = floor_ms(name, observation, dataset)
    row["load_after"] = os.getloadavg()[0]
    return row


def profile_state_update(name: str, dataset: Any, batch: int, updates: int = 10) -> dict:
    """Where a state update's time goes: cProfile's top functions by own time (ms/update) and
    torch.profiler's aten ops by own CPU time (ms/update), over ``updates`` updates."""
    from torch.profiler import ProfilerActivity, profile

    agent, sampler = agent_and_sampler(name, "state", dataset, batch)
    batches = [sampler.sample() for _ in range(updates)]
    for b in batches[:3]:
        agent.update(b)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for b in batches:
        agent.update(b)
    prof.disable()
    wall_ms = (time.perf_counter() - t0) * 1e3 / updates
    stats = pstats.Stats(prof, stream=io.StringIO())
    funcs = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    python = [{"function": f"{Path(path).name}:{line}({func})", "ms": row[2] * 1e3 / updates,
               "calls": row[1] / updates} for (path, line, func), row in funcs[:8]]
    with profile(activities=[ProfilerActivity.CPU]) as tprof:
        for b in batches:
            agent.update(b)
    ops = sorted(tprof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    aten_total = sum(e.self_cpu_time_total for e in ops if e.key.startswith("aten::"))
    matmul = sum(e.self_cpu_time_total for e in ops if e.key in ("aten::mm", "aten::addmm",
                                                                  "aten::bmm", "aten::baddbmm"))
    return {
        "agent": name, "batch": batch, "updates": updates,
        "cprofile_wall_ms": wall_ms,
        "python_calls_per_update": stats.total_calls / updates,  # type: ignore[attr-defined]
        "top_functions": python,
        "aten_ms": aten_total / 1e3 / updates, "matmul_ms": matmul / 1e3 / updates,
        "top_ops": [{"op": e.key, "ms": e.self_cpu_time_total / 1e3 / updates,
                     "calls": e.count / updates} for e in ops[:8]],
    }


def matmul_peak_gflops() -> float:
    """This machine's one-thread rate on a (256, 256) @ (256, 256) product, GFLOP/s."""
    a, w = torch.randn(256, 256), torch.randn(256, 256)
    for _ in range(20):
        a @ w
    t0 = time.perf_counter()
    for _ in range(200):
        a @ w
    return 2 * 256**3 * 200 / (time.perf_counter() - t0) / 1e9


# ------------------------------------------------------------------------------- report


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f}"


def speed_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| agent | observation | updates/s (median) | rounds: slowest–fastest | "
             "CPU-time updates/s | ms/update | sampler ms/batch | GFLOP/update | GFLOP/s | "
             "batch-2 floor (ms) | load before/after |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        gflop = r.get("gflop")
        work = (f"{gflop:.2f} | {gflop * r['ups']:.0f} | {r['floor_ms']:.1f}" if gflop
                else "– | – | –")
        lines.append(
            f"| {r['agent']} | {r['observation']} | {r['ups']:.1f} | {spread(r['ups_rounds'])} "
            f"| {r['cpu_ups']:.1f} | {1e3 / r['ups']:.1f} | {r['sample_ms']:.2f} | {work} | "
            f"{r['load_before']:.2f}/{r['load_after']:.2f} |")
    return lines


def profile_section(p: dict[str, Any]) -> list[str]:
    lines = [f"### {p['agent']} on state, batch {p['batch']} ({p['updates']} updates)", "",
             f"Under cProfile {p['cprofile_wall_ms']:.1f} ms/update, "
             f"{p['python_calls_per_update']:.0f} Python calls per update. torch.profiler: "
             f"aten ops {p['aten_ms']:.1f} ms/update of their own CPU time, of which matrix "
             f"products (mm, addmm, bmm, baddbmm) {p['matmul_ms']:.1f} ms.", "",
             "| function (cProfile, own time) | ms/update | calls/update |", "|---|---:|---:|"]
    lines += [f"| `{f['function']}` | {f['ms']:.2f} | {f['calls']:.0f} |"
              for f in p["top_functions"]]
    lines += ["", "| aten op (own CPU time) | ms/update | calls/update |", "|---|---:|---:|"]
    lines += [f"| `{o['op']}` | {o['ms']:.2f} | {o['calls']:.0f} |" for o in p["top_ops"]]
    return lines + [""]


def report(res: dict[str, Any], findings: str) -> list[str]:
    m = res["machine"]
    lines = [
        "# Updates/s of every agent", "",
        "Written by `python bench/agent_speed.py` (see its docstring for what a row times). "
        f"{res['date']}, {m['cpus']} CPU cores (shared with other work; the load average "
        f"before and after each row is in its last column), torch {m['torch']}, "
        f"{m['threads']} torch thread, batch {res['batch']}, {res['rounds']} rounds of about "
        f"{res['round_seconds']} s after 3 warm-up updates. One-thread 256x256 matmul rate "
        f"on this machine: {res['peak_gflops']:.0f} GFLOP/s.", "",
        *speed_table(res["rows"]), "",
    ]
    if findings:
        lines += [findings.strip(), ""]
    if res.get("profiles"):
        lines += ["## Profiles of state updates", ""]
        for p in res["profiles"]:
            lines += profile_section(p)
    return lines


def write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--agents", default=",".join(AGENTS), help=f"of {', '.join(AGENTS)}")
    p.add_argument("--observations", default="image,state")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--round-seconds", type=float, default=1.0)
    p.add_argument("--profile", default="gcivl,gcbc", help="agents whose state update is "
                   "profiled ('' for none)")
    p.add_argument("--findings", default=str(DOCS / "agent_speed_findings.md"),
                   help="a markdown file put under the table (hand-written; skipped if absent)")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("--merge", action="store_true",
                   help="replace only the rows (and profiles) measured now in the saved JSON")
    p.add_argument("--report-only", action="store_true", help="rewrite the markdown only")
    args = p.parse_args()
    saved = DOCS / "agent_speed.json"
    if args.report_only:
        save_report(json.loads(saved.read_text()), Path(args.findings))
        return
    names = [n.strip() for n in args.agents.split(",") if n.strip()]
    observations = [o.strip() for o in args.observations.split(",") if o.strip()]
    profiled = [n.strip() for n in args.profile.split(",") if n.strip()]
    for n in names + profiled:
        if n not in AGENTS:
            raise SystemExit(f"--agents/--profile: {n!r} is not one of {', '.join(AGENTS)}")
    for o in observations:
        if o not in OBSERVATIONS:
            raise SystemExit(f"--observations: {o!r} is not one of {', '.join(OBSERVATIONS)}")
    torch.set_num_threads(1)
    from goalrl.data.storage import EpisodeDataset

    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "batch": args.batch,
        "rounds": args.rounds, "round_seconds": args.round_seconds,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "threads": torch.get_num_threads()},
        "peak_gflops": matmul_peak_gflops(), "rows": [], "profiles": [],
    }
    with tempfile.TemporaryDirectory() as tmp, \
            EpisodeDataset(write_dataset(Path(tmp) / "push-like")) as ds:
        for observation in observations:
            for name in names:
                row = measure(name, observation, ds, args.batch, args.rounds, args.round_seconds)
                res["rows"].append(row)
                print("\n".join(speed_table([row])[2:]), flush=True)
        for name in profiled:
            res["profiles"].append(profile_state_update(name, ds, args.batch))
    if args.merge:
        res = merged(json.loads(saved.read_text()), res)
    if args.no_save:
        print("\n".join(report(res, "")))
        return
    write_text(saved, json.dumps(res, indent=1))
    save_report(res, Path(args.findings))


def merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the rows and profiles of ``new`` in place of those of the same agent and
    observation (new ones appended); the rest of ``old`` (its date and machine) kept."""
    out = dict(old)
    for part, key in (("rows", ("agent", "observation")), ("profiles", ("agent",))):
        fresh = {tuple(r[k] for k in key): r for r in new[part]}
        kept = [fresh.pop(tuple(r[k] for k in key), r) for r in old[part]]
        out[part] = kept + list(fresh.values())
    # image rows first, then state rows, as a full run writes them (a stable sort)
    out["rows"] = sorted(out["rows"], key=lambda r: r["observation"] != "image")
    return out


def save_report(res: dict[str, Any], findings: Path) -> None:
    text = "\n".join(report(res, findings.read_text() if findings.is_file() else ""))
    write_text(DOCS / "agent_speed.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
