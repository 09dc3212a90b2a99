"""Trains one of OGBench's reference agents (JAX; GCIVL, GCIQL, CRL, HIQL, QRL) for
bench/ogbench_reference.py and logs the same metrics on the same fixed batches as goalrl's
side. goalrl's own code, run with a Python that has jax, flax, optax, distrax and
ml_collections (not goalrl's venv):

    /tmp/jaxvenv/bin/python bench/ogbench_reference_runner.py --reference /tmp/ogbench-ref/impls \
        --agent gcivl --data train.npz --fixed fixed.npz --updates 3000 --batch 256 \
        --log-every 500 --out ref_gcivl.json

``--reference`` is the ``impls`` folder of an OGBench checkout (agents/, utils/); it is put on
sys.path and its ``agents.<agent>`` is imported as OGBench's main.py does. The training data
pipeline is OGBench's: ``utils.datasets.GCDataset`` over the regular layout that
``ogbench.load_dataset(compact_dataset=False)`` returns (rebuilt here with numpy, as its
docstring lays it out). Imports nothing from goalrl: this Python has no torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# OGBench's command lines for cube-single-play (impls/hyperparameters.sh); the rest is get_config
ALPHA = {"gcivl": 10.0, "gciql": 1.0}
GAMMA = 0.99


def load_agents_module():
    """bench/ogbench_reference_agents.py (CRL, HIQL, QRL: settings and metrics; numpy only)."""
    name = "bench_ogbench_reference_agents"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("ogbench_reference_agents.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


EXTRA = load_agents_module()
CLASSES = {"gcivl": "GCIVLAgent", "gciql": "GCIQLAgent", **EXTRA.REFERENCE_CLASSES}
OVERRIDES = {**{kind: {"alpha": alpha} for kind, alpha in ALPHA.items()},
             **EXTRA.REFERENCE_OVERRIDES}


def regular_dataset(path: Path) -> dict[str, np.ndarray]:
    """A raw OGBench .npz as load_dataset(compact_dataset=False) gives it: the last frame of each
    episode only as a next observation, terminals on each episode's last transition."""
    with np.load(path) as f:
        obs = f["observations"].astype(np.float32)
        actions = f["actions"].astype(np.float32)
        terminals = f["terminals"].astype(np.float32)
    has_next = terminals == 0  # (N,) rows that have a next observation
    is_next = np.concatenate([[False], has_next[:-1]])
    next_terminals = np.concatenate([terminals[1:], [1.0]])
    return {"observations": obs[has_next], "next_observations": obs[is_next],
            "actions": actions[has_next], "terminals": next_terminals[has_next]}


