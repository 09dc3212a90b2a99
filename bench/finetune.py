"""Benchmark (issue 42): fine-tuning on a reward-defined task against fair baselines.

    python bench/finetune.py --profile smoke                  # minutes: the pipeline end to end
    python bench/finetune.py --profile gpu --task tray        # one of the two tasks
    python bench/finetune.py --profile gpu --dry-run          # the plan: stages and commands
    python bench/finetune.py --profile gpu                    # run (or continue) the table
    python bench/finetune.py --profile gpu --report-only      # the page from the store
    python bench/finetune.py --profile state-cpu --dry-run    # the CPU plan, time estimated
    python bench/finetune.py --profile state-cpu --task grasp --seeds 0   # one seed, ~3 CPU h
    python bench/finetune.py --profile state-cpu --task grasp --seeds 0 --methods \
        task_bc_success_from_scratch     # only these rows (and the pretraining they need)

Profiles, tasks, methods and the commands of every stage: bench/finetune_plan.py (its
docstring has the profile table). smoke-state and state-cpu are the state variants: data
collected at image_size=8, every network reads state vectors (goalrl.envs.state)
(``encoder.kind=state``), online episodes and evaluation act on the env's ``state``; AM's
zero-shot rollouts reach the scene's goal state. Their budgets come from measured speeds
(bench/finetune_speed.py), so --dry-run prints each stage's CPU time.

Two reward-defined tasks (``--task``): goalrl/Grasp-v0 and goalrl/RearrangeTray-v0 (any
object into the tray, goalrl.envs.tray_task). Every step is a real ``goalrl`` command. Per task
and training seed: AM and GCBC pretrained on the same unlabeled play data of the scene; then
one ``goalrl finetune`` per method (``configs/recipe/``), each an offline then an online phase
on the same labeled data, the task given only by its reward:

- task_q_from_am_aux: the task Q fine-tuned from AM (play data as the auxiliary loss), and
  task_q_calql_from_am_aux with Cal-QL's calibration;
- task_q_from_scratch_aux: the fair scratch run: the same play data as its auxiliary loss and
  the same total updates (pretraining + offline fine-tuning steps, all offline);
- task_q_from_gcbc_encoder_aux: GCBC pretraining, then the same fine-tuning (GCBC has no Q
  network: its encoder carries over, the Q heads start fresh);
- task_bc_success_from_scratch (as many updates as pretraining + fine-tuning) and
  task_bc_success_from_gcbc: behaviour cloning on the labeled episodes that end in success;
- am_zero_shot_goal_image: the pretrained AM reaching the scene's goal image, no fine-tuning
  (the ceiling of not fine-tuning);
- with ``--value-inits``, task_q_from_<agent>_encoder_aux for GCIVL, GCIQL, CRL and HIQL:
  each agent pretrained on the same play data, its acting policy's encoder starting the same
  fine-tuning as GCBC's does.

Each run's offline-end and final checkpoints are evaluated on ``test_episodes`` env seeds from
1,000,000 up (never used in training) into the results store (goalrl/results.py), one row per
rollout, ``method`` naming what acts and from what. The dip at the switch to online comes from
each run's training curve (``dip_after_switch`` of its summary, also on its final rows).

Resumable: a stage whose summary.json exists is reused, an unfinished pretraining or
fine-tuning run resumes from its latest checkpoint (``resume=true``), an evaluation whose rows
are in the store is skipped, and a stage whose rows are all in the store is not run at all
(``unstored``: a fresh clone without the workdir redoes only what the store lacks).

The page (docs/benchmarks/finetune.md; finetune_state.md for state-cpu) is written from the
store's rows of that profile (each row names its ``bench_profile``); the smoke profiles write
their store and page under their workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from finetune_plan import (  # noqa: F401  (the plan's names, re-exported for tests)
    METHODS,
    PROFILES,
    TASKS,
    VALUE_INIT_METHODS,
    ZERO_SHOT,
    estimate,
    estimate_lines,
    plan_methods,
    profile_table,
    shell,
    stages,
    unstored,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks"
TARGETS = {"vs_scratch": 0.20, "online": 0.70, "dip": 0.10, "vs_zero_shot": 0.15}


# ------------------------------------------------------------------------------- running

def goalrl(args: list[str], log: Path) -> None:
    """``python -m goalrl.cli <args>``, stdout and stderr to ``log``; SystemExit on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log.parent.mkdir(parents=True, exist_ok=True)
    from children import die_with_parent  # bench/ (this script's folder)

    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "goalrl.cli", *args], stdout=f,
                              stderr=subprocess.STDOUT, env=env, cwd=REPO,
                              preexec_fn=die_with_parent)
    if proc.returncode != 0:
        raise SystemExit(f"{shell(args[:1])} failed (exit {proc.returncode}); see {log}")


