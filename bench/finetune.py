"""Benchmark: fine-tuning a pretrained checkpoint on the grasp task vs training from scratch.

    pip install -e '.[bench]'                      # matplotlib for the plot
    python bench/finetune.py --profile cpu         # the whole pipeline, < 1 hour on 2 cores
    python bench/finetune.py --profile gpu         # larger budget, on a CUDA machine
    python bench/finetune.py --report-only         # rewrite the markdown from saved results

The pipeline, every step through the real ``goalrl`` command (the commands are listed in the
report):

1. ``goalrl collect env=goalrl/Grasp-v0 policy=play``: unlabeled play data of the grasp scene
   (its objects appear in no other scene); pretraining never reads its rewards.
2. ``goalrl collect env=goalrl/Grasp-v0 policy=grasp``: the small labeled set, noisy scripted
   grasp attempts that succeed part of the time, rewards recorded (seeds after the play ones).
3. ``goalrl pretrain``: Actionable Models on the play data.
4. ``goalrl finetune`` on the same labeled data, budget and seed: init=pretrained and
   init=none, each with and without calibration (``agent.calibrate``), with the default
   goal-image task input; and init=pretrained and init=none, calibrated, with the learned
   task embedding (``agent.task_input=embedding``) for comparison. Each run has an offline
   phase then an online phase; success on Grasp-v0 (env seeds from 1,000,000 up) every
   ``eval_every`` updates gives the learning curves.

Stages whose outputs exist in ``--workdir`` are reused (delete it to start over). Results go
to ``docs/benchmarks/finetune_<profile>.json``; ``docs/benchmarks/finetune.md`` and
``finetune.png`` are rewritten from every such JSON present, so CPU and GPU profiles can run
on different machines and end up in one report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks"
TASK = "goalrl/Grasp-v0"

TARGET_RATIO = 2.0  # pretrained / scratch success at the end of the offline phase
TARGET_ONLINE = 0.60  # pretrained success after the online phase
TARGET_DIP = 0.10  # deepest drop after the switch to online, calibration on

# Network shape shared by pretraining and both fine-tuning inits (scratch gets the same net).
SMALL_NET = {
    "encoder.conv_channels": "[16,32,32]",
    "encoder.embed_dim": "64",
    "encoder.fusion_dim": "128",
    "head_hidden_dim": "64",
    "encoder.use_proprio": "true",
}
PROFILES: dict[str, dict[str, Any]] = {
    "cpu": dict(
        device="cpu", threads=1, jobs=2, image_size=64, play_episodes=300, labeled_episodes=40,
        waypoint_noise=0.03, pretrain_steps=45000, batch_size=64, steps=1500, online_steps=1500,
        updates_per_episode=20, eval_every=250, eval_episodes=30, net=SMALL_NET,
    ),
    "gpu": dict(
        device="cuda", threads=0, jobs=1, image_size=64, play_episodes=1000,
        labeled_episodes=40, waypoint_noise=0.03, pretrain_steps=30000, batch_size=256,
        steps=5000, online_steps=5000, updates_per_episode=20, eval_every=500,
        eval_episodes=50, net={"encoder.use_proprio": "true"},
    ),
}
RUNS = (  # (name, init, calibrate, agent.task_input)
    ("pretrained, calibrated", "pretrained", True, "goal_image"),
    ("pretrained, uncalibrated", "pretrained", False, "goal_image"),
    ("scratch, calibrated", "none", True, "goal_image"),
    ("scratch, uncalibrated", "none", False, "goal_image"),
    ("pretrained, calibrated, task embedding", "pretrained", True, "embedding"),
    ("scratch, calibrated, task embedding", "none", True, "embedding"),
)


# ------------------------------------------------------------------------------- running


def goalrl(args: list[str], log: Path) -> dict[str, Any]:
    """Run ``python -m goalrl.cli <args>``, output to ``log``; the summary JSON it prints."""
    cmd = [sys.executable, "-m", "goalrl.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, env=env,
                              cwd=REPO)
        f.write(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"goalrl {' '.join(args[:1])} failed (exit {proc.returncode}); see {log}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["_seconds"] = time.perf_counter() - t0
    return summary


def shell(args: list[str]) -> str:
    return "goalrl " + " ".join(shlex.quote(a) for a in args)


def pipeline(profile: str, p: dict[str, Any], work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    commands: list[str] = []
    seconds: dict[str, float] = {}

    def stage(name: str, args: list[str], done: Path) -> dict[str, Any] | None:
        commands.append(shell(args))
        if done.is_file():
            print(f"[{name}] reusing {done}", flush=True)
            return json.loads(done.read_text())
        print(f"[{name}] {shell(args)}", flush=True)
        summary = goalrl(args, logs / f"{name}.log")
        seconds[name] = summary["_seconds"]
        print(f"[{name}] {summary['_seconds']:.0f} s", flush=True)
        return summary

    size = str(p["image_size"])
    play, labeled, pre = work / "play", work / "grasp", work / "pretrain"
    stage("collect_play", ["collect", f"env={TASK}", "policy=play",
                           f"episodes={p['play_episodes']}", f"image_size={size}", "workers=2",
                           f"out={play}"], play / "summary.json")
    labeled_summary = stage("collect_grasp", [
        "collect", f"env={TASK}", "policy=grasp", f"episodes={p['labeled_episodes']}",
        f"waypoint_noise={p['waypoint_noise']}", f"image_size={size}",
        f"seed={p['play_episodes']}", "workers=2", f"out={labeled}",
    ], labeled / "summary.json")
    common = [f"device={p['device']}", f"threads={p['threads']}", "seed=0"]
    pre_summary = stage("pretrain", [
        "pretrain", f"data={play}", f"out={pre}", f"steps={p['pretrain_steps']}",
        f"batch_size={p['batch_size']}", "eval_episodes=20", "videos=1", *common,
        *[f"agent.{k}={v}" for k, v in p["net"].items()],
    ], pre / "summary.json")

    def finetune(run: tuple[str, str, bool, str]) -> tuple[str, dict[str, Any]]:
        name, init, calibrate, task_input = run
        folder = "ft_" + name.replace(", ", "_").replace(" ", "_")
        out = work / folder
        args = [
            "finetune", f"init={pre if init == 'pretrained' else 'none'}", f"task={TASK}",
            f"data={labeled}", f"out={out}", f"steps={p['steps']}",
            f"online_steps={p['online_steps']}", f"batch_size={p['batch_size']}",
            f"updates_per_episode={p['updates_per_episode']}", f"eval_every={p['eval_every']}",
            f"eval_episodes={p['eval_episodes']}", "videos=2",
            f"agent.calibration={'calql' if calibrate else 'none'}",
            f"agent.task_input={task_input}",
            *common, *[f"agent.am.{k}={v}" for k, v in p["net"].items()],
        ]
        return name, stage(folder, args, out / "summary.json")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(p["jobs"]) as pool:
        runs = dict(pool.map(finetune, RUNS))
    seconds["finetune (all runs)"] = time.perf_counter() - t0
    return {
        "profile": profile,
        "settings": {k: v for k, v in p.items()},
        "machine": machine(p["device"]),
        "date": time.strftime("%Y-%m-%d"),
        "workdir": str(work),
        "commands": commands,
        "seconds": seconds,
        "labeled": labeled_summary,
        "pretrain": {k: pre_summary.get(k) for k in ("steps", "updates_per_s", "eval")},
        "runs": {k: slim(v) for k, v in runs.items()},
    }


def slim(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("parent", "calibration", "task_input", "act_with_target", "steps", "online_steps",
            "success_init", "success_offline", "success_final", "curve", "online_episodes",
            "online_episode_success_rate", "labeled_episodes", "labeled_success_rate",
            "updates_per_s", "seconds")
    return {k: summary.get(k) for k in keys}


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "machine": platform.machine(), "load_before": os.getloadavg()[0]}
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ------------------------------------------------------------------------------- analysis


def dip(run: dict[str, Any]) -> float | None:
    """Deepest drop below the success at the switch, over the first half of the online phase."""
    steps, online = run["steps"], run["online_steps"]
    switch = [c["success_rate"] for c in run["curve"] if c["step"] == steps]
    early = [c["success_rate"] for c in run["curve"]
             if steps < c["step"] <= steps + online / 2 and c["phase"] == "online"]
    if not switch or not early:
        return None
    return max(0.0, switch[-1] - min(early))


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| init | calibration | task input | success at step 0 | end of offline "
        "| end of online | dip after switch | online episodes (their success) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, run in result["runs"].items():
        init, cal = name.split(", ")[:2]
        lines.append(
            f"| {init} | {cal} | {task_input_of(run).replace('_', ' ')} "
            f"| {pct(run['success_init'])} | {pct(run['success_offline'])} "
            f"| {pct(run['success_final'])} | {pct(dip(run))} | {run['online_episodes']} "
            f"({pct(run['online_episode_success_rate'])}) |"
        )
    return lines


def task_input_of(run: dict[str, Any]) -> str:
    """The run's agent.task_input; results from before the option used the task embedding."""
    return run.get("task_input") or "embedding"


