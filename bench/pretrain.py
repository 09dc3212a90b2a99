"""Benchmark: what `goalrl pretrain` learns, and how fast it updates.

    pip install -e '.[bench]'                      # matplotlib and the d3rlpy peer
    python bench/pretrain.py speed                 # updates/s, CEM latency, scaling, d3rlpy CQL
    python bench/pretrain.py success --profile cpu # AM, ablations, GCBC on Push and Rearrange
    python bench/pretrain.py success --profile gpu # the same with the GPU budget (on CUDA)
    python bench/pretrain.py success --profile gpu --device cuda --train-only --data push=DIR
                                                   # on a GPU node without pybullet; then,
    python bench/pretrain.py evaluate --profile gpu --scenes push  # where pybullet is
                                                   # (bench/gpu_lease.sh runs a whole lease)
    python bench/pretrain.py report                # rewrite the markdown from saved results

Each part saves its measurements as JSON next to the report
(``docs/benchmarks/pretrain_<part>_<profile or device>.json``); every run rewrites
``docs/benchmarks/pretrain.md`` and ``pretrain.png`` from all the JSON files present, so the
CPU and GPU parts can be run on different machines and end up in one report.

**speed**: the agent's ``update`` on batches already sampled (the sampler's own rate is in
sampler.md: ~150k transitions/s, far above what an update consumes), so both sides of the
peer comparison time the learner alone. The peer is d3rlpy 2.8.0's CQL with its default
pixel encoder on the same kind of input: observation and goal stacked as 6 channels, 64x64,
4-d actions.

**success**: collects play data with ``goalrl collect`` (once, into --workdir), trains each
method with the same data, batch size, update budget and seed, and evaluates the CEM/actor
policy on held-out goal images (env seeds from 1,000,000 up; collection used 0..N-1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from goalrl.agents.gcbc import GCBCConfig

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks"

IMAGE = 64
ACTION_DIM = 4
TARGET_SPEEDUP = 10.0  # goalrl update vs d3rlpy CQL update at the same batch size
TARGET_ACT_MS = 20.0  # CEM action selection for one env on CPU
TARGET_GPU_UPS = 200.0  # updates/s at batch 256 on a GPU
TARGET_PUSH = 0.80  # AM success on Push
TARGET_MARGIN = 0.20  # AM minus GCBC, both scenes


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


def make_agent(kind: str, size: int, device: str, **overrides: Any):
    from goalrl.agents.am import AMAgent, AMConfig
    from goalrl.agents.gcbc import GCBCAgent

    amp = device.startswith("cuda")  # as training's default amp=true: bfloat16 on CUDA only
    if kind == "gcbc":
        return GCBCAgent(GCBCConfig(**overrides), (size, size, 3), ACTION_DIM, device=device,
                         amp=amp)
    cfg = AMConfig(pad=max(1, size // 16), **overrides)
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


# ------------------------------------------------------------------------------- success


@dataclass(frozen=True)
class Profile:
    steps: int
    batch_size: int
    eval_episodes: int
    eval_points: int  # evaluations along the run (the last one is the reported figure)
    episodes: dict[str, int]  # play episodes collected per scene


PROFILES = {
    # play data is cheap to collect (minutes) while updates are the budget, so the CPU profile
    # trains on as many episodes as the GPU one: more pushes seen, same cost per update.
    # 4,000 updates: ten runs, two at a time, took 32 min on 2 cores, plus ~10 min of
    # collection; at 2,000 even GCBC on privileged state reaches only 5% of Push goals
    "cpu": Profile(steps=4000, batch_size=128, eval_episodes=40, eval_points=2,
                   episodes={"push": 2000, "rearrange": 2000, "reach": 150}),
    "gpu": Profile(steps=30000, batch_size=256, eval_episodes=100, eval_points=6,
                   episodes={"push": 2000, "rearrange": 2000, "reach": 1000}),
    "smoke": Profile(steps=20, batch_size=16, eval_episodes=2, eval_points=1,
                     episodes={"push": 4, "rearrange": 4, "reach": 4}),
}
# push and rearrange carry the targets; reach (tcp to a goal pose, no objects) is the scene
# where a CPU budget already learns, so the methods can be compared there: --scenes reach
SCENES = {"push": "goalrl/Push-v0", "rearrange": "goalrl/Rearrange-v0", "reach": "goalrl/Reach-v0"}
DEFAULT_SCENES = "push,rearrange"
METHODS = {  # name -> (agent kind, AMConfig overrides)
    "AM": ("am", {}),
    "AM, no chaining": ("am", {"chaining": False}),
    "AM, no negatives": ("am", {"negatives": False}),
    # negatives drawn uniformly in the action box only, as in the paper (see neg_source)
    "AM, uniform negatives": ("am", {"neg_source": "uniform"}),
    # the paper's targets and negatives: no Monte-Carlo floor, no greedy-action negative, and
    # candidates picked ∝ exp(Q) at temperature 1 (goalrl's defaults until 2026-11-21)
    "AM, paper targets": ("am", {"mc_floor": False, "policy_negative": False,
                                 "neg_temperature": 1.0}),
    # a Gaussian behaviour head on AM's encoder seeds CEM, and the policy acts with its mean
    # (agent.behaviour_prior, agent.act_rule): on Push its mean beat CEM on AM's Q
    "AM + behaviour prior": ("am", {"behaviour_prior": True, "act_rule": "prior_mean"}),
    # the same prior with near-miss negatives (neg_source=swap), acting by CEM on Q: on Push
    # the best CEM policy so far, still below GCBC (docs/lab-notes.md)
    "AM + behaviour prior, swap negatives": ("am", {"behaviour_prior": True,
                                                    "neg_source": "swap"}),
    "GCBC": ("gcbc", {}),
}


def run_dir(workdir: Path, profile: str, scene: str, method: str) -> Path:
    slug = method.lower().replace(", ", "-").replace(" ", "-")
    return workdir / f"runs-{profile}" / f"{scene}-{slug}"


def ensure_data(scene: str, episodes: int, workdir: Path) -> Path:
    from goalrl.commands.collect import CollectConfig, collect

    out = workdir / "data" / f"{scene}-{episodes}"
    collect(CollectConfig(env=SCENES[scene], episodes=episodes, out=str(out), workers=2,
                          image_size=IMAGE, sheet=False))  # resumes: a no-op when complete
    return out


def train_one(scene: str, method: str, data: Path, prof: Profile, args) -> dict[str, Any]:
    from goalrl.agents.am import AMConfig
    from goalrl.training import PretrainConfig, pretrain

    kind, overrides = METHODS[method]
    agent = AMConfig(**overrides) if kind == "am" else GCBCConfig()
    out = run_dir(Path(args.workdir), args.profile, scene, method)
    if out.exists():
        import shutil

        shutil.rmtree(out)  # a bench run is always a fresh run
    cfg = PretrainConfig(
        data=str(data), out=str(out), agent=agent, steps=prof.steps, threads=args.threads,
        batch_size=prof.batch_size, seed=args.seed, device=args.device,
        eval_every=prof.steps // prof.eval_points, eval_episodes=prof.eval_episodes,
        videos=1, save_every=prof.steps, log_every=100, cuda_graph=args.cuda_graph,
    )
    if args.train_only:  # no simulator here: checkpoints at the eval points, evaluated later
        cfg.eval_every, cfg.eval_episodes, cfg.save_every = 0, 0, prof.steps // prof.eval_points
    t0 = time.perf_counter()
    summary = pretrain(cfg)
    if args.train_only:
        return {"scene": scene, "method": method, "run": str(out), "steps": summary["steps"],
                "updates_per_s": summary["updates_per_s"],
                "minutes": (time.perf_counter() - t0) / 60}
    return {
        "scene": scene,
        "method": method,
        "success_rate": summary["eval"]["success_rate"],
        "ci95": summary["eval"]["ci95"],
        "mean_final_distance": summary["eval"]["mean_final_distance"],
        "median_final_distance": summary["eval"].get("median_final_distance"),
        "mean_final_arm_distance": summary["eval"].get("mean_final_arm_distance"),
        "curve": summary["eval_curve"],
        "updates_per_s": summary["updates_per_s"],
        "minutes": (time.perf_counter() - t0) / 60,
        "run": str(out),
    }


# ------------------------------------------------------------------------------- state reference
# GCBC on low-dimensional state instead of images, trained on the same play data with the same
# hindsight goals and update budget as the image learners:
#     state s_t = [proprio (tcp xyz, opening, yaw), achieved_goal (every object's xyz)]
#     goal  g   = [tcp xyz, achieved_goal] of the goal frame: what a goal image pictures
# It reads the objects' coordinates that an image learner has to find in pixels, so it tells
# whether a result is limited by vision or by the data and the update budget.


def state_features(ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame state (N, P + G) and goal features (N, 3 + G) of a dataset, float32."""
    if ds.proprio_dim is None or ds.goal_dim is None:
        raise ValueError(f"{ds.root}: the state reference needs proprio and achieved_goal")
    proprio = np.asarray(ds.proprio, dtype=np.float32)  # (N, P), tcp xyz first
    achieved = np.asarray(ds.achieved_goal, dtype=np.float32)  # (N, G)
    return np.concatenate([proprio, achieved], 1), np.concatenate([proprio[:, :3], achieved], 1)


