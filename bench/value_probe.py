"""Are the benchmark's value functions worth acting on? Two probes of the state-cpu table's
checkpoints, beside what their own policies reach.

    .venv/bin/python bench/value_probe.py                  # both probes, then the page
    .venv/bin/python bench/value_probe.py --paths-only     # the path probe alone (minutes)
    .venv/bin/python bench/value_probe.py --report-only    # the page (paths re-probed)

For every table cell (runs/table/state-cpu/<dataset>/<method>/seed<k>) with a checkpoint at
``--step`` (fixed in advance: the profile's last), goalrl.benchmark.value_probe:

1. **Paths.** Reads the value along each Push test path the scripted pusher completes: rho
   (rank correlation with time, 1: it rises all the way) and object credit (how often it
   prefers the cube where the pusher moved it to the cube put back; 50%: blind to it).
2. **Lookahead.** Acts on the value with the simulator as a perfect one-step model (the
   actor's action and 16 uniform ones, each simulated one step; the best next state by V is
   taken) on ``--per-task`` test goals per task. A privileged diagnostic, not a policy to
   deploy: what the value is worth if extraction were perfect and one step deep. Rows go to
   the results store under act_rule ``sim_lookahead_on_v``, phase ``value_probe`` (the
   benchmark table reads phase ``pretrain`` only), so a rerun skips what is stored; the
   same lookahead on minus the state distance (no learning) is the yardstick row.

Aggregates: rliable's IQM and mean with stratified bootstrap intervals over seeds and goals
(goalrl.compare), and the paired difference to the same checkpoints' actor on the same
goals. Writes docs/benchmarks/value_probe.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from goalrl.benchmark.oracle import oracle_episodes
from goalrl.benchmark.value_probe import (
    StateDistance,
    lookahead_rollouts,
    probe_checkpoint,
)
from goalrl.checkpoint import step_name, write_atomic
from goalrl.compare import iqm_and_mean, paired_difference, percent, score_matrix, signed_percent
from goalrl.results import ROW_VERSION, append_rows, eval_rows, read_rows

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "table" / "state-cpu"
STORE = ROOT / "docs" / "results" / "results.jsonl"
OUT = ROOT / "docs" / "benchmarks" / "value_probe.md"
ENV, ENV_KWARGS = "goalrl/Push-v0", {"max_episode_steps": 100}
PHASE, LOOKAHEAD = "value_probe", "sim_lookahead_on_v"
DATASETS = ("push-play", "push-noisy", "push-stitch")
PATH_METHODS = ("gcivl", "gciql", "crl", "hiql", "am")
LOOKAHEAD_METHODS = ("gcivl", "gciql", "hiql")  # the agents with a state value V(s, g)
VALUE_READ = {"gcivl": "V(s, g)", "gciql": "V(s, g)", "hiql": "V(s, g)", "crl": "f(s, a, g)",
              "am": "Q(s, a, g)"}
REPS = 2000  # bootstrap resamples


def checkpoints(dataset: str, method: str, seeds: list[int], step: int) -> list[Path]:
    found = [RUNS / dataset / method / f"seed{s}" / "checkpoints" / step_name(step)
             for s in seeds]
    return [c for c in found if c.is_dir()]


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """mean [min-max] over seeds."""
    vals = [v * scale for v in values if not np.isnan(v)]
    if not vals:
        return "–"
    f = f"{{:.{digits}f}}"
    return f"{f.format(statistics.fmean(vals))} [{f.format(min(vals))}–{f.format(max(vals))}]"


def path_table(args: argparse.Namespace, store: list[dict]) -> list[str]:
    episodes = list(oracle_episodes(ENV, "test", 10, record=True))
    lines = [f"{sum(e.success for e in episodes)} of {len(episodes)} test paths completed by "
             "the pusher (10 goals per task).", "",
             "| dataset | method | value read | seeds | rho(value, time) | object credit % | "
             "policies' test success % (same checkpoints) |", "|---|---|---|---|---|---|---|"]
    arm_rho = None
    for dataset in args.datasets:
        for method in PATH_METHODS:
            ckpts = checkpoints(dataset, method, args.seeds, args.step)
            if not ckpts:
                continue
            per_seed = [probe_checkpoint(str(c), episodes) for c in ckpts]
            rho = [float(np.nanmean([r["rho"] for r in rows])) for rows in per_seed]
            credit = [float(np.nanmean([r["object_credit"] for r in rows])) for rows in per_seed]
            arm_rho = float(np.nanmean([r["arm_rho"] for r in per_seed[0]]))
            mine = {str(c) for c in ckpts}
            won: dict[str, list[bool]] = defaultdict(list)
            for r in store:
                if r["goal_split"] == "test" and r.get("phase") == "pretrain" \
                        and r.get("checkpoint") in mine:
                    won[r["act_rule"]].append(r["success"])
            success = ", ".join(f"{k} {100 * np.mean(v):.1f}" for k, v in sorted(won.items()))
            lines.append(f"| {dataset}-state | {method} | {VALUE_READ[method]} | {len(ckpts)} | "
                         f"{spread(rho)} | {spread(credit, 100, 1)} | {success or '–'} |")
            print(lines[-1], flush=True)
    if arm_rho is not None:
        lines += ["", f"Yardstick: minus the tcp's distance to the goal's tcp has rho "
                  f"{arm_rho:.2f} along the same paths (a value that tracked only the arm)."]
    return lines


def run_lookahead(args: argparse.Namespace) -> None:
    """Lookahead rollouts of every checkpoint not yet in the store, and the yardstick's."""
    from goalrl.agents.registry import load_agent

    done = {(r.get("checkpoint"), r["act_rule"]) for r in read_rows(STORE)
            if r.get("phase") == PHASE}
    for dataset in args.datasets:
        for method in LOOKAHEAD_METHODS:
            for ckpt in checkpoints(dataset, method, args.seeds, args.step):
                if (str(ckpt), LOOKAHEAD) in done:
                    continue
                agent, meta = load_agent(ckpt)
                t0 = time.process_time()
                rollouts = lookahead_rollouts(agent, meta["agent"], ENV, "test", args.per_task)
                summary = {"env": ENV, "rollouts": rollouts}
                append_rows(STORE, eval_rows(summary, {**meta, "phase": PHASE},
                                             act_rule=LOOKAHEAD, env_kwargs=ENV_KWARGS))
                print(f"{dataset} {method} {ckpt.parent.parent.name}: "
                      f"{100 * np.mean([r['success'] for r in rollouts]):.1f}% "
                      f"({time.process_time() - t0:.0f} s CPU)", flush=True)
    if (None, "sim_lookahead_on_distance") not in done:
        rollouts = lookahead_rollouts(StateDistance(4), "state_distance", ENV, "test",
                                      args.per_task)
        append_rows(STORE, [{
            "v": ROW_VERSION, "method": "state_distance", "agent": "none",
            "act_rule": "sim_lookahead_on_distance", "checkpoint": None, "step": 0,
            "phase": PHASE, "dataset": "none", "train_seed": 0, "env": ENV,
            "env_kwargs": ENV_KWARGS, **{k: v for k, v in r.items() if k != "seed"},
            "env_seed": r["seed"]} for r in rollouts])