def interval(rate: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a success rate measured over n episodes."""
    from goalrl.evaluate import wilson_interval

    return wilson_interval(round(rate * n), n)


def verdicts(result: dict[str, Any]) -> list[str]:
    """Each target: met, not met, or met on point estimates that noise cannot separate."""
    runs, n = result["runs"], result["settings"]["eval_episodes"]
    pre = runs["pretrained, calibrated"]
    out = []
    for setting in ("calibrated", "uncalibrated"):
        a = runs[f"pretrained, {setting}"]["success_offline"]
        b = runs[f"scratch, {setting}"]["success_offline"]
        if a is None or b is None:
            continue
        ratio = a / b if b > 0 else float("inf")
        (lo_a, hi_a), (lo_b, hi_b) = interval(a, n), interval(b, n)
        if ratio >= TARGET_RATIO and a > 0 and lo_a > hi_b:
            verdict = "met"
        elif ratio >= TARGET_RATIO and a > 0:
            verdict = (f"met on the point estimates only: the 95% intervals "
                       f"[{pct(lo_a)}, {pct(hi_a)}] and [{pct(lo_b)}, {pct(hi_b)}] overlap, so "
                       "this is not evidence of a difference")
        else:
            verdict = "not met"
        shown = "scratch at 0%" if ratio == float("inf") else f"{ratio:.1f}x"
        out.append(
            f"- pretrained vs scratch at the end of the offline phase ({setting}): {pct(a)} vs "
            f"{pct(b)} ({shown}; target >= {TARGET_RATIO:.0f}x): **{verdict}**"
        )
    best = max(runs["pretrained, calibrated"]["success_final"] or 0,
               runs["pretrained, uncalibrated"]["success_final"] or 0)
    out.append(f"- pretrained after the online phase: calibrated "
               f"{pct(pre['success_final'])}, uncalibrated "
               f"{pct(runs['pretrained, uncalibrated']['success_final'])} (target >= "
               f"{pct(TARGET_ONLINE)}): **{'met' if best >= TARGET_ONLINE else 'not met'}**")
    d = dip(pre)
    if d is not None:
        verdict = "met" if d <= TARGET_DIP else "not met"
        at_switch = pre["success_offline"] or 0
        if at_switch <= TARGET_DIP:
            verdict = (f"not testable: success at the switch is {pct(at_switch)}, so no drop could "
                       f"exceed {pct(TARGET_DIP)}")
        out.append(f"- dip after the switch to online, pretrained and calibrated: {pct(d)} "
                   f"(target <= {pct(TARGET_DIP)}; uncalibrated: "
                   f"{pct(dip(runs['pretrained, uncalibrated']))}): **{verdict}**")
    return out


# ------------------------------------------------------------------------------- report

COLORS = {
    "pretrained, calibrated": "tab:green",
    "pretrained, uncalibrated": "tab:olive",
    "scratch, calibrated": "tab:blue",
    "scratch, uncalibrated": "tab:purple",
    "pretrained, calibrated, task embedding": "tab:orange",
    "scratch, calibrated, task embedding": "tab:gray",
}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # pip install -e '.[bench]'; the picture drawn last time stays
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.2), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        for name, run in result["runs"].items():
            xs = [c["step"] for c in run["curve"]]
            ys = [100 * c["success_rate"] for c in run["curve"]]
            style = ":" if "embedding" in name else "--" if "uncalibrated" in name else "-"
            ax.plot(xs, ys, style, marker="o", ms=3, color=COLORS[name], label=name)
        first = next(iter(result["runs"].values()))
        ax.axvline(first["steps"], color="0.5", lw=1)
        ax.text(first["steps"], 96, " online →", color="0.4", fontsize=8, va="top")
        ax.set_ylim(-2, 100)
        ax.set_xlabel("fine-tuning updates")
        ax.set_ylabel(f"success on {TASK} (%)")
        ax.set_title(f"{result['profile']} profile ({result['settings']['eval_episodes']} "
                     "episodes per point)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def workdir_of(result: dict[str, Any]) -> str:
    """The run's --workdir: recorded, or (older results) the folder of the play data."""
    if result.get("workdir"):
        return result["workdir"]
    play = next(a for a in result["commands"][0].split() if a.startswith("out="))
    return str(Path(play.removeprefix("out=")).parent)


def portable(command: str, workdir: str) -> str:
    """A recorded command as a reader can rerun it: paths under --workdir as <workdir>/."""
    return command.replace(f"{workdir}/", "<workdir>/").replace(f"{REPO}/", "")


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Fine-tuning on the grasp task",
        "",
        "`python bench/finetune.py --profile <cpu|gpu>`: unlabeled play data of "
        f"`{TASK}` → `goalrl pretrain` (Actionable Models) → `goalrl finetune` with "
        "init=pretrained and init=none on the same small reward-labeled grasp set, same "
        "budget and seed, an offline phase then an online phase, with and without "
        "calibration (`agent.calibrate`, Cal-QL's floor on the conservative term). The task "
        "Q is conditioned on the scene's goal image (`agent.task_input=goal_image`, the "
        "default); two runs use a learned task embedding instead (`agent.task_input="
        "embedding`). Success "
        f"is measured on `{TASK}` (any object lifted 10 cm at the last step) with env seeds "
        "from 1,000,000 up, never seen in training.",
        "",
        "![success vs fine-tuning updates](finetune.png)",
        "",
    ]
    for r in results:
        s = r["settings"]
        lab = r["labeled"]
        lab_final = next(iter(r["runs"].values()))["labeled_success_rate"]
        lines += [
            f"## {r['profile']} profile ({r['date']}, {r['machine'].get('gpu') or str(r['machine']['cpus']) + ' CPUs'})",  # noqa: E501
            "",
            f"- play data: {s['play_episodes']} episodes; labeled data: "
            f"{lab['episodes_total']} scripted grasp attempts (waypoint noise "
            f"{s['waypoint_noise']} m): {pct(lab['skills']['pick_place']['success_rate'])} "
            f"lifted the object, {pct(lab_final)} still held it up at the last step (the "
            "task's success)",
            f"- pretraining: {r['pretrain']['steps']} updates at batch {s['batch_size']} "
            f"({r['pretrain']['updates_per_s']:.1f} updates/s); goal-reaching success of the "
            f"pretrained Q on {TASK} goal images: "
            f"{pct((r['pretrain'].get('eval') or {}).get('success_rate'))}",
            f"- fine-tuning: {s['steps']} offline + {s['online_steps']} online updates at batch "
            f"{s['batch_size']} (online: one policy episode every {s['updates_per_episode']} "
            f"updates, half of each batch online); {s['eval_episodes']} evaluation episodes "
            f"per point, every {s['eval_every']} updates",
            "- wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in r["seconds"].items()),
            "",
            *table(r),
            "",
            "Targets:",
            "",
            *verdicts(r),
            "",
            "Side runs and what they found (calibration, acting weights, the task embedding): "
            "[docs/lab-notes.md](../lab-notes.md).",
            "",
            "The dip is the success at the switch minus the lowest success in the first half "
            "of the online phase (0 if it never drops). With "
            f"{s['eval_episodes']} episodes per point a rate has a 95% interval of about "
            f"±{100 * 1.0 / (s['eval_episodes'] ** 0.5):.0f} points at 50%: differences "
            "smaller than that are noise.",
            "",
            f"Commands run (`<workdir>` is `--workdir`, default "
            f"`runs/bench_finetune_{r['profile']}`; this run used `{workdir_of(r)}`):",
            "",
            "```",
            *(portable(c, workdir_of(r)) for c in r["commands"]),
            "```",
            "",
        ]
    return "\n".join(lines)


def write_report() -> None:
    results = [json.loads(p.read_text()) for p in sorted(DOCS.glob("finetune_*.json"))]
    if not results:
        raise SystemExit(f"no results in {DOCS}/finetune_*.json; run a profile first")
    plot(results, DOCS / "finetune.png")
    text = report(results)
    missing = sorted(set(PROFILES) - {r["profile"] for r in results})
    if missing:
        text += (f"\nNot run yet: the {', '.join(missing)} profile "
                 f"(`python bench/finetune.py --profile {missing[0]}` on a CUDA machine).\n")
    tmp = DOCS / f".finetune.md.tmp{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, DOCS / "finetune.md")
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="data, checkpoints and runs (default: runs/bench_finetune_<profile>)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the markdown and plot")
    args = ap.parse_args()
    if not args.report_only:
        work = args.workdir or REPO / "runs" / f"bench_finetune_{args.profile}"
        result = pipeline(args.profile, PROFILES[args.profile], work.resolve())
        DOCS.mkdir(parents=True, exist_ok=True)
        path = DOCS / f"finetune_{args.profile}.json"
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp, path)
    write_report()


if __name__ == "__main__":
    main()
