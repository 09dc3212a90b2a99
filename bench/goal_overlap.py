"""Which held-out goals does each policy reach? Per-goal agreement between evaluations.

Success rates of 66–76% on the same 100 Push goals can come from policies that fail the same
hard goals or different ones, and two Wilson intervals that overlap say little about a paired
difference. This reads the per-rollout rows of ``goalrl eval`` summaries taken on the same env
and seeds (optionally adding the noise-free scripted pusher that reads the goal layout, rolled
out on those seeds) and prints

  - each policy's success on the shared goals;
  - for each pair: goals both reach, only the first, only the second, and McNemar's exact
    two-sided p-value on the discordant goals (a paired test: same goals, different policies);
  - goals every policy reaches, goals at least one reaches, goals none reaches;
  - with ``--pool NAME=TEXT`` (repeatable), every evaluation whose label contains TEXT pooled
    into one group (e.g. several checkpoints and training seeds of one method): its success
    over all those rollouts with a 95% interval from resampling goals, and for each pair of
    groups the paired difference with its interval. Goals are the resampled unit because
    every evaluation shares them; the interval covers which goals were drawn, not how far
    another training seed would land;
  - with ``--by-goal-kind``, each policy's success split by what the goal asks (the env is
    reset at every seed to read its start and goal layouts): an object into the tray, an
    object moved farther than a push goes (``FAR`` m, a pick-and-place), or a nearer move;
  - with ``--any-step``, all of the above for goals met at any step of a rollout rather
    than at the last (needs summaries with ``first_success_step``, goalrl eval since
    2026-12-05).

    python bench/goal_overlap.py GCBC=<eval dir> "AM, prior mean=<eval dir>" ... \\
        [--scripted-push] [--pool NAME=TEXT ...] [--by-goal-kind] [--any-step] \\
        [--out docs/benchmarks/goal_overlap_push.md]

An argument is LABEL=PATH, PATH an eval output folder or its summary.json. A label given
twice joins two evaluations of one policy on disjoint seeds (more goals).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/pretrain.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

Outcomes = dict[int, bool]  # env seed -> goal reached
FAR = 0.15  # m: the longest push a Push/Rearrange goal skill makes (goalrl.envs.play)
GOAL_KINDS = ("into the tray", f"moved over {FAR:.2f} m", f"moved up to {FAR:.2f} m")


def outcomes_of(summary: dict[str, Any], source: str,
                any_step: bool = False) -> tuple[str, Outcomes]:
    """(scene, seed -> success) from a ``goalrl eval`` summary; ``source`` names it in errors.

    The scene is the env id plus the options it was made with (``env_kwargs``, e.g.
    ``skills_per_goal``): the same seeds draw other goals under other options.
    ``any_step`` counts a goal met at any step of the rollout, not only at the last.
    """
    rows = summary.get("rollouts")
    if not rows:
        raise ValueError(f"{source}: no 'rollouts' rows (written by `goalrl eval`)")
    out: Outcomes = {}
    for row in rows:
        if row["seed"] in out:
            raise ValueError(f"{source}: seed {row['seed']} appears twice")
        if any_step and "first_success_step" not in row:
            raise ValueError(f"{source}: rollouts have no 'first_success_step' (written by an "
                             "older `goalrl eval`; evaluate again for --any-step)")
        met = row["first_success_step"] is not None if any_step else row["success"]
        out[int(row["seed"])] = bool(met)
    return scene_name(summary.get("env"), summary.get("env_kwargs") or {}), out


def scene_name(env_id: Any, env_kwargs: dict[str, Any]) -> str:
    """``goalrl/Push-v0`` or ``goalrl/Push-v0 max_episode_steps=100 skills_per_goal=2``."""
    return " ".join([str(env_id), *(f"{k}={v}" for k, v in sorted(env_kwargs.items()))])


def parse_scene(scene: str) -> tuple[str, dict[str, Any]]:
    """Inverse of ``scene_name``: (env id, gym.make options; numbers parsed as numbers)."""
    env_id, *options = scene.split(" ")
    kwargs: dict[str, Any] = {}
    for option in options:
        key, _, value = option.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return env_id, kwargs


def load_outcomes(path: Path, any_step: bool = False) -> tuple[str, Outcomes]:
    file = path / "summary.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such eval summary")
    return outcomes_of(json.loads(file.read_text()), str(file), any_step)


def merge_goals(a: Outcomes, b: Outcomes, label: str) -> Outcomes:
    """One policy's outcomes from two evaluations on disjoint seed ranges (more goals)."""
    shared = sorted(a.keys() & b.keys())
    if shared:
        raise SystemExit(f"{label!r}: seed {shared[0]} is in two of its evaluations")
    return {**a, **b}


def pair_counts(a: Outcomes, b: Outcomes) -> tuple[int, int, int, int]:
    """(both reach, only a, only b, neither) over the seeds both evaluated."""
    seeds = a.keys() & b.keys()
    both = sum(a[s] and b[s] for s in seeds)
    only_a = sum(a[s] and not b[s] for s in seeds)
    only_b = sum(b[s] and not a[s] for s in seeds)
    return both, only_a, only_b, len(seeds) - both - only_a - only_b


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the discordant goals as Binomial(n, 1/2) draws."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def format_p(p: float) -> str:
    """Two decimals, but "< 0.01" rather than a p-value that rounds to a misleading 0.00."""
    return "< 0.01" if p < 0.005 else f"{p:.2f}"