def run_stage(stage: dict[str, Any], logs: Path) -> None:
    """Run a stage unless its summary.json exists; an unfinished one is cleaned or resumed."""
    out: Path = stage["out"]
    if (out / "summary.json").is_file():
        print(f"[{stage['name']}] done, reusing {out}", flush=True)
        return
    args = list(stage["args"])
    if out.exists() and stage["kind"] in ("pretrain", "finetune"):
        args.append("resume=true")  # training continues from its latest checkpoint
    elif out.exists():
        shutil.rmtree(out)  # a killed collection: start it again
    print(f"[{stage['name']}] {shell(args)}", flush=True)
    goalrl(args, logs / f"{stage['name'].replace('/', '_')}.log")


def stored_points(store: Path, profile: str, env: str) -> set[tuple[str, int, str]]:
    """(method, train seed, bench point) of the profile's rows of scene ``env`` in the store."""
    from goalrl.results import read_rows

    return {(r["method"], r["train_seed"], r["bench_point"])
            for r in (read_rows(store) if store.is_file() else [])
            if r.get("bench_profile") == profile and r.get("env") == env and "bench_point" in r}


def evaluate(ckpt: Path, method: str, point: str, episodes: int, store: Path, logs: Path,
             extra: dict[str, Any] | None = None) -> None:
    """``goalrl eval`` of one checkpoint on ``episodes`` test seeds (a state checkpoint acts on
    the env's state, and AM's zero-shot goal is the scene's goal state); its rows go to the
    store with ``method`` (what acts, from what), ``bench_point`` and ``extra`` fields."""
    from goalrl.results import append_rows, read_rows

    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        goalrl(["eval", f"ckpt={ckpt}", f"episodes={episodes}", "videos=0",
                f"out={Path(tmp) / 'eval'}", f"results={rows_file}"],
               logs / f"eval_{method}_{ckpt.parent.parent.parent.name}_{point}.log")
        rows = read_rows(rows_file)
    for row in rows:
        row.update(method=method, bench_point=point, **(extra or {}))
    append_rows(store, rows)


def run_pipeline(profile: str, work: Path, store: Path, seeds: tuple[int, ...] | None,
                 task: str = "grasp", value_inits: bool = False,
                 only: frozenset[str] | None = None) -> None:
    """Every stage of ``task`` (with ``value_inits`` the value agents' too; with ``only`` just
    those methods) and its evaluations into ``store`` (see the module doc)."""
    p = PROFILES[profile]
    logs = work / task / "logs"
    done = stored_points(store, profile, TASKS[task][0])
    tag = {"bench_profile": profile}  # a profile's table reads its own rows only
    zero_shot = only is None or ZERO_SHOT in only
    for stage in unstored(stages(profile, work, seeds, task, value_inits, only), done, zero_shot):
        run_stage(stage, logs)
        if zero_shot and stage["kind"] == "pretrain" and stage["agent"] == "am":
            ckpt = latest_step(stage["out"])
            if (ZERO_SHOT, stage["seed"], "zero_shot") not in done:
                evaluate(ckpt, ZERO_SHOT, "zero_shot", p["test_episodes"], store, logs, tag)
        if stage["kind"] != "finetune":
            continue
        summary = json.loads((stage["out"] / "summary.json").read_text())
        points = {"offline_end": summary["offline_checkpoint"], "final": summary["checkpoint"]}
        for point, ckpt in points.items():
            if ckpt is None or (stage["method"], stage["seed"], point) in done:
                continue
            extra = {**tag, **({"run_dip_after_switch": summary["dip_after_switch"]}
                               if point == "final" else {})}
            evaluate(Path(ckpt), stage["method"], point, p["test_episodes"], store, logs, extra)


