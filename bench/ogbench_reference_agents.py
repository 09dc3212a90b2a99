"""CRL, HIQL and QRL for bench/ogbench_reference.py: OGBench's cube-single settings mapped onto
goalrl's configs, and the metrics both sides log on the fixed batches.

Imported by bench/ogbench_reference.py (goalrl's side, torch) and by
bench/ogbench_reference_runner.py (the reference side, under a JAX Python without torch), so
only numpy is imported at the top; each side's functions import their own framework.

Metrics (each side's own loss definitions, on identical inputs):
- CRL: the critic's logit f(s, a, g) = log Q at the data action (heads averaged) by goal source,
  and on the rows whose goal is a future frame (CRL's training goals) both sides' own losses
  plus two contrastive losses computed here alike from either side's logit matrix (``infonce``:
  softmax cross-entropy over the batch, goalrl's loss per head; ``binary_nce``: sigmoid
  cross-entropy against the identity, OGBench's) and the share of rows whose own goal has the
  largest logit (``accuracy``).
- HIQL: GCIVL's value metrics, both actor losses, the low level's error to the data action at
  the subgoal's representation (``actor_mse``) and the hierarchy's (``act_mse``: the low level
  at the high level's mean subgoal, as both act).
- QRL: V = -d(s, g) by goal source; on the rows whose goal is random (QRL's training goals) the
  value loss (push + lambda * violation), the dynamics and actor losses, d(s, s') and lambda.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

AGENTS = ("crl", "hiql", "qrl")
SUBGOAL_STEPS = 10  # HIQL's subgoal_steps on cube-single-play (impls/hyperparameters.sh)
# OGBench's cube-single-play command lines (impls/hyperparameters.sh); the rest is get_config
REFERENCE_OVERRIDES = {"crl": {"alpha": 3.0},
                       "hiql": {"low_alpha": 3.0, "high_alpha": 3.0,
                                "subgoal_steps": SUBGOAL_STEPS},
                       "qrl": {"alpha": 0.3}}
REFERENCE_CLASSES = {"crl": "CRLAgent", "hiql": "HIQLAgent", "qrl": "QRLAgent"}
REFERENCE_FILES = ("agents/crl.py, hiql.py and qrl.py excerpted (continuous-action, state-input "
                   "paths, verbatim) from the same fork commit; utils/networks.py with "
                   "LengthNormalize, Param, LogParam, GCBilinearValue and GCIQEValue, and "
                   "utils/datasets.py with HGCDataset, verbatim")
SOURCE_CURRENT, SOURCE_FUTURE, SOURCE_RANDOM = 0, 1, 2  # the fixed batches' goal_source codes
# the goal source each agent trains its value on: its losses are read on those rows only
TRAINING_SOURCE = {"crl": SOURCE_FUTURE, "qrl": SOURCE_RANDOM}
METRICS = {
    "crl": ("critic_loss", "actor_loss", "infonce", "binary_nce", "accuracy", "v_mean",
            "v_current", "v_future", "v_random", "v_future_corr", "actor_mse"),
    "hiql": ("value_loss", "low_actor_loss", "high_actor_loss", "v_mean", "v_current",
             "v_future", "v_random", "v_future_corr", "actor_mse", "act_mse"),
    "qrl": ("value_loss", "dynamics_loss", "actor_loss", "d_step", "lam", "v_mean",
            "v_current", "v_future", "v_random", "v_future_corr", "actor_mse"),
}
# OGBench setting -> the goalrl field that carries it (goalrl_config sets every one); the
# settings all agents share (lr, Adam, discount, const_std, p_aug) are in the main MAPPING
MAPPING = {
    "crl": [
        ("alpha 3.0 (cube-single command line), actor_loss ddpgbc, actor_log_q",
         "alpha=3.0 (DDPG+BC is CRL's only actor loss; Q read as the logit)"),
        ("critic: 2 heads, latent_dim 512", "num_heads=2, rep_dim=512"),
        ("value_hidden_dims 512", "encoder.embed_dim=512, head_hidden_dim=512"),
        ("value goals 1.0 future (geometric)", "value_goals (0, 1, 0, geometric)"),
        ("actor goals 1.0 future (uniform)", "actor_goals (0, 1, 0, uniform)"),
    ],
    "hiql": [
        ("low_alpha 3.0, high_alpha 3.0 (AWR), exp clipped at 100",
         "alpha=3.0, high_alpha=3.0, max_weight=100"),
        ("subgoal_steps 10 (cube-single command line)", "subgoal_steps=10"),
        ("expectile 0.7, tau 0.005, gc_negative", "expectile=0.7, tau=0.005 (fixed rule)"),
        ("value goals 0.2 / 0.5 / 0.3, actor goals future uniform",
         "value_goals (0.2, 0.5, 0.3, geometric), actor_goals (0, 1, 0, uniform)"),
        ("value_hidden_dims, actor_hidden_dims 512", "encoder.embed_dim=512, fusion_dim=512, "
         "head_hidden_dim=512"),
    ],
    "qrl": [
        ("alpha 0.3 (cube-single command line), actor_loss ddpgbc", "alpha=0.3, "
         "actor_loss=ddpgbc"),
        ("IQE, latent_dim 512, dim_per_component 8", "latent_dim=512, iqe_dim=8"),
        ("d_neg loss 100 * softplus(5 - d / 100)", "push_offset=500, push_scale=100"),
        ("eps 0.05, lambda initialised at 1", "epsilon=0.05, lambda_init=1"),
        ("value goals 1.0 random, actor goals future uniform",
         "value_goals (0, 0, 1), actor_goals (0, 1, 0, uniform)"),
        ("value_hidden_dims 512", "encoder.embed_dim=512, head_hidden_dim=512"),
    ],
}
NOT_EXPRESSIBLE = {
    "crl": [
        "Critic loss: both binary NCE (goalrl's since ba8db9d; before it, InfoNCE), averaged "
        "over heads in OGBench and summed over the two heads in goalrl. Both InfoNCE and "
        "binary NCE are reported, recomputed alike from each side's logits.",
        "Critic layout: OGBench's phi(s, a) and psi(g) are separate 3 x 512 GELU + LayerNorm "
        "MLPs per head. goalrl's share one per-frame state encoder (linear, LayerNorm, tanh) "
        "for s and g, then per-head MLPs with two 512 ReLU layers and no LayerNorm.",
        "The actor's Q: OGBench maximises log(max(exp(f), 1e-6)), i.e. the logit floored at "
        "-13.8; goalrl the logit itself.",
    ],
    "hiql": [
        "Goal representation: OGBench's is phi([s; g]), an MLP on the pair (3 x 512, then 10 "
        "outputs, length-normalised), which the value reads beside s. goalrl's is the value's "
        "Siamese frame embedding z(g) (512 wide, tanh), which depends on g alone.",
        "The high level therefore predicts a 10-dim unit-scale vector in OGBench and a 512-dim "
        "embedding in goalrl: the high actor losses are not comparable.",
        "Low-level subgoal: OGBench's is the frame min(t + 10, episode end); goalrl's is also "
        "capped at the actor goal (the high level's target, as in both). The fixed batches use "
        "goalrl's frame on both sides.",
        "OGBench acts with the high level's sample length-normalised; act_mse here normalises "
        "its mean the same way (goalrl's embedding is not normalised).",
    ],
    "qrl": [
        "phi: OGBench's is one 3 x 512 GELU + LayerNorm MLP to 512; goalrl's a per-frame state "
        "encoder (linear, LayerNorm, tanh) then two 512 ReLU + LayerNorm layers to 512. The "
        "dynamics MLP likewise (3 x 512 GELU in OGBench, 2 x 512 ReLU in goalrl).",
        "The value loss's step term: OGBench relu(d(s, s') - 1)^2 on every row; goalrl the same "
        "(its doc notes the reward form agrees on all rows but those whose goal is s).",
    ],
}
COMMON_NOTES = ("goalrl's actors are tanh-squashed with std fixed at 1 (log_std_min = "
                "log_std_max = 0); OGBench's const_std actors are unbounded, clipped to [-1, 1] "
                "before Q in DDPG+BC.")


METRIC_NOTES = {
    "crl": "- CRL: v_* is the critic's logit f(s, a_data, g) = log Q (heads averaged); "
           "critic_loss and actor_loss are each side's own, and infonce, binary_nce and "
           "accuracy are computed alike from each side's logit matrix, all on the rows whose "
           "goal is a future frame.",
    "hiql": "- HIQL: v_* as GCIVL's; actor_mse: the low level's mean at the subgoal's "
            "representation against the data action; act_mse: the low level at the high "
            "level's mean (the action both act with) against the data action.",
    "qrl": "- QRL: v_* is -d(s, g); value_loss (push + lambda * violation), dynamics_loss, "
           "actor_loss, d_step (mean d(s, s')) and lam on the rows whose goal is a random "
           "frame.",
}


def render_sections(kinds: list[str]) -> list[str]:
    """The page's lines for the agents ``kinds`` of this module: metric notes, settings mapped,
    what goalrl cannot express."""
    if not kinds:
        return []
    lines = ["", "## CRL, HIQL and QRL", "", f"Reference files: {REFERENCE_FILES}.", ""]
    lines += [METRIC_NOTES[kind] for kind in kinds]
    for kind in kinds:
        lines += ["", f"### {kind}: settings mapped", "", "| OGBench | goalrl |", "|---|---|"]
        lines += [f"| {a} | {b} |" for a, b in MAPPING[kind]]
        lines += ["", f"### {kind}: what goalrl cannot express (or does differently)", ""]
        lines += [f"- {item}" for item in (*NOT_EXPRESSIBLE[kind], COMMON_NOTES)]
    return lines


def training_rows(kind: str, batch: dict[str, np.ndarray]) -> np.ndarray:
    """Row indices of ``batch`` whose goal comes from ``kind``'s training source (all rows for
    agents that train on the fixed batches' mixture)."""
    source = batch["goal_source"]
    if kind not in TRAINING_SOURCE:
        return np.arange(len(source))
    return np.flatnonzero(source == TRAINING_SOURCE[kind])