def coverage(outcomes: list[Outcomes]) -> dict[str, int]:
    """How many shared goals every policy, at least one, and none reaches."""
    seeds = set.intersection(*(set(o) for o in outcomes))
    reached = [sum(o[s] for o in outcomes) for s in seeds]
    return {
        "goals": len(seeds),
        "all": sum(r == len(outcomes) for r in reached),
        "any": sum(r > 0 for r in reached),
        "none": sum(r == 0 for r in reached),
    }


def report(labels: list[str], outcomes: list[Outcomes], pairs: bool = True) -> list[str]:
    """Markdown lines: per-policy success, pairwise agreement (unless not ``pairs``), coverage."""
    seeds = set.intersection(*(set(o) for o in outcomes))
    lines = ["| policy | goals reached |", "|---|---:|"]
    lines += [f"| {lab} | {sum(o[s] for s in seeds)} / {len(seeds)} |"
              for lab, o in zip(labels, outcomes)]
    if pairs:
        lines += ["", *pair_table(labels, outcomes)]
    cov = coverage(outcomes)
    lines += ["", f"Of {cov['goals']} goals: every policy reaches {cov['all']}, at least one "
              f"{cov['any']}, none {cov['none']}."]
    return lines


def pair_table(labels: list[str], outcomes: list[Outcomes]) -> list[str]:
    """Markdown lines: for every pair, the goals both, one or neither reach, McNemar's p."""
    lines = ["| A | B | both | only A | only B | neither | McNemar p |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (la, a), (lb, b) in itertools.combinations(zip(labels, outcomes), 2):
        both, only_a, only_b, neither = pair_counts(a, b)
        lines.append(f"| {la} | {lb} | {both} | {only_a} | {only_b} | {neither} | "
                     f"{format_p(mcnemar_exact_p(only_a, only_b))} |")
    return lines


def per_goal_rates(outcomes: list[Outcomes], seeds: list[int]) -> np.ndarray:
    """(goals,): for each seed, the share of the evaluations that reach its goal."""
    return np.array([np.mean([o[s] for o in outcomes]) for s in seeds])


def goal_bootstrap_interval(per_goal: np.ndarray, rng: np.random.Generator,
                            resamples: int = 10_000, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``per_goal`` (goals,) over goals drawn with
    replacement: the spread the choice of goals alone would give the pooled success."""
    draws = rng.integers(0, len(per_goal), size=(resamples, len(per_goal)))
    means = per_goal[draws].mean(axis=1)  # (resamples,)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def pool_report(pools: dict[str, list[Outcomes]], seed: int = 0) -> list[str]:
    """Markdown lines: each pool's success over its rollouts with a goal-bootstrap interval,
    then each pair's paired difference (same goals, resampled together)."""
    seeds = sorted(set.intersection(*(set(o) for outs in pools.values() for o in outs)))
    rates = {name: per_goal_rates(outs, seeds) for name, outs in pools.items()}  # (goals,)
    rng = np.random.default_rng(seed)
    lines = [f"Pooled over evaluations, {len(seeds)} shared goals, 95% intervals from "
             "resampling goals:", "", "| pool | evaluations | rollouts reaching | success |",
             "|---|---:|---:|---:|"]
    for name, outs in pools.items():
        reached = sum(o[s] for o in outs for s in seeds)
        lo, hi = goal_bootstrap_interval(rates[name], rng)
        lines.append(f"| {name} | {len(outs)} | {reached} / {len(outs) * len(seeds)} | "
                     f"{rates[name].mean():.1%} ({lo:.1%}–{hi:.1%}) |")
    pairs = list(itertools.combinations(rates, 2))
    if pairs:
        lines += ["", "| A | B | A − B, points | 95% interval |", "|---|---|---:|---:|"]
    for a, b in pairs:
        lo, hi = goal_bootstrap_interval(rates[a] - rates[b], rng)
        lines.append(f"| {a} | {b} | {points((rates[a] - rates[b]).mean())} | "
                     f"{points(lo)} to {points(hi)} |")
    return lines


def points(share: float) -> str:
    """A signed difference in percentage points, one decimal; never "-0.0"."""
    return f"{round(100 * share, 1) + 0.0:+.1f}"  # + 0.0 turns a rounded -0.0 into 0.0


def pools_of(specs: list[str], labels: list[str],
             outcomes: list[Outcomes]) -> dict[str, list[Outcomes]]:
    """``NAME=TEXT`` specs -> name -> the outcomes whose label contains TEXT."""
    pools: dict[str, list[Outcomes]] = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or not name or not text:
            raise SystemExit(f"--pool {spec!r}: expected NAME=TEXT")
        members = [o for label, o in zip(labels, outcomes) if text in label]
        if not members:
            raise SystemExit(f"--pool {spec!r}: no evaluation label contains {text!r}")
        pools[name] = members
    return pools


def goal_kind(start: Any, goal: Any) -> str:
    """Which of ``GOAL_KINDS`` a goal is: judged on the object the goal moves most
    (``Layout``s of goalrl.envs.tasks; a tray goal needs a scene with a tray)."""
    from goalrl.envs.tasks import TRAY_HALF

    moved = {name: float(np.linalg.norm(goal.objects[name][:2] - start.objects[name][:2]))
             for name in start.objects}
    name = max(moved, key=moved.__getitem__)
    if goal.tray is not None and np.all(np.abs(goal.objects[name][:2] - goal.tray[:2]) < TRAY_HALF):
        return GOAL_KINDS[0]
    return GOAL_KINDS[1] if moved[name] > FAR else GOAL_KINDS[2]


def goal_kinds(scene: str, seeds: set[int]) -> dict[int, str]:
    """seed -> goal kind, from the layouts ``env.reset(seed=...)`` draws (renders no rollout)."""
    import gymnasium as gym

    import goalrl.envs  # noqa: F401  (registers the scenes)

    env_id, kwargs = parse_scene(scene)
    env = gym.make(env_id, image_size=32, **kwargs)  # goal layouts do not depend on image size
    kinds = {}
    for seed in sorted(seeds):
        env.reset(seed=seed)
        kinds[seed] = goal_kind(env.unwrapped.start_layout, env.unwrapped.goal_layout)
    env.close()
    return kinds


def kind_report(labels: list[str], outcomes: list[Outcomes], kinds: dict[int, str]) -> list[str]:
    """Markdown lines: goals reached per policy, split by goal kind (kinds with goals only)."""
    present = [k for k in GOAL_KINDS if k in kinds.values()]
    lines = ["| policy | " + " | ".join(present) + " |", "|---|" + "---:|" * len(present)]
    for label, out in zip(labels, outcomes):
        cells = []
        for kind in present:
            seeds = [s for s in out if kinds.get(s) == kind]
            cells.append(f"{sum(out[s] for s in seeds)} / {len(seeds)}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def parse_spec(spec: str) -> tuple[str, Path]:
    label, sep, path = spec.rpartition("=")
    if not sep or not label:
        raise SystemExit(f"{spec!r}: expected LABEL=PATH")
    return label, Path(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("evals", nargs="+", help="LABEL=PATH to a `goalrl eval` folder or summary")
    ap.add_argument("--scripted-push", action="store_true",
                    help="add the noise-free scripted pusher (privileged state) on Push")
    ap.add_argument("--pool", action="append", default=[], metavar="NAME=TEXT",
                    help="pool every evaluation whose label contains TEXT (repeatable)")
    ap.add_argument("--no-pairs", action="store_true",
                    help="leave out the table of every pair (long for many evaluations)")
    ap.add_argument("--by-goal-kind", action="store_true",
                    help="split each policy's success by goal kind (tray / far / near move)")
    ap.add_argument("--any-step", action="store_true",
                    help="count a goal met at any step of a rollout, not only at the last")
    ap.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = ap.parse_args()

    by_label: dict[str, Outcomes] = {}  # a label given twice adds the second eval's goals
    envs = set()
    for spec in args.evals:
        label, path = parse_spec(spec)
        env, out = load_outcomes(path, args.any_step)
        by_label[label] = merge_goals(by_label.get(label, {}), out, label)
        envs.add(env)
    labels, outcomes = list(by_label), list(by_label.values())
    if len(envs) > 1:
        raise SystemExit(f"evaluations on different envs: {sorted(envs)}")
    if args.scripted_push:
        from pretrain import SCENES, scripted_push_summary

        env_id, kwargs = parse_scene(next(iter(envs)))
        if env_id != SCENES["push"]:
            raise SystemExit(f"--scripted-push needs Push evaluations, got {sorted(envs)}")
        seeds = set.intersection(*(set(o) for o in outcomes))
        summary = scripted_push_summary(max(seeds) - min(seeds) + 1, first_seed=min(seeds),
                                        env_kwargs=kwargs)
        env, out = outcomes_of(summary, "scripted pusher", args.any_step)
        labels.append("scripted pusher (privileged)"), outcomes.append(out)

    lines = report(labels, outcomes, pairs=not args.no_pairs)
    scene = envs.pop()
    if args.pool:
        lines += ["", *pool_report(pools_of(args.pool, labels, outcomes))]
    if args.by_goal_kind:
        kinds = goal_kinds(scene, set.intersection(*(set(o) for o in outcomes)))
        lines += ["", "Goals reached by kind of goal (the object the goal moves most):", ""]
        lines += kind_report(labels, outcomes, kinds)
    print("\n".join(lines))
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        command = shlex.join(["python", "bench/goal_overlap.py", *sys.argv[1:]])
        counted = ", goals met at any step" if args.any_step else ""
        tmp.write_text("\n".join([f"# Per-goal agreement ({scene}{counted})", "",
                                  f"Written by `{command}`.", ""] + lines) + "\n")
        tmp.replace(args.out)  # atomic: a crash never leaves half a report


if __name__ == "__main__":
    main()