def latest_step(run: Path) -> Path:
    from goalrl.checkpoint import resolve_checkpoint

    return Path(resolve_checkpoint(run))


# ------------------------------------------------------------------------------- the table

def cells(rows: list[dict[str, Any]], env: str, profile: str | None = None
          ) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """(method, bench_point) -> train_seed -> {rate, n, dip, act_rule}, from the store rows of
    scene ``env`` (and of bench ``profile`` where given: state and image runs share method
    names). Pure."""
    grouped: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if profile is not None and row.get("bench_profile") != profile:
            continue
        if "bench_point" in row and row["env"] == env:
            grouped[(row["method"], row["bench_point"], row["train_seed"])].append(row)
    out: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for (method, point, seed), group in grouped.items():
        out[(method, point)][seed] = {
            "rate": sum(r["success"] for r in group) / len(group), "n": len(group),
            "dip": group[0].get("run_dip_after_switch"), "act_rule": group[0]["act_rule"],
        }
    return out


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def spread(per_seed: dict[int, dict[str, Any]], key: str = "rate") -> str:
    """Mean over seeds and the per-seed values, e.g. '52% (48, 50, 58)'."""
    values = [per_seed[s][key] for s in sorted(per_seed) if per_seed[s][key] is not None]
    if not values:
        return "–"
    return f"{pct(mean(values))} ({', '.join(f'{100 * v:.0f}' for v in values)})"


def table(c: dict[tuple[str, str], dict[int, dict[str, Any]]]) -> list[str]:
    lines = ["| method | what acts | seeds | rollouts per seed | end of offline | after online "
             "| dip at the switch |", "|---|---|---:|---:|---:|---:|---:|"]
    # the value agents' rows (--value-inits) only once they have run
    value_rows = [m for m in VALUE_INIT_METHODS if any(m == method for method, _ in c)]
    for method in [*METHODS, *value_rows, ZERO_SHOT]:
        off, fin = c.get((method, "offline_end"), {}), c.get((method, "final"), {})
        if method == ZERO_SHOT:
            off = c.get((method, "zero_shot"), {})
        some = off or fin
        if not some:
            lines.append(f"| {method} | – | 0 | – | not run | not run | – |")
            continue
        first = next(iter(some.values()))
        lines.append(f"| {method} | {first['act_rule']} | {len(some)} | {first['n']} "
                     f"| {spread(off)} | {spread(fin) if method != ZERO_SHOT else '–'} "
                     f"| {spread(fin, 'dip') if method != ZERO_SHOT else '–'} |")
    return lines


def seed_mean(c: dict, method: str, point: str, key: str = "rate",
              seeds: set[int] | None = None) -> float | None:
    """Mean over the seeds that have the cell (only those in ``seeds`` when given)."""
    per_seed = c.get((method, point), {})
    return mean([v[key] for s, v in per_seed.items()
                 if v[key] is not None and (seeds is None or s in seeds)])


def shared_seeds(c: dict, *cells: tuple[str, str]) -> set[int]:
    """Seeds every one of ``cells`` (method, point) has: a comparison of two rows is made on
    these, so a row with more finished seeds is not set against one with fewer."""
    sets = [{s for s, v in c.get(cell, {}).items() if v["rate"] is not None} for cell in cells]
    return set.intersection(*sets) if sets else set()


def on_seeds(seeds: set[int]) -> str:
    return f" on seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, sorted(seeds)))}"


