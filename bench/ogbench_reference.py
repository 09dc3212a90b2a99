"""Benchmark (issue 44, CPU): goalrl's GCIVL, GCIQL, CRL, HIQL and QRL against OGBench's reference
JAX agents on the same generated data, hyper-parameters and budget, by their losses and value
estimates over training on a fixed train batch and a fixed validation batch.

    goalrl ogbench generate env=cube-single-v0 episodes=100 out=/tmp/ogbench-ref/data/csp.npz
    python bench/ogbench_reference.py --reference /tmp/ogbench-ref/impls \
        --jax-python /tmp/jaxvenv/bin/python --data /tmp/ogbench-ref/data/csp.npz
    python bench/ogbench_reference.py ... --agents gcivl --merge   # rerun one, keep the others
    python bench/ogbench_reference.py --report-only   # rewrite the page from the JSON

``--reference`` is the ``impls`` folder of an OGBench checkout (its JAX agents are not in the
pip package); ``--jax-python`` a Python with jax, flax, optax, distrax and ml_collections, which
runs bench/ogbench_reference_runner.py. The validation file is ``<stem>-val.npz`` beside
``--data``. Both sides train N updates at batch B from their own samplers, one CPU thread each;
every K updates both read the same fixed batches (drawn here once, by goalrl's goal mixtures,
and handed to the runner as a file), so their metrics are computed on identical inputs:
losses by each side's own definition, mean V overall and by goal source (current / future /
random), the correlation of V with the discounted distance of future goals, Q at the data action
(GCIQL) and the actor mean's squared error to the data action (CRL's, HIQL's and QRL's metrics:
bench/ogbench_reference_agents.py). goalrl's agents are set to OGBench's hyper-parameters where
goalrl can express them (``MAPPING``; ``NOT_EXPRESSIBLE`` lists the rest; both in
bench/ogbench_reference_settings.py, and per agent in bench/ogbench_reference_agents.py).
Writes docs/benchmarks/ogbench_reference.json and .md (atomically); hand-written findings in
docs/benchmarks/ogbench_reference.findings.md go under the tables. ``--merge`` keeps the saved
.json's other agents (each row names the run it came from) and refuses a saved report on other
data or settings before training.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks"
RUNNER = Path(__file__).with_name("ogbench_reference_runner.py")
AGENTS_MODULE = Path(__file__).with_name("ogbench_reference_agents.py")
SPLITS = ("train", "val")
# one CPU thread on each side (XLA's flags for its Eigen pool and intra-op threads)
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                  "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
def load_module(path: Path) -> Any:
    """A bench/ script as module ``bench_<stem>``, loaded once (the runner: its metric code is
    shared, numpy only)."""
    name = f"bench_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


def load_runner() -> Any:
    return load_module(RUNNER)


SETTINGS = load_module(Path(__file__).with_name("ogbench_reference_settings.py"))
MAPPING, NOT_EXPRESSIBLE = SETTINGS.MAPPING, SETTINGS.NOT_EXPRESSIBLE  # GCIVL's and GCIQL's
EXTRA = load_module(AGENTS_MODULE)  # CRL, HIQL and QRL: settings mapping and metrics
AGENTS = ("gcivl", "gciql", *EXTRA.AGENTS)


def val_path(data: Path) -> Path:
    return data.with_name(f"{data.stem}-val.npz")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def episode_layout(terminals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths in frames) of the episodes a raw file's ``terminals`` mark (1 on each
    episode's last frame)."""
    ends = np.flatnonzero(terminals > 0)
    if len(ends) == 0 or ends[-1] != len(terminals) - 1:
        raise ValueError("terminals must mark the last frame of every episode, the file's last "
                         "frame included")
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends - starts + 1