def rows_of(batch: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in batch.items()}


def contrastive_summary(logits: np.ndarray) -> dict[str, float]:
    """From logits (K, B, B), [k, i, j] = f_k(s_i, a_i, g_j) with row i's positive at j = i:
    InfoNCE (softmax cross-entropy of each row) and binary NCE (sigmoid cross-entropy against
    the identity), each averaged over heads, and the share of rows whose positive ranks first
    on the heads' mean logit."""
    logits = np.asarray(logits, dtype=np.float64)
    eye = np.eye(logits.shape[1], dtype=bool)
    row_max = logits.max(axis=-1, keepdims=True)
    log_softmax = logits - row_max - np.log(np.exp(logits - row_max).sum(-1, keepdims=True))
    infonce = -log_softmax[:, eye].mean()
    # sigmoid cross-entropy: softplus(x) - label * x, stably
    bce = np.logaddexp(0.0, logits) - np.where(eye, logits, 0.0)
    mean_logits = logits.mean(axis=0)
    accuracy = (mean_logits.argmax(axis=-1) == np.arange(len(mean_logits))).mean()
    return {"infonce": float(infonce), "binary_nce": float(bce.mean()),
            "accuracy": float(accuracy)}


def subgoal_fields(path: Any, batch: dict[str, np.ndarray],
                   steps: int = SUBGOAL_STEPS) -> dict[str, np.ndarray]:
    """HIQL's subgoal for each row of a fixed batch from the raw file ``path``: the frame
    ``steps`` ahead, capped at the actor goal and the episode's last frame (goalrl's
    sampler.subgoal_indices), as ``subgoal_index`` and ``subgoals``."""
    from goalrl.data.sampler import subgoal_indices

    with np.load(path) as f:
        obs, terminals = f["observations"].astype(np.float32), f["terminals"]
    ends = np.flatnonzero(terminals > 0)
    starts = np.concatenate([[0], ends[:-1] + 1])
    index = subgoal_indices(batch["frame_index"], batch["actor_goal_index"], starts,
                            ends - starts + 1, steps)
    return {"subgoal_index": index, "subgoals": obs[index]}