def verdicts(c: dict[tuple[str, str], dict[int, dict[str, Any]]],
             env: str = "goalrl/Grasp-v0") -> list[str]:
    """Each target of issue 42 on the seed means (a comparison of two rows on the seeds both
    have): met, not met, or not run (the 70% after online is Grasp-v0's; other scenes report
    the figure without a target). Pure."""
    def verdict(ok: bool | None) -> str:
        return "not run" if ok is None else "met" if ok else "not met"

    vs_scratch = shared_seeds(c, ("task_q_from_am_aux", "offline_end"),
                              ("task_q_from_scratch_aux", "offline_end"))
    pre = seed_mean(c, "task_q_from_am_aux", "offline_end", seeds=vs_scratch)
    scratch = seed_mean(c, "task_q_from_scratch_aux", "offline_end", seeds=vs_scratch)
    finals = {m: seed_mean(c, m, "final") for m in METHODS}
    best_q = max((v for m, v in finals.items() if m.endswith("from_am_aux") and v is not None),
                 default=None)
    # against zero-shot: the best fine-tuned row, each on the seeds it shares with zero-shot
    paired_zero = {m: shared_seeds(c, (m, "final"), (ZERO_SHOT, "zero_shot"))
                   for m in METHODS if m.endswith("from_am_aux")}
    tuned = {m: (seed_mean(c, m, "final", seeds=seeds),
                 seed_mean(c, ZERO_SHOT, "zero_shot", seeds=seeds), seeds)
             for m, seeds in paired_zero.items() if seeds}
    best_tuned, zero, zero_seeds = max(tuned.values(), key=lambda t: t[0] - t[1],
                                       default=(None, None, set()))
    dip = seed_mean(c, "task_q_calql_from_am_aux", "final", "dip")
    at_switch = seed_mean(c, "task_q_calql_from_am_aux", "offline_end")
    dip_verdict = verdict(None if dip is None else dip <= TARGETS["dip"])
    if dip is not None and at_switch is not None and at_switch <= TARGETS["dip"]:
        dip_verdict = (f"not testable: success at the switch is {pct(at_switch)}, so no drop "
                       f"could exceed {points(TARGETS['dip'])}")
    both = None if pre is None or scratch is None else pre - scratch >= TARGETS["vs_scratch"]
    return [
        f"- pretrained vs the fair scratch run at the end of the offline phase: {pct(pre)} vs "
        f"{pct(scratch)}{on_seeds(vs_scratch) if vs_scratch else ''} (target: at least "
        f"{points(TARGETS['vs_scratch'])} above): "
        f"**{verdict(both)}**",
        "- after the online phase (best of task_q_from_am_aux, task_q_calql_from_am_aux): "
        + (f"{pct(best_q)} (target >= {pct(TARGETS['online'])}): "
           f"**{verdict(None if best_q is None else best_q >= TARGETS['online'])}**"
           if env == "goalrl/Grasp-v0" else f"{pct(best_q)} (no target on this scene)"),
        f"- dip at the switch with calibration (task_q_calql_from_am_aux): {points(dip)} (target "
        f"<= {points(TARGETS['dip'])}): **{dip_verdict}**",
        f"- fine-tuned vs zero-shot goal reaching: {pct(best_tuned)} vs {pct(zero)}"
        f"{on_seeds(zero_seeds) if zero_seeds else ''} (target: at least "
        f"{points(TARGETS['vs_zero_shot'])} above): **"
        + verdict(None if best_tuned is None or zero is None
                  else best_tuned - zero >= TARGETS["vs_zero_shot"]) + "**",
    ]


TARGETS_HEAD = "Targets (on the seed means; a comparison of two rows uses the seeds both have):"


def points(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} points"


def is_state(profile: str) -> bool:
    """The profile's networks read state vectors (its net fields set encoder.kind=state)."""
    return "encoder.kind=state" in PROFILES[profile]["net"]