def fixed_batch(path: Path, size: int, seed: int, gamma: float = 0.99) -> dict[str, np.ndarray]:
    """A batch drawn once from the raw file ``path`` by goalrl's goal mixtures (value goals
    0.2 / 0.5 / 0.3, actor goals future uniform), in the reference's key names plus the frame
    indices goalrl reads and each value goal's source (0 current, 1 future, 2 random) and
    offset k (future goals), and HIQL's subgoal (``subgoals``, ``subgoal_index``)."""
    from goalrl.data import keys as K
    from goalrl.data.sampler import (
        SOURCE_CURRENT,
        SOURCE_FUTURE,
        SOURCE_RANDOM,
        GoalMixture,
        actor_goal_mixture,
        sample_mixture_index_batch,
    )

    with np.load(path) as f:
        obs, actions = f["observations"].astype(np.float32), f["actions"].astype(np.float32)
        starts, lengths = episode_layout(f["terminals"])
    rng = np.random.default_rng(seed)
    idx = sample_mixture_index_batch(rng, starts, lengths, size, value_goals=GoalMixture(),
                                     actor_goals=actor_goal_mixture(), gamma=gamma)
    t, goal, actor_goal = idx[K.FRAME_INDEX], idx[K.GOAL_INDEX], idx[K.ACTOR_GOAL_INDEX]
    source = np.where(goal == t, SOURCE_CURRENT,
                      np.where(idx[K.CHAINED], SOURCE_RANDOM, SOURCE_FUTURE)).astype(np.int64)
    at_goal = (goal == t).astype(np.float32)
    batch = {"observations": obs[t], "next_observations": obs[t + 1], "actions": actions[t],
             "value_goals": obs[goal], "actor_goals": obs[actor_goal],
             "rewards": at_goal - 1.0, "masks": 1.0 - at_goal,
             "frame_index": t, "goal_index": goal, "actor_goal_index": actor_goal,
             "goal_source": source, "goal_offset": np.where(source == SOURCE_FUTURE, goal - t, 0)}
    return {**batch, **EXTRA.subgoal_fields(path, batch)}  # HIQL's subgoals (drawn last)


def goalrl_config(kind: str, state_dim: int) -> Any:
    """goalrl's config of ``kind`` at OGBench's cube-single settings (``MAPPING``; CRL, HIQL
    and QRL: ``EXTRA.MAPPING``)."""
    from goalrl.agents.config import EncoderConfig
    from goalrl.agents.gciql import GCIQLConfig
    from goalrl.agents.gcivl import GCIVLConfig
    from goalrl.data.sampler import GoalMixture, actor_goal_mixture

    encoder = EncoderConfig(kind="state", state_dim=state_dim, state_hidden=[], embed_dim=512,
                            fusion_dim=512)
    common = dict(lr=3e-4, weight_decay=0.0, max_grad_norm=0.0, gamma=0.99, expectile=0.9,
                  tau=0.005, max_weight=100.0, ema_tau=0.0, augment=False, log_std_min=0.0,
                  log_std_max=0.0, head_hidden_dim=512, value_goals=GoalMixture(),
                  actor_goals=actor_goal_mixture(), encoder=encoder)
    if kind in EXTRA.AGENTS:
        return EXTRA.goalrl_config(kind, common)
    if kind == "gcivl":
        return GCIVLConfig(alpha=10.0, **common)
    if kind == "gciql":
        return GCIQLConfig(alpha=1.0, actor_loss="ddpgbc", **common)
    raise ValueError(f"agent {kind!r}: must be one of {', '.join(AGENTS)}")


def goalrl_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A fixed batch under goalrl's keys (state frames, frame indices for the goal rule)."""
    from goalrl.data import keys as K

    return {K.OBS_STATE: batch["observations"], K.NEXT_OBS_STATE: batch["next_observations"],
            K.GOAL_STATE: batch["value_goals"], K.ACTOR_GOAL_STATE: batch["actor_goals"],
            K.SUBGOAL_STATE: batch["subgoals"], K.ACTION: batch["actions"],
            K.FRAME_INDEX: batch["frame_index"], K.GOAL_INDEX: batch["goal_index"],
            K.ACTOR_GOAL_INDEX: batch["actor_goal_index"],
            K.SUBGOAL_INDEX: batch["subgoal_index"]}


@torch.no_grad()
def goalrl_metrics(agent: Any, kind: str, batch: dict[str, np.ndarray]) -> dict[str, float]:
    """The runner's metrics on one fixed batch, from goalrl's agent (its own loss definitions)."""
    inputs = goalrl_batch(batch)
    if kind in EXTRA.AGENTS:
        return EXTRA.goalrl_metrics(agent, kind, batch, inputs, load_runner().value_summary)
    f = agent.frames(inputs, agent.frame_names)
    _, info = agent.losses(f, agent.batch_inputs(inputs))
    v = agent.value(f["obs"], f["goal"]).float().mean(dim=-1).numpy()  # heads averaged
    mean, _ = agent.policy(f["obs"], f["actor_goal"])
    action = torch.as_tensor(batch["actions"])
    out = {"value_loss": float(info["value/loss"]), "actor_loss": float(info["actor/loss"]),
           "actor_mse": float(((mean - action) ** 2).mean())}
    if kind == "gciql":
        q = agent.critic(f["obs"], f["goal"], action)  # (B, 2)
        out["critic_loss"] = float(info["critic/loss"])
        out["q_mean"] = float(q.float().mean())
    out.update(load_runner().value_summary(v, batch))
    return out