def lookahead_table(args: argparse.Namespace, store: list[dict]) -> list[str]:
    probe = [r for r in store if r.get("phase") == PHASE]
    lines = ["| dataset | method | seeds | goals | lookahead on V: IQM % [95% CI] | mean % "
             "[95% CI] | its actor, same goals: mean % | lookahead − actor [95% CI] |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in args.datasets:
        for method in LOOKAHEAD_METHODS:
            rows = [r for r in probe if r["dataset"] == f"{dataset}-state"
                    and r["method"] == method]
            if not rows:
                continue
            est = iqm_and_mean(score_matrix(rows, "goal")[0], REPS, 0)
            ckpts = {r["checkpoint"] for r in rows}
            goals = {(r["task"], r["env_seed"]) for r in rows}
            actor = [r for r in store if r.get("phase") == "pretrain"
                     and r["checkpoint"] in ckpts and r["goal_split"] == "test"
                     and (r["task"], r["env_seed"]) in goals]
            pair = paired_difference(rows, actor, REPS, 0) if actor else None
            against = (f"{100 * pair['b_success']:.1f} | "
                       f"{signed_percent(asdict(pair['difference']))}") if pair else "– | –"
            lines.append(f"| {dataset}-state | {method} | {len(ckpts)} | {len(goals)} | "
                         f"{percent(asdict(est['iqm']))} | {percent(asdict(est['mean']))} | "
                         f"{against} |")
    yardstick = [r["success"] for r in probe if r["method"] == "state_distance"]
    if yardstick:
        lines += ["", f"Yardstick, the same lookahead on minus the state distance "
                  f"‖s − g‖ (no learning, standing still as its own action): "
                  f"{100 * np.mean(yardstick):.1f}% of {len(yardstick)} goals."]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--step", type=int, default=20_000)
    p.add_argument("--per-task", type=int, default=5)
    p.add_argument("--paths-only", action="store_true")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    start = time.process_time()
    if not (args.paths_only or args.report_only):
        run_lookahead(args)
    store = read_rows(STORE)
    paths = path_table(args, store)
    lookahead = lookahead_table(args, store)
    text = "\n".join([
        "# Are the value functions worth acting on?",
        "",
        "Generated by `bench/value_probe.py` (do not edit); the method is in its docstring and "
        f"in `goalrl/benchmark/value_probe.py`. State-cpu table checkpoints at step {args.step} "
        "(fixed in advance), Push test goals; intervals over seeds (path probe: mean [min–max]) "
        "or by rliable's stratified bootstrap over seeds and goals (lookahead).",
        "",
        "## 1. Does the value rise along the scripted pusher's path?",
        "",
        *paths,
        "",
        "## 2. Acting on the value with the simulator as a one-step model",
        "",
        "Privileged: the simulator predicts each candidate's next state. Its rows are in the "
        f"results store under act_rule `{LOOKAHEAD}`, phase `{PHASE}`; the actor's are the "
        "table's own rows of the same checkpoints (its last step, not always the validation "
        "choice) on the same goals.",
        "",
        *lookahead,
        "",
        f"This run: {time.process_time() - start:.0f} s of CPU.",
        "",
    ])
    write_atomic(OUT, text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