def report(profile: str, store: Path, work: Path, seeds: tuple[int, ...] | None = None) -> str:
    """The page: per task its table and targets, then the protocol and the commands."""
    from goalrl.results import read_rows

    p = PROFILES[profile]
    rows = read_rows(store) if store.is_file() else []
    sections, commands = [], []
    for task, (env, _, _) in TASKS.items():
        c = cells(rows, env, profile)
        commands += [shell(s["args"]).replace(f"{work}/", "<workdir>/")
                     for s in stages(profile, work, seeds, task)]
        sections += [
            f"## {env}", "",
            *([] if c else [f"**Not run yet.** No row of `{env}` is in the store: "
                            f"`python bench/finetune.py --profile {profile} --task {task}`.", ""]),
            *table(c), "", TARGETS_HEAD, "", *verdicts(c, env), "",
        ]
    where = store.relative_to(REPO) if store.is_relative_to(REPO) else store
    return "\n".join([
        "# Fine-tuning on reward-defined tasks against fair baselines",
        "",
        f"`python bench/finetune.py --profile {profile}` (issue 42). Two tasks, each given "
        "only by its reward: `goalrl/Grasp-v0` (lift one of two held-out objects) and "
        "`goalrl/RearrangeTray-v0` (put any of three objects into the tray). Labeled data with "
        "rewards, the simulator's reward online, no goal image at fine-tuning or test time "
        "(except the zero-shot row: goal reaching with the scene's goal image). Every method "
        "has the same labeled data, the same unlabeled play data where it uses any, and the "
        "same total updates: see [the protocol](#protocol).",
        "",
        *([f"Profile {profile}: every network reads state vectors (the arm's and every "
           f"object's coordinates and the tray's position, the data collected at "
           f"{p['image_size']} px), not images; the zero-shot row "
           "reaches the scene's goal state (`desired_goal_state`).", ""]
          if is_state(profile) else []),
        f"Store: `{where}`; training seeds {', '.join(map(str, seeds or p['seeds']))}; "
        f"{p['test_episodes']} test rollouts per seed and point (env seeds from 1,000,000 up). "
        "Each cell: the mean over seeds, then the seeds' own rates. The dip comes from the "
        f"training curve ({p['eval_episodes']} rollouts per point).",
        "",
        *sections,
        PROTOCOL,
        "",
        "## Profiles",
        "",
        "`--profile` (bench/finetune_plan.py). The state profiles read state vectors "
        "(goalrl.envs.state) in every network and write their own page "
        "(finetune_state.md); their time comes from the speeds bench/finetune_speed.py "
        "measures ([finetune_speed.md](finetune_speed.md); `--dry-run` prints it per stage).",
        "",
        *profile_table(),
        "",
        "Commands (`<workdir>` is `--workdir`); each run's `summary.json` and the store rows "
        "hold the rest:",
        "",
        "```",
        *commands,
        "```",
        "",
        HISTORY,
        "",
    ])


PROTOCOL = """## Protocol

- **Data**, per task: one unlabeled play set of its scene (`policy=play`; its rewards are
  never read in pretraining) and one small labeled set of noisy scripted attempts with the
  rewards recorded (`policy=grasp`: grasp and lift; `policy=tray`: pick an object and place
  it in the tray; both miss part of the time), shared by every method and seed.
- **task_q_from_am_aux**: `goalrl pretrain agent=am` on the play data, then
  `goalrl finetune recipe=pretrained`: the task Q (CEM on it acts) learns the reward from a
  learned task embedding, with the play data kept as the auxiliary goal-reaching loss; an
  offline phase, then an online phase (one policy episode every `updates_per_episode`
  updates, half of each batch online). **task_q_calql_from_am_aux** adds
  `agent.calibration=calql` (Cal-QL: only the policy's actions are floored at the data's
  Monte Carlo return in the conservative term).
- **task_q_from_scratch_aux** (`recipe=scratch_play`): the same task Q from random weights,
  the same play data as its auxiliary loss, and as many offline updates as pretraining and
  offline fine-tuning together; the same online phase.
- **task_q_from_gcbc_encoder_aux** (`recipe=gcbc_init`): `goalrl pretrain agent=gcbc` on the
  play data, then the same fine-tuning. GCBC has no Q network: its encoder (conv trunk,
  proprio embedding, fusion MLP) carries over and the Q heads start fresh; the auxiliary loss
  trains them on the play data.
- **task_bc_success_from_scratch** (`recipe=bc_success`, as many updates as pretraining and
  fine-tuning) and **task_bc_success_from_gcbc** (`recipe=bc_gcbc_init`, every GCBC weight):
  behaviour cloning, with a learned task embedding, of the labeled episodes that end in
  success (online, of the successful policy episodes). It uses no play data.
- **am_zero_shot_goal_image**: the pretrained AM with the scene's goal image, no fine-tuning:
  the ceiling of not fine-tuning.
- **task_q_from_<agent>_encoder_aux** (`--value-inits`: GCIVL, GCIQL, CRL, HIQL): the agent
  pretrained on the play data, then the same fine-tuning as from GCBC's encoder (its acting
  policy's encoder carries over); its rows appear once run. QRL can start it the same way
  (`init=<checkpoint>`) and is not in the plan.
- **Dip**: success at the end of the offline phase minus the lowest success over the first
  half of the online phase, on the training curve (0 if it never drops)."""