def train_goalrl(kind: str, dataset_dir: Path, fixed: dict[str, dict[str, np.ndarray]],
                 updates: int, batch_size: int, log_every: int, seed: int,
                 alpha: float | None = None) -> dict[str, Any]:
    """goalrl's agent trained as ``goalrl pretrain`` feeds it, metrics every ``log_every``;
    ``alpha`` replaces OGBench's (an ablation, e.g. 0: the actor by plain behaviour cloning)."""
    from dataclasses import asdict, replace

    from goalrl.agents.registry import build_agent
    from goalrl.data.sampler import GoalBatchSampler, state_vectors
    from goalrl.data.storage import EpisodeDataset

    torch.set_num_threads(1)
    dataset = EpisodeDataset(dataset_dir)
    states = state_vectors(dataset)
    cfg = goalrl_config(kind, states.shape[1])
    cfg = cfg if alpha is None else replace(cfg, alpha=alpha)
    agent = build_agent(kind, cfg, dataset.image_shape, dataset.action_dim, dataset.proprio_dim,
                        "cpu", seed=seed)
    agent.seed(seed)
    sampler = GoalBatchSampler(dataset, batch_size, gamma=cfg.gamma, seed=seed,
                               observation="state", value_goals=cfg.value_goals,
                               actor_goals=cfg.actor_goals,
                               subgoal_steps=getattr(cfg, "subgoal_steps", 0))
    log, train_seconds, timed = [], 0.0, 0
    for step in range(updates + 1):
        if step % log_every == 0 or step == updates:
            log.append({"step": step, **{s: goalrl_metrics(agent, kind, fixed[s]) for s in SPLITS}})
            print(f"[goalrl {kind}] step {step}: train {log[-1]['train']}", flush=True)
        if step == updates:
            break
        start = time.perf_counter()
        agent.update(sampler.sample())
        if step > 0:  # as the runner: the first update is left out of the rate
            train_seconds += time.perf_counter() - start
            timed += 1
    return {"side": "goalrl", "agent": kind, "updates": updates, "batch": batch_size,
            "seed": seed, "log": log, "updates_per_s": timed / train_seconds if timed else None,
            "config": asdict(cfg), "versions": {"torch": torch.__version__}}


def run_reference(kind: str, args: argparse.Namespace, fixed_path: Path,
                  workdir: Path) -> dict[str, Any]:
    """OGBench's agent through the runner, under ``--jax-python``, one thread."""
    out = workdir / f"ogbench_{kind}.json"
    cmd = [args.jax_python, str(RUNNER), "--reference", str(args.reference), "--agent", kind,
           "--data", str(args.data), "--fixed", str(fixed_path), "--updates", str(args.updates),
           "--batch", str(args.batch), "--log-every", str(args.log_every),
           "--seed", str(args.seed), "--out", str(out)]
    subprocess.run(cmd, check=True, env={**os.environ, **ONE_THREAD_ENV})
    return json.loads(out.read_text())


def imported_dataset(npz: Path, workdir: Path) -> Path:
    """goalrl's copy of ``npz`` (``goalrl data import format=ogbench``), made once."""
    from goalrl.data.importers.ogbench import import_ogbench

    out = workdir / f"goalrl-{npz.stem}"
    if not (out / "meta.json").exists():
        import_ogbench(npz, out, progress=False)
    return out


def check_same_frames(dataset_dir: Path, npz: Path) -> None:
    """goalrl's state frames must be the raw file's observations row for row (the fixed
    batches index both by the same frame numbers)."""
    from goalrl.data.sampler import state_vectors
    from goalrl.data.storage import EpisodeDataset

    with np.load(npz) as f:
        raw = f["observations"].astype(np.float32)
    if not np.array_equal(state_vectors(EpisodeDataset(dataset_dir)), raw):
        raise SystemExit(f"{dataset_dir}: its state frames differ from {npz}'s observations")


def data_record(data: Path) -> dict[str, Any]:
    """Hashes of the data: the generator's content hashes (its .json) and the files' SHA-256."""
    record: dict[str, Any] = {"train": str(data), "val": str(val_path(data)),
                              "train_file_sha256": file_sha256(data),
                              "val_file_sha256": file_sha256(val_path(data))}
    generator = data.with_suffix(".json")
    if generator.is_file():
        gen = json.loads(generator.read_text())
        record["generator"] = {k: gen[k] for k in ("settings", "files") if k in gen}
    return record


def page_file(out: Path, suffix: str) -> Path:
    """``out`` + suffix: ``out`` may hold dots of its own (``name.ablation``), kept whole."""
    return out.with_name(out.name + suffix)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