# --- goalrl's side (torch) ---------------------------------------------------------------------


def goalrl_config(kind: str, common: dict[str, Any]) -> Any:
    """goalrl's CRL, HIQL or QRL config at OGBench's cube-single settings (``MAPPING``);
    ``common`` holds the settings every agent shares (bench/ogbench_reference.py)."""
    from goalrl.agents.crl import CRLConfig
    from goalrl.agents.hiql import HIQLConfig
    from goalrl.agents.qrl import QRLConfig
    from goalrl.data.sampler import GoalMixture

    future, random = (GoalMixture(p_current=0.0, p_future=1.0, p_random=0.0),
                      GoalMixture(p_current=0.0, p_future=0.0, p_random=1.0))
    shared = {k: v for k, v in common.items()
              if k not in ("expectile", "tau", "max_weight", "value_goals")}
    if kind == "crl":
        return CRLConfig(alpha=3.0, rep_dim=512, num_heads=2,
                         value_goals=future, **shared)
    if kind == "hiql":
        return HIQLConfig(alpha=3.0, high_alpha=3.0, subgoal_steps=SUBGOAL_STEPS,
                          expectile=0.7, tau=0.005, max_weight=100.0,
                          value_goals=common["value_goals"], **shared)
    if kind == "qrl":
        return QRLConfig(alpha=0.3, actor_loss="ddpgbc", latent_dim=512, iqe_dim=8,
                         push_offset=500.0, push_scale=100.0, epsilon=0.05, lambda_init=1.0,
                         value_goals=random, **shared)
    raise ValueError(f"agent {kind!r}: must be one of {', '.join(AGENTS)}")