HISTORY = """## History

The page's earlier figures (2026-11-22: one seed, 30 rollouts per point, the goal image as the
task input, the old calibration rule that floored every candidate action, a scratch run with
3,000 updates and no play data) are kept as history in
[finetune_history.md](finetune_history.md); they measured zero-shot goal reaching more than
fine-tuning (issue 42)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="data, checkpoints and runs (default: runs/bench_finetune_<profile>)")
    ap.add_argument("--store", type=Path, default=None,
                    help="results store (default: the one store, docs/results/results.jsonl; "
                         "smoke: <workdir>/results.jsonl)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="training seeds (default: the profile's)")
    ap.add_argument("--task", choices=[*TASKS, "all"], default="all",
                    help="which reward-defined task (default: both, one after the other)")
    ap.add_argument("--value-inits", action="store_true",
                    help="also fine-tune from GCIVL, GCIQL, CRL and HIQL pretraining (their "
                         "policy's encoder; about as costly as the GCBC-encoder row each)")
    ap.add_argument("--methods", nargs="+", default=None,
                    help="only these rows (and the pretraining they start from), e.g. to "
                         f"complete a seed's table; {ZERO_SHOT} is AM's pretraining's")
    ap.add_argument("--dry-run", action="store_true", help="print the stages, run nothing")
    ap.add_argument("--report-only", action="store_true", help="write the page from the store")
    args = ap.parse_args(argv)
    work = (args.workdir or REPO / "runs" / f"bench_finetune_{args.profile}").resolve()
    smoke = args.profile.startswith("smoke")
    seeds = tuple(args.seeds) if args.seeds else None
    store = (args.store or (work / "results.jsonl" if smoke
                            else REPO / "docs" / "results" / "results.jsonl")).resolve()
    # the image profiles' page is finetune.md; the state profile's its own
    name = "finetune_state.md" if is_state(args.profile) else "finetune.md"
    page = work / name if smoke else DOCS / name
    tasks = list(TASKS) if args.task == "all" else [args.task]
    only = frozenset(args.methods) if args.methods else None
    try:
        plan_methods(args.value_inits, only)
    except ValueError as e:
        ap.error(str(e))
    if args.dry_run:
        for task in tasks:
            cpu = estimate(args.profile, task, seeds, work, value_inits=args.value_inits,
                           only=only) or {}
            plan = stages(args.profile, work, seeds, task, args.value_inits, only)
            needed = {s["name"] for s in unstored(plan, stored_points(
                store, args.profile, TASKS[task][0]), only is None or ZERO_SHOT in only)}
            for stage in plan:
                state = ("rows in the store" if stage["name"] not in needed else "done"
                         if (stage["out"] / "summary.json").is_file() else "to run")
                est = (f", about {cpu[stage['name']] / 60:.0f} CPU min"
                       if stage["name"] in cpu else "")
                print(f"[{stage['name']}] {state}{est}: {shell(stage['args'])}")
        print(*estimate_lines(args.profile, tasks, seeds, args.value_inits, only), sep="\n")
        print(f"store: {store}; page: {page}")
        return 0
    for task in [] if args.report_only else tasks:
        run_pipeline(args.profile, work, store, seeds, task, args.value_inits, only)
    text = report(args.profile, store, work, seeds)
    page.parent.mkdir(parents=True, exist_ok=True)
    tmp = page.with_name(f".{page.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, page)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