# what must agree for two runs' agents to share a page (the same data, budget and batches)
MERGE_KEYS = ("data", "reference", "reference_versions", "updates", "batch", "seed",
              "eval_batch", "goalrl_alpha")


def merge_conflicts(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The ``MERGE_KEYS`` that ``new`` holds with another value than ``old``."""
    return [k for k in MERGE_KEYS if k in new and old.get(k) != new[k]]


def merge_reports(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with ``old``'s agents that ``new`` did not run kept, each agent stamped with the
    run it came from (command, date, machine). Refuses runs that differ in ``MERGE_KEYS``."""
    differ = merge_conflicts(old, new)
    if differ:
        raise ValueError(f"cannot merge: the saved report differs in {', '.join(differ)}")
    merged = {**new, "agents": {}}
    for report in (old, new):  # a rerun agent keeps its place; a new one comes last
        run = {k: report[k] for k in ("command", "date", "machine")}
        for kind, sides in report["agents"].items():
            merged["agents"][kind] = {"run": run, **sides}
    return merged


METRICS = {"gcivl": ("value_loss", "actor_loss", "v_mean", "v_current", "v_future", "v_random",
                     "v_future_corr", "actor_mse"),
           "gciql": ("value_loss", "critic_loss", "actor_loss", "v_mean", "q_mean", "v_current",
                     "v_future", "v_random", "v_future_corr", "actor_mse"),
           **EXTRA.METRICS}


def render(report: dict[str, Any], findings: str = "") -> str:
    """The markdown page: setup, a goalrl / OGBench table per agent and split, findings."""
    d = report["data"]
    lines = [
        "# goalrl's agents against OGBench's reference implementation (CPU)",
        "",
        f"Generated by `{report['command']}` on {report['date']} "
        f"({report['machine']}). Each cell is **goalrl / OGBench**.",
        "",
        f"- Data: `{d['train']}` (SHA-256 `{d['train_file_sha256'][:16]}...`), validation "
        f"`{d['val']}` (`{d['val_file_sha256'][:16]}...`); generator content hashes: "
        + ", ".join(f"{k} `{str(v.get('content_sha256', '?'))[:16]}...`"
                    for k, v in d.get("generator", {}).get("files", {}).items()),
        f"- Reference: {report['reference']}; {report['reference_versions']}",
        f"- Budget: {report['updates']} updates at batch {report['batch']}, seed "
        f"{report['seed']}, one CPU thread per side; metrics on fixed batches of "
        f"{report['eval_batch']} (train file and validation file), drawn once and read by both.",
    ]
    runs = {kind: sides.get("run") for kind, sides in report["agents"].items()}
    if len({json.dumps(r, sort_keys=True) for r in runs.values()}) > 1:  # a --merge page
        lines += [f"- {kind} from `{r['command']}` on {r['date']} ({r['machine']})"
                  for kind, r in runs.items() if r]
    if report.get("goalrl_alpha") is not None:
        lines.append(f"- **Ablation: goalrl's alpha is {report['goalrl_alpha']} here, not "
                     "OGBench's.**")
    lines += ["", "| agent | goalrl updates/s | OGBench updates/s |", "|---|---|---|"]
    no_run = {"updates_per_s": None, "log": [{} for _ in range(report["updates"] + 1)]}
    for kind, sides in report["agents"].items():
        lines.append(f"| {kind} | {fmt(sides['goalrl']['updates_per_s'])} | "
                     f"{fmt(sides.get('ogbench', no_run)['updates_per_s'])} |")
    for kind, sides in report["agents"].items():
        names = METRICS[kind]
        for split in SPLITS:
            lines += ["", f"## {kind}, {split} batch", "",
                      "| step | " + " | ".join(names) + " |",
                      "|---" * (len(names) + 1) + "|"]
            for mine, ref in zip(sides["goalrl"]["log"], sides.get("ogbench", no_run)["log"]):
                cells = [f"{fmt(mine[split].get(n))} / {fmt(ref.get(split, {}).get(n))}"
                         for n in names]
                lines.append(f"| {mine['step']} | " + " | ".join(cells) + " |")
    lines += ["", "## Metrics", "",
              "- value_loss, critic_loss, actor_loss: each side's own loss on the fixed batch "
              "(definitions differ where listed below).",
              "- v_mean: V(s, g) on the value goals (heads averaged); v_current / v_future / "
              "v_random: over the goals that are o_t, a later frame, a random frame.",
              "- v_future_corr: correlation of V with -(1 - 0.99^k) / (1 - 0.99) over the "
              "future goals k steps ahead.",
              "- q_mean: Q(s, a_data, g) over both heads; actor_mse: (actor mean - data action)^2.",
              "", "## Settings mapped", "", "| OGBench | goalrl |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in MAPPING]
    lines += ["", "## What goalrl cannot express (or does differently)", ""]
    lines += [f"- {item}" for item in NOT_EXPRESSIBLE]
    lines += EXTRA.render_sections([k for k in report["agents"] if k in EXTRA.AGENTS])
    if findings:
        lines += ["", findings.strip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, help="OGBench's impls folder")
    p.add_argument("--jax-python", help="Python with jax/flax/optax/distrax/ml_collections")
    p.add_argument("--data", type=Path, help="training .npz (OGBench layout; -val.npz beside)")
    p.add_argument("--agents", default=",".join(AGENTS))
    p.add_argument("--updates", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--log-every", type=int, default=500)
    p.add_argument("--eval-batch", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/ogbench-ref/work"))
    p.add_argument("--out", type=Path, default=DOCS / "ogbench_reference")
    p.add_argument("--report-only", action="store_true", help="rewrite the .md from the .json")
    p.add_argument("--no-reference", action="store_true", help="goalrl's side only")
    p.add_argument("--merge", action="store_true",
                   help="keep the saved .json's other agents; rerun only --agents")
    p.add_argument("--goalrl-alpha", type=float, default=None,
                   help="ablation: goalrl's alpha instead of OGBench's (the page says so)")
    args = p.parse_args(argv)
    findings_path = args.out.with_name(f"{args.out.name}.findings.md")
    findings = findings_path.read_text() if findings_path.is_file() else ""
    if args.report_only:
        report = json.loads(page_file(args.out, ".json").read_text())
        write_atomic(page_file(args.out, ".md"), render(report, findings))
        return 0
    for name in ("reference", "jax_python", "data"):
        if getattr(args, name) is None:
            p.error(f"--{name.replace('_', '-')} is required (unless --report-only)")
    for path in (args.data, val_path(args.data), Path(args.jax_python)):
        if not path.is_file():
            p.error(f"{path}: no such file")
    agents = [a for a in args.agents.split(",") if a]
    for kind in agents:
        if kind not in AGENTS:
            p.error(f"--agents {kind!r}: must be among {', '.join(AGENTS)}")
    settings = {"data": data_record(args.data), "reference": reference_record(args.reference),
                "goalrl_alpha": args.goalrl_alpha, "updates": args.updates, "batch": args.batch,
                "seed": args.seed, "eval_batch": args.eval_batch}
    saved = page_file(args.out, ".json")
    if args.merge:  # refuse now, not after the training
        if not saved.is_file():
            p.error(f"--merge: {saved} does not exist")
        conflicts = merge_conflicts(json.loads(saved.read_text()), settings)
        if conflicts:
            p.error(f"--merge: {saved} differs in {', '.join(conflicts)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    fixed = {"train": fixed_batch(args.data, args.eval_batch, args.seed + 1),
             "val": fixed_batch(val_path(args.data), args.eval_batch, args.seed + 2)}
    fixed_path = args.workdir / "fixed_batches.npz"
    np.savez(fixed_path, **{f"{s}/{k}": v for s, b in fixed.items() for k, v in b.items()})
    dataset_dir = imported_dataset(args.data, args.workdir)
    check_same_frames(dataset_dir, args.data)
    results: dict[str, dict[str, Any]] = {}
    for kind in agents:
        results[kind] = {"goalrl": train_goalrl(kind, dataset_dir, fixed, args.updates,
                                                args.batch, args.log_every, args.seed,
                                                alpha=args.goalrl_alpha)}
        if not args.no_reference:
            results[kind]["ogbench"] = run_reference(kind, args, fixed_path, args.workdir)
    versions = results[agents[0]].get("ogbench", {}).get("versions", {})
    report = {
        "command": "python bench/ogbench_reference.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"load average {os.getloadavg()[0]:.1f} at the end",
        **settings, "agents": results,
        "reference_versions": (f"jax {versions['jax']}, flax {versions['flax']}" if versions
                               else "not run (--no-reference)"),
        "mapping": MAPPING, "not_expressible": NOT_EXPRESSIBLE,
    }
    if args.merge:
        report = merge_reports(json.loads(saved.read_text()), report)
    write_atomic(saved, json.dumps(report, indent=1))
    write_atomic(page_file(args.out, ".md"), render(report, findings))
    return 0


def reference_record(impls: Path) -> str:
    """Where the reference code came from: its SOURCE file when the checkout has one."""
    source = Path(impls) / "SOURCE"
    return source.read_text().strip() if source.is_file() else str(impls)


if __name__ == "__main__":
    raise SystemExit(main())