def goal_features(env: Any) -> np.ndarray:
    """The goal of a (unwrapped) goalrl env as ``state_features`` builds it: (3 + G,)."""
    return np.concatenate([env.goal_layout.tcp, env.goal]).astype(np.float32)


class StateGCBC(nn.Module):
    """MLP on standardised [state, goal] (B, S + G') -> actions (B, A) in [-1, 1].

    Positions in metres span a few tenths, so the inputs are standardised with the data's
    mean and std: without it the first layer learns several times slower.
    """

    def __init__(self, inputs: np.ndarray, action_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(inputs.mean(0)))
        self.register_buffer("std", torch.from_numpy(inputs.std(0) + 1e-3))
        self.net = nn.Sequential(
            nn.Linear(inputs.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, action_dim), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def train_state_gcbc(
    ds: Any, steps: int, batch_size: int, *, lr: float = GCBCConfig.lr,
    gamma: float = 0.9, seed: int = 0,
) -> nn.Module:
    """An MLP pi(s, g) -> a in [-1, 1], fitted by mean squared error on hindsight goals.

    Squared error is the mean's gradient of the image GCBC's beta-NLL at beta 1 (its default).
    """
    from goalrl.data.sampler import (
        episode_ends,
        episode_of,
        sample_hindsight_goals,
        sample_transitions,
    )

    states, goals = state_features(ds)
    actions = torch.from_numpy(np.asarray(ds.actions, dtype=np.float32))  # (N, A)
    starts, lengths = np.asarray(ds.episode_starts), np.asarray(ds.episode_lengths)
    ends = episode_ends(starts, lengths)  # (E,)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = StateGCBC(np.concatenate([states, goals], 1), actions.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        t = sample_transitions(rng, starts, lengths, batch_size)  # (B,)
        end = ends[episode_of(t, starts)]  # (B,) the last frame of each one's episode
        g = sample_hindsight_goals(rng, t, end, "geometric", gamma)  # (B,)
        x = torch.from_numpy(np.concatenate([states[t], goals[g]], 1))  # (B, S + G')
        loss = ((net(x) - actions[t]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def state_policy(net: nn.Module, env: Any):
    """An ``evaluate.Policy`` that reads the (unwrapped) env's state instead of the images."""

    @torch.no_grad()
    def act(obs_image: Any, goal_image: Any, proprio: Any) -> tuple[np.ndarray, None]:
        s = np.concatenate([env.arm.proprio(), env.achieved_goal(), goal_features(env)])
        return net(torch.from_numpy(s.astype(np.float32))[None])[0].numpy(), None

    return act


def evaluate_state_gcbc(
    net: nn.Module, env_id: str, episodes: int, image_size: int = 32,
    seed_start: int | None = None,
) -> dict[str, Any]:
    """Rollouts of ``state_policy`` on the held-out goals of ``goalrl eval``.

    The policy never looks at the images, so their size changes only the render cost.
    """
    import gymnasium as gym

    import goalrl  # noqa: F401  (registers the scenes)
    from goalrl.evaluate import EVAL_SEED_OFFSET, run_rollout, summarize_rollouts

    start = EVAL_SEED_OFFSET if seed_start is None else seed_start
    env = gym.make(env_id, image_size=image_size)
    policy = state_policy(net, env.unwrapped)
    rollouts = [run_rollout(env, policy, start + i) for i in range(episodes)]
    env.close()
    return summarize_rollouts(env_id, rollouts)


def reference_rows(scene: str, data: Path, prof: Profile, seed: int) -> list[dict[str, Any]]:
    """Policies read against the learners on the same held-out goals.

    - an arm that never moves: the floor that goals already met at the start (object placed
      within 5 cm by chance) give;
    - GCBC on privileged state (``StateGCBC``) with the learners' data, hindsight
      goals and update budget: whether the budget allows the task when the object's
      coordinates are given, not seen;
    - on Push, a noise-free scripted pusher that reads the goal layout (``GoalPushPolicy``):
      what the scene allows a policy with privileged state in one episode.
    """
    from goalrl.data.storage import EpisodeDataset
    from goalrl.evaluate import evaluate_policy

    def still(obs_image, goal_image, proprio):
        return np.zeros(ACTION_DIM, dtype=np.float32), None

    rows = [reference_row(scene, "arm stays still (reference)", evaluate_policy(
        SCENES[scene], still, prof.eval_episodes, image_size=IMAGE, progress=False))]
    torch.set_num_threads(1)
    with EpisodeDataset(data) as ds:
        net = train_state_gcbc(ds, prof.steps, prof.batch_size, seed=seed)
    rows.append(reference_row(scene, "GCBC on privileged state (reference)", evaluate_state_gcbc(
        net, SCENES[scene], prof.eval_episodes, image_size=IMAGE)))
    if scene == "push":
        rows.append(reference_row(scene, "scripted pusher, privileged state (reference)",
                                  scripted_push_summary(prof.eval_episodes)))
    return rows


def scripted_push_summary(
    episodes: int, first_seed: int | None = None, env_kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``goalrl eval``'s summary for the noise-free scripted pusher that reads the goal layout,
    on held-out Push goals: env seeds from ``first_seed`` (default ``EVAL_SEED_OFFSET``, as
    ``goalrl eval``), the scene made with ``env_kwargs`` (as ``goalrl eval env_kwargs=...``)."""
    import gymnasium as gym

    from goalrl.envs.play import GoalPushPolicy
    from goalrl.evaluate import EVAL_SEED_OFFSET, run_rollout, summarize_rollouts

    env = gym.make(SCENES["push"], image_size=IMAGE, **(env_kwargs or {}))
    pusher = GoalPushPolicy(env.unwrapped, seed=0)

    def push(obs_image, goal_image, proprio):
        return pusher(), None

    first_seed = EVAL_SEED_OFFSET if first_seed is None else first_seed
    rollouts = []
    for i in range(episodes):
        pusher.reset()  # its skill generator starts at the first action, after env.reset
        rollouts.append(run_rollout(env, push, first_seed + i))
    env.close()
    return {"env_kwargs": dict(env_kwargs or {}), **summarize_rollouts(SCENES["push"], rollouts)}


def reference_row(scene: str, method: str, res: dict[str, Any]) -> dict[str, Any]:
    return {
        "scene": scene, "method": method,
        "success_rate": res["success_rate"], "ci95": res["ci95"],
        "mean_final_distance": res["mean_final_distance"],
        "median_final_distance": res.get("median_final_distance"),
        "mean_final_arm_distance": res.get("mean_final_arm_distance"), "curve": [],
        "updates_per_s": None, "minutes": None, "run": None,
    }


def run_success(args: argparse.Namespace) -> dict[str, Any]:
    prof = PROFILES[args.profile]
    scenes = args.scenes.split(",")
    methods = [m for m in METHODS if args.methods is None or m in args.methods.split(";")]
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "machine": machine(args.device), "profile": args.profile,
        "config": {**prof.__dict__, "seed": args.seed, "jobs": args.jobs, "threads": args.threads},
        "runs": [],
    }
    data = given_data(args.data)
    for scene in scenes:
        if scene in data:
            continue
        t_collect = time.perf_counter()
        data[scene] = ensure_data(scene, prof.episodes[scene], Path(args.workdir))
        result.setdefault("collect_minutes", {})[scene] = (time.perf_counter() - t_collect) / 60
    result["config"]["data"] = {scene: Path(data[scene]).name for scene in scenes}
    result["config"]["episodes"] = {scene: dataset_episodes(data[scene]) for scene in scenes}
    trained_path = Path(args.workdir) / f"trained_{args.profile}.json"
    if args.train_only:  # written first: a run stopped at a deadline still says what ran where
        result["runs"] = [{"scene": sc, "method": m} for sc in scenes for m in methods]
        write_json(trained_path, result)
    # One process per scene, each with --threads torch threads (default 1): on 2 cores two
    # single-threaded learners beat one two-threaded learner that waits on its own threads.
    jobs = [(scene, method, data[scene], prof, args) for scene in scenes for method in methods]
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            runs = pool.starmap(train_one, jobs, chunksize=1)
    else:
        runs = [train_one(*job) for job in jobs]
    if args.train_only:
        result["runs"], result["total_minutes"] = runs, (time.perf_counter() - t0) / 60
        write_json(trained_path, result)
        return result
    result["runs"] = runs + [
        row for scene in scenes for row in reference_rows(scene, data[scene], prof, args.seed)
    ]
    for run in runs:
        print(json.dumps({k: v for k, v in run.items() if k != "curve"}), flush=True)
    result["total_minutes"] = (time.perf_counter() - t0) / 60
    result["machine"]["load_after"] = os.getloadavg()[0]
    return result


def given_data(spec: str | None) -> dict[str, Path]:
    """``--data push=DIR,rearrange=DIR``: datasets to use instead of collecting."""
    data = {}
    for item in (spec or "").split(","):
        if not item:
            continue
        scene, sep, path = item.partition("=")
        if not sep or scene not in SCENES or not Path(path, "meta.json").is_file():
            raise SystemExit(f"--data: {item!r} is not SCENE=DATASET_DIR with SCENE in "
                             f"{sorted(SCENES)} and a goalrl dataset at DATASET_DIR")
        data[scene] = Path(path)
    return data


def dataset_episodes(path: Path) -> int:
    return int(json.loads((Path(path) / "meta.json").read_text())["num_episodes"])


def checkpoint_steps(run: Path) -> set[int]:
    return {int(p.name.split("_")[1]) for p in (run / "checkpoints").glob("step_*") if p.is_dir()}


def shared_step(runs: list[Path]) -> int | None:
    """The last checkpoint step that every run reached: one update budget for all of them."""
    common = set.intersection(*(checkpoint_steps(d) for d in runs)) if runs else set()
    return max(common) if common else None


def tb_updates_per_s(run: Path) -> float | None:
    """Update rate from the TensorBoard scalars' wall times (a run stopped at a deadline has
    no summary)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    tag = next((t for t in ("critic/loss", "actor/loss") if t in tags), None)
    events = acc.Scalars(tag) if tag else []
    if len(events) < 2 or events[-1].wall_time <= events[0].wall_time:
        return None
    return (events[-1].step - events[0].step) / (events[-1].wall_time - events[0].wall_time)


def evaluate_trained(ckpt: Path, episodes: int) -> dict[str, Any]:
    """``goalrl eval`` of one checkpoint on CPU (its scene and image size come from the
    checkpoint), one torch thread per process."""
    from goalrl.commands.evaluate import EvalConfig
    from goalrl.commands.evaluate import run as goalrl_eval

    torch.set_num_threads(1)
    return goalrl_eval(EvalConfig(ckpt=str(ckpt), episodes=episodes, videos=0, device="cpu",
                                  out=str(ckpt.parents[1] / f"eval-{ckpt.name}")))


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Finishes ``success --train-only`` (trained where there is no simulator, e.g. a GPU
    node): evaluates every run at the last checkpoint step that all runs of its scene reached,
    so the methods keep one update budget, and adds the reference rows on local data."""
    prof = PROFILES[args.profile]
    work = Path(args.workdir)
    trained_path = work / f"trained_{args.profile}.json"
    if not trained_path.is_file():
        raise SystemExit(f"{trained_path} not found: run `success --train-only` into --workdir")
    result = json.loads(trained_path.read_text())
    data = given_data(args.data)
    t0 = time.perf_counter()
    jobs, rows = [], []
    for scene in dict.fromkeys(r["scene"] for r in result["runs"]):
        planned = [r for r in result["runs"] if r["scene"] == scene]
        dirs = [run_dir(work, args.profile, scene, r["method"]) for r in planned]
        step = shared_step(dirs)
        if step is None:
            raise SystemExit(f"{scene}: no checkpoint step shared by {', '.join(map(str, dirs))}")
        for r, d in zip(planned, dirs):
            rows.append({**r, "steps": step, "run": str(d),
                         "updates_per_s": r.get("updates_per_s") or tb_updates_per_s(d)})
            jobs.append((d / "checkpoints" / f"step_{step:07d}", prof.eval_episodes))
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        evals = pool.starmap(evaluate_trained, jobs, chunksize=1)
    runs = []
    for row, res in zip(rows, evals):
        runs.append({**reference_row(row["scene"], row["method"], res),
                     "curve": [{"step": row["steps"], "success_rate": res["success_rate"],
                                "mean_final_distance": res["mean_final_distance"]}],
                     **{k: row.get(k) for k in ("updates_per_s", "minutes", "run", "steps")}})
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "curve"}), flush=True)
    # what was evaluated: a deadline may have stopped the runs before the profile's steps
    result["config"]["steps"] = min(r["steps"] for r in runs)
    result["runs"] = runs + [row for scene in data
                             for row in reference_rows(scene, data[scene], prof, args.seed)]
    result["evaluated_on"] = machine("cpu")
    result["evaluate_minutes"] = (time.perf_counter() - t0) / 60
    result.setdefault("total_minutes", None)  # None: the training was stopped at a deadline
    return result


# ------------------------------------------------------------------------------- report


def load_results() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DOCS.glob("pretrain_*.json"))}


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


def success_section(name: str, res: dict[str, Any]) -> list[str]:
    m, c = res["machine"], res["config"]
    where = m.get("gpu") or f"CPU ({m['cpus']} cores)"
    scenes = {r["scene"] for r in res["runs"]}  # the profile lists data for every scene
    lines = [
        f"### Success on held-out goal images: {res['profile']} profile, {where} (`{name}.json`)",
        "",
        f"{c['steps']} updates at batch {c['batch_size']} per method, seed {c['seed']}; play data "
        + ", ".join(f"{k}: {v} episodes" + (f" (`{c['data'][k]}`)" if k in c.get("data", {})
                                            else "")
                    for k, v in c["episodes"].items() if k in scenes)
        + f"; {c['eval_episodes']} evaluation episodes (env seeds from 1,000,000 up). "
        f"{c['jobs']} runs at a time, {c['threads']} torch thread(s) each. "
        f"Total wall time {fmt(res.get('total_minutes'))} min, load average "
        f"{m['load_before']:.2f} before and {m.get('load_after', float('nan')):.2f} after.",
    ]
    if res.get("evaluated_on"):
        e = res["evaluated_on"]
        lines[-1] += (f" Trained without the simulator (`success --train-only`); evaluated by "
                      f"`evaluate` on CPU ({e['cpus']} cores) in {res['evaluate_minutes']:.1f} "
                      "min, at the last checkpoint every run of a scene reached.")
    # runs before evaluation summaries had a median (2026-11-21) have no such column
    median = any(r.get("median_final_distance") is not None for r in res["runs"])
    cols = ["scene", "method", "success", "95% interval", "mean final distance (m)",
            *(["median (m)"] if median else []), "arm to the pictured arm (m)", "updates/s",
            "minutes"]
    align = ["---", "---", "---:", "---", *["---:"] * (len(cols) - 4)]
    lines += ["", "| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]
    for r in res["runs"]:
        lo, hi = r["ci95"]
        cells = [r["scene"], r["method"], f"{100 * r['success_rate']:.0f}%",
                 f"{100 * lo:.0f}-{100 * hi:.0f}%", f"{r['mean_final_distance']:.3f}",
                 *([fmt(r.get("median_final_distance"), ".3f")] if median else []),
                 fmt(r.get("mean_final_arm_distance"), ".3f"), fmt(r["updates_per_s"]),
                 fmt(r["minutes"])]
        lines.append("| " + " | ".join(cells) + " |")
    if res.get("note"):
        lines += ["", f"Note: {res['note']}."]
    lines += ["", *success_verdicts(res), ""]
    return lines


def success_verdicts(res: dict[str, Any]) -> list[str]:
    by = {(r["scene"], r["method"]): r["success_rate"] for r in res["runs"]}
    out = []
    if ("push", "AM") in by:
        ok = by[("push", "AM")] >= TARGET_PUSH
        out.append(f"- AM on Push: {100 * by[('push', 'AM')]:.0f}% against a "
                   f"{100 * TARGET_PUSH:.0f}% target: **{'met' if ok else 'not met'}**.")
    for scene in DEFAULT_SCENES.split(","):  # the scenes the targets name
        if (scene, "AM") in by and (scene, "GCBC") in by:
            gap = by[(scene, "AM")] - by[(scene, "GCBC")]
            ok = gap >= TARGET_MARGIN
            out.append(f"- AM minus GCBC on {scene}: {100 * gap:+.0f} points against a "
                       f"+{100 * TARGET_MARGIN:.0f} target: **{'met' if ok else 'not met'}**.")
    return out


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


def plot(results: dict[str, dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    succ = [(k, v) for k, v in results.items() if "runs" in v]
    if not succ:
        return False
    # per profile: a row of curves per metric (success, object distance, and the arm's
    # distance to the pictured arm where the runs recorded it), one column per scene; only
    # measured points (no made-up value at step 0)
    def scenes_of(res: dict[str, Any]) -> list[str]:
        return [s for s in SCENES if any(r["scene"] == s for r in res["runs"])]

    def metrics_of(res: dict[str, Any]) -> list[tuple[str, str]]:
        metrics = [("success_rate", "success on held-out goals (%)"),
                   ("mean_final_distance", "mean final goal distance (m)")]
        if any(r.get("mean_final_arm_distance") is not None for r in res["runs"]):
            metrics.append(("mean_final_arm_distance", "arm to the pictured arm (m)"))
        return metrics

    ncols = max(len(scenes_of(res)) for _, res in succ)
    nrows = sum(len(metrics_of(res)) for _, res in succ)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.3 * nrows), squeeze=False)
    row0 = 0
    for _name, res in succ:
        metrics = metrics_of(res)
        for col in range(len(scenes_of(res)), ncols):  # a result with fewer scenes
            for k in range(len(metrics)):
                axes[row0 + k][col].axis("off")
        for col, scene in enumerate(scenes_of(res)):
            runs = [r for r in res["runs"] if r["scene"] == scene]
            for k, (key, label) in enumerate(metrics):
                plot_metric(axes[row0 + k][col], runs, key, label)
                axes[row0 + k][col].set_title(f"{SCENES[scene]} ({res['profile']} profile)")
        row0 += len(metrics)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, path)
    plt.close(fig)
    return True


def plot_metric(ax: Any, runs: list[dict[str, Any]], key: str, label: str) -> None:
    """One metric of one scene: a curve per trained run, a flat line per reference."""
    scale = 100 if key == "success_rate" else 1
    ref_styles = iter(["--", ":", "-."])
    for r in runs:
        if r["curve"]:
            points = [(p["step"], p.get(key)) for p in r["curve"] if p.get(key) is not None]
            if points:
                steps, values = zip(*points, strict=True)
                # one colour per method across panels, whichever methods a run includes
                known = r["method"] in METHODS
                color = f"C{list(METHODS).index(r['method']) % 10}" if known else None
                ax.plot(steps, [scale * v for v in values], marker="o", label=r["method"],
                        color=color)
        elif r.get(key) is not None:  # a reference without training: a flat line
            ax.axhline(scale * r[key], color="grey", ls=next(ref_styles, "--"), label=r["method"])
    ax.set_xlabel("updates")
    ax.set_ylabel(label)
    if key == "success_rate":
        ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize=7)


def write_report() -> Path:
    results = load_results()
    lines = [
        "# Pretraining benchmark",
        "",
        "Written by `bench/pretrain.py` from the JSON files beside this report. "
        "Rerun a part with `python bench/pretrain.py speed` or "
        "`python bench/pretrain.py success --profile cpu|gpu`.",
        "",
    ]
    verdicts: list[str] = []
    for name, res in results.items():
        if "rows" in res:
            verdicts += [f"{v} ({name})" for v in speed_verdicts(res)]
    if verdicts:
        lines += ["## Targets", "", *verdicts, ""]
    # without matplotlib the picture drawn from the same JSON files last time stays
    if plot(results, DOCS / "pretrain.png") or (DOCS / "pretrain.png").is_file():
        lines += ["![Success on held-out goal images along training](pretrain.png)", ""]
    for name, res in results.items():
        lines += success_section(name, res) if "runs" in res else speed_section(name, res)
    lines += ["What was tried beyond these profiles, and how the figures were read: "
              "[docs/lab-notes.md](../lab-notes.md).", ""]
    path = DOCS / "pretrain.md"
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
    p.add_argument("part", choices=["speed", "success", "evaluate", "report"])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    p.add_argument("--scenes", default=DEFAULT_SCENES, help="comma-separated: " + ",".join(SCENES))
    p.add_argument("--methods", default=None, help="';'-separated subset of: " + "; ".join(METHODS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="training runs in parallel (success)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (0: torch's default, all cores)")
    p.add_argument("--workdir", default=str(REPO / "runs" / "bench-pretrain"))
    p.add_argument("--seconds", type=float, default=20.0, help="timing window per speed cell")
    p.add_argument("--quick", action="store_true", help="short speed timings (a smoke test)")
    p.add_argument("--no-peer", action="store_true", help="skip the d3rlpy CQL timing")
    p.add_argument("--no-save", action="store_true", help="print only; keep docs/ untouched")
    p.add_argument("--data", default=None,
                   help="success/evaluate: SCENE=DATASET_DIR,... to use instead of collecting")
    p.add_argument("--train-only", action="store_true",
                   help="success without the simulator: train and checkpoint into --workdir; "
                        "finish with the `evaluate` part where pybullet is installed")
    p.add_argument("--cuda-graph", action="store_true",
                   help="success: train with cuda_graph=true (one process per run, CUDA only)")
    p.add_argument("--tag", default="", help="suffix of the saved result's name (e.g. the data)")
    args = p.parse_args()
    tag = "cuda" if args.device.startswith("cuda") else "cpu"
    if args.part == "speed":
        result = run_speed(args)
        name = f"pretrain_speed_{tag}_{args.threads or 'default'}threads"
    elif args.part in ("success", "evaluate"):
        result = run_success(args) if args.part == "success" else run_evaluate(args)
        name = f"pretrain_success_{args.profile}"
        if args.scenes != DEFAULT_SCENES:  # a scene subset gets its own file beside the main one
            name += "_" + args.scenes.replace(",", "_")
        name += f"_{args.tag}" if args.tag else ""
        if args.part == "success" and args.train_only:
            print(f"trained; checkpoints and trained_{args.profile}.json in {args.workdir}")
            return
    if args.part != "report" and not args.no_save:
        save(name, result)
    if not args.no_save:
        print(write_report().read_text())


if __name__ == "__main__":
    main()
