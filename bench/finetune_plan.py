"""The plan of bench/finetune.py (issue 42): tasks, profiles, methods, every stage's goalrl
command, and for profiles with measured speeds the CPU time each stage will take.

Profiles (``PROFILES``; keep the table in docs/benchmarks/finetune.md's protocol in step):

    profile      observations             play/labeled  pretrain  offline+online  batch  test
    smoke        16 px images, tiny nets  3/4                  4  2+2                 8     2
    smoke-state  states, tiny nets        3/4                  4  2+2                 8     2
    cpu          64 px images, small nets 300/40          45,000  1,500+1,500        64   100
    state-cpu    states, state MLPs       300/40          18,000  2,000+2,000       128   100
    gpu          64 px images (cuda)      1,000/40        30,000  5,000+5,000       256   100

state-cpu is the one a 2-core CPU machine can run: state variants (the data collected at
image_size=8, read as state vectors; datasets/README.md "state variants"), a
state encoder in every network, the same methods and seeds. Its budgets come from the speeds
bench/finetune_speed.py measures (docs/benchmarks/finetune_speed.json): one seed of one task,
all its methods, fits in about 3 CPU hours; ``--dry-run`` prints the estimate per stage.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

# the reward-defined tasks: scene, labeled-data policy and its waypoint noise (m)
TASKS = {"grasp": ("goalrl/Grasp-v0", "grasp", 0.03),
         "tray": ("goalrl/RearrangeTray-v0", "tray", 0.02)}
SMALL_NET = ["encoder.conv_channels=[16,32,32]", "encoder.embed_dim=64",
             "encoder.fusion_dim=128", "encoder.use_proprio=true"]
TINY_NET = ["encoder.conv_channels=[8,8]", "encoder.embed_dim=16", "encoder.fusion_dim=32"]
TINY_AM = ["head_hidden_dim=16", "act_cem_samples=32", "act_cem_elites=4", "num_negatives=4"]
# state variants: an MLP on the state vectors (its width comes from the data); first
# field the kind (bench/finetune_speed.py reads it)
STATE_NET = ["encoder.kind=state"]
TINY_STATE_NET = ["encoder.kind=state", "encoder.embed_dim=16", "encoder.fusion_dim=32",
                  "encoder.state_hidden=[32]"]
# noise: waypoint noise of the labeled data (None: the task's own; smoke's tiny labeled sets
# need some successes); net: encoder fields of every network; am: AM fields of its
# pretraining and of every task Q; task: TaskQConfig fields of every task Q
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(device="cpu", image_size=16, play=3, labeled=4, noise=0.02, pretrain=4,
                  batch=8, steps=2, online=2, per_episode=2, eval_every=1, eval_episodes=1,
                  test_episodes=2, seeds=(0, 1), net=TINY_NET, am=TINY_AM,
                  task=["num_negatives=4"]),
    "smoke-state": dict(device="cpu", image_size=8, play=3, labeled=4, noise=0.02, pretrain=4,
                        batch=8, steps=2, online=2, per_episode=2, eval_every=1,
                        eval_episodes=1, test_episodes=2, seeds=(0,), net=TINY_STATE_NET,
                        am=TINY_AM, task=["num_negatives=4"]),
    "cpu": dict(device="cpu", image_size=64, play=300, labeled=40, noise=None, pretrain=45000,
                batch=64, steps=1500, online=1500, per_episode=20, eval_every=250,
                eval_episodes=30, test_episodes=100, seeds=(0, 1, 2), net=SMALL_NET,
                am=["head_hidden_dim=64"], task=[]),
    # budgets from the measured speeds (finetune_speed.json): one seed of one task in about 3
    # CPU hours (``--dry-run`` prints the estimate); the fair scratch Q run, 22,000 task-Q
    # updates with its curve, is about half of it. Batch 128: more updates for the time than
    # 256 (a task Q update: 0.19 s at 128, 0.40 s at 256)
    "state-cpu": dict(device="cpu", image_size=8, play=300, labeled=40, noise=None,
                      pretrain=18000, batch=128, steps=2000, online=2000, per_episode=20,
                      eval_every=500, eval_episodes=30, test_episodes=100, seeds=(0, 1, 2),
                      net=STATE_NET, am=[], task=[]),
    "gpu": dict(device="cuda", image_size=64, play=1000, labeled=40, noise=None, pretrain=30000,
                batch=256, steps=5000, online=5000, per_episode=20, eval_every=500,
                eval_episodes=50, test_episodes=100, seeds=(0, 1, 2),
                net=["encoder.use_proprio=true"], am=[], task=[]),
}
# method -> (recipe, init: am | gcbc | none, total updates offline: fine-tuning | pretrain+ft)
METHODS: dict[str, tuple[str, str, str]] = {
    "task_q_from_am_aux": ("pretrained", "am", "ft"),
    "task_q_calql_from_am_aux": ("pretrained", "am", "ft"),
    "task_q_from_scratch_aux": ("scratch_play", "none", "pretrain+ft"),
    "task_q_from_gcbc_encoder_aux": ("gcbc_init", "gcbc", "ft"),
    "task_bc_success_from_scratch": ("bc_success", "none", "pretrain+ft"),
    "task_bc_success_from_gcbc": ("bc_gcbc_init", "gcbc", "ft"),
}
ZERO_SHOT = "am_zero_shot_goal_image"
# the value agents whose acting policy's encoder starts the task Q as GCBC's does
# (goalrl.training.finetune_init): opt-in (--value-inits), each adds a pretraining and a
# fine-tuning per seed
VALUE_AGENTS = ("gcivl", "gciql", "crl", "hiql")
VALUE_INIT_METHODS: dict[str, tuple[str, str, str]] = {
    f"task_q_from_{agent}_encoder_aux": ("gcbc_init", agent, "ft") for agent in VALUE_AGENTS}


def plan_methods(value_inits: bool = False, only: frozenset[str] | None = None
                 ) -> dict[str, tuple[str, str, str]]:
    """The fine-tuning runs of the plan: METHODS, and with ``value_inits`` the value agents';
    with ``only``, just those of them (ZERO_SHOT may be named too). ValueError on a name that
    is not in the plan."""
    methods = {**METHODS, **(VALUE_INIT_METHODS if value_inits else {})}
    if only is None:
        return methods
    unknown = sorted(set(only) - set(methods) - {ZERO_SHOT})
    if unknown:
        raise ValueError(f"--methods: {', '.join(unknown)} not in the plan; choose from "
                         f"{', '.join([*methods, ZERO_SHOT])}"
                         + ("" if value_inits else " (the value agents' need --value-inits)"))
    return {m: v for m, v in methods.items() if m in only}


# ------------------------------------------------------------------------------- the plan

def stages(profile: str, work: Path, seeds: tuple[int, ...] | None = None,
           task: str = "grasp", value_inits: bool = False, only: frozenset[str] | None = None
           ) -> list[dict[str, Any]]:
    """Every stage of one task in order: {name, args (goalrl command line), out, kind}, for the
    profile's training seeds or ``seeds``, under ``work``/<task>; with ``value_inits`` also the
    value agents' pretraining and fine-tuning; with ``only`` just those methods and the
    pretraining they start from (``plan_methods``; AM's for ZERO_SHOT). Pure."""
    p = PROFILES[profile]
    env, policy, task_noise = TASKS[task]
    work = work / task
    play, labeled = work / "play", work / "labeled"
    size = f"image_size={p['image_size']}"
    run = [f"device={p['device']}", "threads=1" if p["device"] == "cpu" else "threads=0"]
    out = [
        dict(name=f"{task}/collect_play", kind="collect", out=play, args=[
            "collect", f"env={env}", "policy=play", f"episodes={p['play']}", size, "sheet=false",
            f"out={play}"]),
        dict(name=f"{task}/collect_labeled", kind="collect", out=labeled, args=[
            "collect", f"env={env}", f"policy={policy}", f"episodes={p['labeled']}", size,
            f"waypoint_noise={p['noise'] or task_noise}", f"seed={p['play']}", "sheet=false",
            f"out={labeled}"]),
    ]
    methods = plan_methods(value_inits, only)
    base = ["am", "gcbc"] if only is None else ["am"] if ZERO_SHOT in only else []
    kinds = dict.fromkeys([*base, *(i for _, i, _ in methods.values() if i != "none")])
    for seed in p["seeds"] if seeds is None else seeds:
        pre = {kind: work / f"seed{seed}" / f"pretrain_{kind}" for kind in kinds}
        for kind, folder in pre.items():
            fields = p["net"] + (p["am"] if kind == "am" else [])
            out.append(dict(name=f"{task}/seed{seed}/pretrain_{kind}", kind="pretrain",
                            out=folder, agent=kind, seed=seed, args=[
                "pretrain", f"agent={kind}", f"data={play}", f"out={folder}",
                f"steps={p['pretrain']}", f"batch_size={p['batch']}", "eval_episodes=0",
                "videos=0", f"seed={seed}", *run, *[f"agent.{k}" for k in fields]]))
        for method, (recipe, init, budget) in methods.items():
            folder = work / f"seed{seed}" / method
            steps = p["steps"] + (p["pretrain"] if budget == "pretrain+ft" else 0)
            bc = recipe.startswith("bc")
            args = ["finetune", f"recipe={recipe}", f"task={env}", f"data={labeled}",
                    f"out={folder}", f"steps={steps}", f"online_steps={p['online']}",
                    f"batch_size={p['batch']}", f"updates_per_episode={p['per_episode']}",
                    f"eval_every={p['eval_every']}", f"eval_episodes={p['eval_episodes']}",
                    "videos=0", f"seed={seed}", *run]
            if init != "none":
                args.append(f"init={pre[init]}")
            if recipe == "scratch_play":
                args.append(f"aux_data={play}")
            if "calql" in method:
                args.append("agent.calibration=calql")
            # the network's shape as the pretrained runs have it (an init checkpoint's own
            # values: finetune accepts them, refuses any other)
            if bc:
                args += [f"bc.gcbc.{k}" for k in p["net"]]
            else:
                args += [f"agent.am.{k}" for k in p["net"] + p["am"]]
                args += [f"agent.{k}" for k in p["task"]]
            out.append(dict(name=f"{task}/seed{seed}/{method}", kind="finetune", out=folder,
                            args=args, method=method, seed=seed))
    return out


def shell(args: list[str]) -> str:
    return "goalrl " + " ".join(shlex.quote(a) for a in args)




# ------------------------------------------------------------------------------- time

# CPU seconds per update (batch = the profile's), per rollout of the task scene and per
# collected episode, one thread: written by `bench/finetune_speed.py --task <task>` (process
# CPU time, so a loaded machine gives what one free core would). rollout_cem: CEM on a Q (task
# Q, AM zero-shot, online episodes); rollout_policy: a policy's mean (GCBC, task BC)
SPEEDS_FILE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "finetune_speed.json"
SPEED_FIELDS = ("collect_episode", "pretrain_am", "pretrain_gcbc", "task_q", "task_bc",
                "rollout_cem", "rollout_policy")


def load_speeds(path: Path = SPEEDS_FILE) -> dict[str, dict[str, dict[str, float]]]:
    """{profile: {task: {field: CPU seconds}}} measured so far; {} when nothing is."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SystemExit(f"{path}: not valid JSON ({err}); rerun bench/finetune_speed.py") from err
    for profile, tasks in data.items():
        for task, row in tasks.items():
            missing = [f for f in SPEED_FIELDS if not isinstance(row.get(f), (int, float))]
            if missing:
                raise SystemExit(f"{path}: {profile}/{task} lacks {', '.join(missing)}; rerun "
                                 f"bench/finetune_speed.py --profile {profile} --task {task}")
    return data


def eval_points(steps: int, online: int, every: int) -> int:
    """Evaluations of a fine-tuning run's curve: step 0, every ``every`` updates, and each
    phase's end (goalrl.training.loop)."""
    total = steps + online
    at = {0, total, *([steps] if steps and online else [])}
    at |= set(range(every, total, every)) if every > 0 else set()
    return len(at)


def estimate(profile: str, task: str, seeds: tuple[int, ...] | None = None,
             work: Path = Path("<workdir>"), speeds: dict[str, Any] | None = None,
             value_inits: bool = False, only: frozenset[str] | None = None
             ) -> dict[str, float] | None:
    """CPU seconds of every stage of ``task`` (collection, and per seed pretraining and each
    method's fine-tuning with its curve's evaluations, online episodes and test rollouts), from
    ``speeds`` (default: ``load_speeds()``); None for a profile without measured speeds. A
    pretraining whose agent has no measured speed (the value agents') is left out."""
    speed = (load_speeds() if speeds is None else speeds).get(profile, {}).get(task)
    if speed is None:
        return None
    p = PROFILES[profile]
    test = 2 * p["test_episodes"]  # rollouts at the end of the offline phase and at the end
    out: dict[str, float] = {}
    for stage in stages(profile, work, seeds, task, value_inits, only):
        name, kind = stage["name"], stage["kind"]
        if kind == "collect":
            episodes = p["play"] if name.endswith("play") else p["labeled"]
            out[name] = episodes * speed["collect_episode"]
        elif kind == "pretrain":
            agent = name.rsplit("pretrain_", 1)[1]
            if f"pretrain_{agent}" not in speed:
                continue
            am = agent == "am"
            out[name] = p["pretrain"] * speed[f"pretrain_{agent}"]
            out[name] += p["test_episodes"] * speed["rollout_cem"] if am else 0.0  # zero-shot
        else:
            steps = int(next(a for a in stage["args"] if a.startswith("steps=")).split("=")[1])
            bc = stage["method"].startswith("task_bc")
            update, rollout = (("task_bc", "rollout_policy") if bc
                               else ("task_q", "rollout_cem"))
            rollouts = (eval_points(steps, p["online"], p["eval_every"]) * p["eval_episodes"]
                        + p["online"] // p["per_episode"] + test)
            out[name] = (steps + p["online"]) * speed[update] + rollouts * speed[rollout]
    return out


def estimate_lines(profile: str, tasks: list[str], seeds: tuple[int, ...] | None,
                   value_inits: bool = False, only: frozenset[str] | None = None) -> list[str]:
    """The plan's time, for --dry-run: per task one seed's CPU hours and the whole task's."""
    lines = []
    for task in tasks:
        per_stage = estimate(profile, task, seeds, value_inits=value_inits, only=only)
        if per_stage is None:
            return [f"no time estimate: {SPEEDS_FILE.name} has no speeds of {profile}/{task} "
                    "(bench/finetune_speed.py measures them)"]
        one = sum(v for k, v in per_stage.items() if "/seed" in k) / len(
            seeds or PROFILES[profile]["seeds"])
        shared = sum(v for k, v in per_stage.items() if "/seed" not in k)
        untimed = len(stages(profile, Path("<workdir>"), seeds, task, value_inits, only)) - len(
            per_stage)
        which = "all methods" if only is None else "these methods"
        lines.append(f"{task}: one seed ({which}) {one / 3600:.1f} CPU h; data "
                     f"{shared / 3600:.2f} CPU h; the task {sum(per_stage.values()) / 3600:.1f}"
                     " CPU h (one thread per run; wall time is longer on a loaded machine)"
                     + (f"; {untimed} pretraining stages not timed (no measured speed of "
                        "their agent)" if untimed else ""))
    return lines


def profile_table() -> list[str]:
    """The profiles as a markdown table, for the page (generated, so it stays in step)."""
    lines = ["| profile | networks read | play / labeled episodes | pretraining | fine-tuning "
             "offline + online | batch | seeds | test rollouts | one seed of one task |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, p in PROFILES.items():
        reads = ("states (data at 8 px)" if "encoder.kind=state" in p["net"]
                 else f"{p['image_size']} px images")
        hours = [f"{task} {sum(v for k, v in cpu.items() if '/seed0/' in k) / 3600:.1f}"
                 for task in TASKS if (cpu := estimate(name, task, (0,))) is not None]
        when = f"{', '.join(hours)} CPU h (estimated)" if hours else "–"
        lines.append(f"| {name} | {reads} on {p['device']} | {p['play']:,} / {p['labeled']} | "
                     f"{p['pretrain']:,} | {p['steps']:,} + {p['online']:,} | {p['batch']} | "
                     f"{len(p['seeds'])} | {p['test_episodes']} | {when} |")
    return lines


def unstored(plan: list[dict[str, Any]], points: set[tuple[str, int, str]],
             zero_shot: bool) -> list[dict[str, Any]]:
    """The stages still needed: the store is the record, so a clone without the workdir reruns
    nothing whose rows are in it. A fine-tuning is done when both its points are stored; a
    pretraining runs for the fine-tunings that start from it (AM's also for a missing
    zero-shot row); the data is collected when anything trains. Pure."""
    tunes = [s for s in plan if s["kind"] == "finetune" and not all(
        (s["method"], s["seed"], point) in points for point in ("offline_end", "final"))]
    inits = {a.removeprefix("init=") for s in tunes for a in s["args"] if a.startswith("init=")}
    pres = [s for s in plan if s["kind"] == "pretrain" and (str(s["out"]) in inits or (
        zero_shot and s["agent"] == "am" and (ZERO_SHOT, s["seed"], "zero_shot") not in points))]
    needed = {s["name"] for s in tunes + pres}
    return [s for s in plan if s["name"] in needed or (s["kind"] == "collect" and needed)]