def goalrl_metrics(agent: Any, kind: str, batch: dict[str, np.ndarray],
                   inputs: dict[str, np.ndarray],
                   value_summary: Callable[..., dict[str, float]]) -> dict[str, float]:
    """The metrics of ``METRICS[kind]`` from goalrl's agent on one fixed batch (``inputs``: the
    batch under goalrl's keys, subgoal included)."""
    import torch

    from goalrl.data import keys as K

    with torch.no_grad():
        rows = training_rows(kind, batch)
        sub = rows_of(inputs, rows)
        f = agent.frames(sub, agent.frame_names)
        _, info = agent.losses(f, agent.batch_inputs(sub))
        f = agent.frames(inputs, agent.frame_names)
        action = torch.as_tensor(inputs[K.ACTION])
        mean, _ = agent.policy(f["obs"], f["actor_goal"])
        out: dict[str, float] = {}
        if kind == "crl":
            logits = agent.critic(f["obs"], action, f["goal"]).float().numpy()  # (K, B, B)
            v = np.diagonal(logits, axis1=1, axis2=2).mean(axis=0)  # (B,) heads averaged
            out.update(critic_loss=float(info["critic/loss"]),
                       actor_loss=float(info["actor/loss"]),
                       **contrastive_summary(logits[:, rows][:, :, rows]))
        elif kind == "hiql":
            v = agent.value(f["obs"], f["goal"]).float().mean(dim=-1).numpy()
            rep = agent.advantages(f)["subgoal_rep"]
            mean, _ = agent.low_level(agent.policy, f["obs"], rep)
            high_rep, _ = agent.high_policy(f["obs"], f["actor_goal"])
            act, _ = agent.low_level(agent.policy, f["obs"], high_rep)
            out.update(value_loss=float(info["value/loss"]),
                       low_actor_loss=float(info["actor_low/loss"]),
                       high_actor_loss=float(info["actor_high/loss"]),
                       act_mse=float(((act - action) ** 2).mean()))
        else:
            v = -agent.value(f["obs"], f["goal"]).float().numpy()  # V = -d(s, g)
            out.update(value_loss=float(info["value/loss"]),
                       dynamics_loss=float(info["dynamics/loss"]),
                       actor_loss=float(info["actor/loss"]),
                       d_step=float(info["value/d_step_mean"]), lam=float(info["value/lambda"]))
        out["actor_mse"] = float(((mean - action) ** 2).mean())
    out.update(value_summary(v, batch))
    return out