def fixed_batches(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{"train": batch, "val": batch} from the .npz the goalrl side wrote (keys ``<split>/<k>``)."""
    out: dict[str, dict[str, np.ndarray]] = {"train": {}, "val": {}}
    with np.load(path) as f:
        for key in f.files:
            split, name = key.split("/", 1)
            out[split][name] = f[key]
    return out


def batch_metrics(agent, batch: dict[str, np.ndarray], kind: str) -> dict[str, float]:
    """Losses (the reference's own definitions) and value estimates on one fixed batch."""
    if kind in EXTRA.AGENTS:
        return EXTRA.reference_metrics(agent, kind, batch, value_summary)
    net = agent.network
    inputs = {k: batch[k] for k in ("observations", "next_observations", "actions",
                                    "value_goals", "actor_goals", "rewards", "masks")}
    _, info = agent.total_loss(inputs, net.params)
    v = np.asarray(net.select("value")(batch["observations"], batch["value_goals"]))
    v = v.mean(axis=0) if v.ndim == 2 else v  # GCIVL: (2, B) heads averaged; GCIQL: (B,)
    mode = np.asarray(net.select("actor")(batch["observations"], batch["actor_goals"]).mode())
    out = {"value_loss": float(info["value/value_loss"]),
           "actor_loss": float(info["actor/actor_loss"]),
           "actor_mse": float(np.mean((mode - batch["actions"]) ** 2))}
    if kind == "gciql":
        q = np.asarray(net.select("critic")(batch["observations"], batch["value_goals"],
                                            batch["actions"]))  # (2, B)
        out["critic_loss"] = float(info["critic/critic_loss"])
        out["q_mean"] = float(q.mean())
    out.update(value_summary(v, batch))
    return out


def value_summary(v: np.ndarray, batch: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean V overall and by goal source; correlation of V with -(1 - gamma^k) / (1 - gamma)
    over the future goals k steps ahead (how well V ranks goal distance). goalrl's side
    (bench/ogbench_reference.py) imports this same function."""
    source, offset = batch["goal_source"], batch["goal_offset"]
    out = {"v_mean": float(v.mean())}
    for name, code in (("v_current", 0), ("v_future", 1), ("v_random", 2)):
        pick = source == code
        out[name] = float(v[pick].mean()) if pick.any() else float("nan")
    future = source == 1
    ideal = -(1.0 - GAMMA ** offset[future]) / (1.0 - GAMMA)
    out["v_future_corr"] = float(np.corrcoef(v[future], ideal)[0, 1]) if future.sum() > 2 else 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", required=True, help="OGBench's impls folder")
    p.add_argument("--agent", choices=sorted(CLASSES), required=True)
    p.add_argument("--data", required=True, help="training .npz (OGBench's raw layout)")
    p.add_argument("--fixed", required=True, help="fixed evaluation batches (.npz)")
    p.add_argument("--updates", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--log-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON to write")
    args = p.parse_args(argv)

    impls = Path(args.reference).resolve()
    for needed in (impls / "agents" / f"{args.agent}.py", impls / "utils" / "datasets.py"):
        if not needed.is_file():
            raise SystemExit(f"--reference {impls}: no {needed.relative_to(impls)} (give the "
                             "impls folder of an OGBench checkout)")
    sys.path.insert(0, str(impls))
    import flax
    import jax

    module = importlib.import_module(f"agents.{args.agent}")
    from utils import datasets

    config = module.get_config()
    config.update(OVERRIDES[args.agent])
    config["batch_size"] = args.batch
    np.random.seed(args.seed)  # OGBench's main.py seeds numpy (its samplers draw from it)
    dataset_class = getattr(datasets, config["dataset_class"])  # GCDataset or HGCDataset
    train = dataset_class(datasets.Dataset.create(**regular_dataset(Path(args.data))), config)
    fixed = fixed_batches(Path(args.fixed))
    example = train.sample(1)
    agent_class = getattr(module, CLASSES[args.agent])
    agent = agent_class.create(args.seed, example["observations"], example["actions"], config)

    log, train_seconds, timed_updates = [], 0.0, 0
    for step in range(args.updates + 1):
        if step % args.log_every == 0 or step == args.updates:
            log.append({"step": step, **{split: batch_metrics(agent, fixed[split], args.agent)
                                         for split in ("train", "val")}})
            print(f"[ogbench {args.agent}] step {step}: train {log[-1]['train']}", flush=True)
        if step == args.updates:
            break
        start = time.perf_counter()
        batch = train.sample(config["batch_size"])
        agent, _ = agent.update(batch)
        jax.block_until_ready(agent.network.params)
        if step > 0:  # the first update compiles
            train_seconds += time.perf_counter() - start
            timed_updates += 1
    result = {
        "side": "ogbench", "agent": args.agent, "updates": args.updates, "batch": args.batch,
        "seed": args.seed, "log": log,
        "updates_per_s": timed_updates / train_seconds if train_seconds else None,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()},
        "versions": {"jax": jax.__version__, "flax": flax.__version__,
                     "python": sys.version.split()[0]},
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    tmp = Path(f"{args.out}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