# --- the reference's side (JAX) ----------------------------------------------------------------


def reference_inputs(kind: str, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The keys ``kind``'s total_loss reads, from a fixed batch (HIQL: the subgoal serves as the
    low level's goal and the high level's target; the actor goal as the high level's goal)."""
    names = ("observations", "next_observations", "actions", "value_goals", "actor_goals",
             "rewards", "masks")
    out = {k: batch[k] for k in names}
    if kind == "hiql":
        out.update(low_actor_goals=batch["subgoals"], high_actor_goals=batch["actor_goals"],
                   high_actor_targets=batch["subgoals"])
    return out


def reference_metrics(agent: Any, kind: str, batch: dict[str, np.ndarray],
                      value_summary: Callable[..., dict[str, float]]) -> dict[str, float]:
    """The metrics of ``METRICS[kind]`` from OGBench's agent on one fixed batch."""
    net = agent.network
    obs, actions = batch["observations"], batch["actions"]
    rows = training_rows(kind, batch)
    _, info = agent.total_loss(rows_of(reference_inputs(kind, batch), rows), net.params)
    out: dict[str, float] = {}
    if kind == "crl":
        _, phi, psi = net.select("critic")(obs, batch["value_goals"], actions, info=True)
        phi, psi = np.asarray(phi, np.float64), np.asarray(psi, np.float64)  # (K, B, R)
        logits = np.einsum("kir,kjr->kij", phi, psi) / np.sqrt(phi.shape[-1])
        v = np.diagonal(logits, axis1=1, axis2=2).mean(axis=0)
        mode = net.select("actor")(obs, batch["actor_goals"]).mode()
        out.update(critic_loss=float(info["critic/contrastive_loss"]),
                   actor_loss=float(info["actor/actor_loss"]),
                   **contrastive_summary(logits[:, rows][:, :, rows]))
    elif kind == "hiql":
        v = np.asarray(net.select("value")(obs, batch["value_goals"])).mean(axis=0)
        reps = net.select("goal_rep")(np.concatenate([obs, batch["subgoals"]], axis=-1))
        mode = net.select("low_actor")(obs, reps, goal_encoded=True).mode()
        high = np.asarray(net.select("high_actor")(obs, batch["actor_goals"]).mode())
        high = high / np.linalg.norm(high, axis=-1, keepdims=True) * np.sqrt(high.shape[-1])
        act = np.asarray(net.select("low_actor")(obs, high, goal_encoded=True).mode())
        out.update(value_loss=float(info["value/value_loss"]),
                   low_actor_loss=float(info["low_actor/actor_loss"]),
                   high_actor_loss=float(info["high_actor/actor_loss"]),
                   act_mse=float(np.mean((act - actions) ** 2)))
    else:
        v = -np.asarray(net.select("value")(obs, batch["value_goals"]))  # V = -d(s, g)
        mode = net.select("actor")(obs, batch["actor_goals"]).mode()
        out.update(value_loss=float(info["value/value_loss"]),
                   dynamics_loss=float(info["dynamics/dynamics_loss"]),
                   actor_loss=float(info["actor/actor_loss"]),
                   d_step=float(info["value/d_pos_mean"]), lam=float(info["value/lam"]))
    out["actor_mse"] = float(np.mean((np.asarray(mode) - actions) ** 2))
    out.update(value_summary(np.asarray(v), batch))
    return out
