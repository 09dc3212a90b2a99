"""Actionable Models: offline goal-conditioned Q-learning with relabeling, chaining and negatives.

One update on a relabeled batch (Chebotar et al. 2021; what goalrl measured about each choice:
docs/lab-notes.md):

1. Random-shift obs, next obs and goal with **one shift per sample shared by the three images**.
   The Q-function compares obs with goal; a shared shift keeps their relative geometry (a reached
   goal stays pixel-identical to the next frame) while still breaking absolute-pixel overfitting.
   Independent shifts would add up to 2 * pad pixels of position noise between obs and goal,
   which in a 64x64 image is more than the motion of one step.
2. Target: y = 1 where the goal is the next frame, else gamma * min_k Q_target,k(o', a*, g), with
   a* from CEM on the target network maximising the min over the two heads (clipped double Q).
   Chained samples (goal from another episode) are bootstrap-only whatever ``reached`` says.
   With ``mc_floor`` a hindsight target is raised to gamma^(k-1) for a goal k steps ahead.
3. Positives: BCE of both online heads on the dataset action against y.
4. Negatives: N candidate actions per (o, g) (uniform, other rows' data actions, or near misses
   of the data action, plus with ``policy_negative`` the target network's greedy CEM action
   that step 2 found at (o', g), one step from o); one is picked with probability ∝ exp(Q / T)
   (Q averaged over heads, no gradient) and trained toward 0 with weight lambda_neg.
5. With ``behaviour_prior``: a Gaussian head pi_b(a | o, g) on the same fused embedding, fitted
   by beta-NLL to the data actions of non-chained rows (weight prior_weight); every CEM (targets
   and acting) then starts from pi_b's Gaussian instead of the uniform box (EMaQ-style support
   constraint: the max runs over actions like the data's, not over actions the data never took).
6. With ``actor``: a DDPG+BC actor on Q that never trains Q (am_actor.py; ``act_rule=actor``).
7. Adam step on the online network, then Polyak averaging of the target network (tau) and of
   the acting copy q_ema (ema_tau, a slower average that ``act`` and ``q_values`` use).

The agent holds its own torch.Generator (augmentation, CEM, negatives, exploration), saved in
``state_dict`` together with both networks and the optimiser so a resumed run continues exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from goalrl.agents.am_actor import AMActor
from goalrl.agents.base import (
    AgentBase,
    UpdateStats,
    add_exploration,
    autocast_context,
    batch_proprio,
    make_adamw,
    q_output,
    to_tensor,
)
from goalrl.agents.cem import cem_maximize
from goalrl.agents.config import EncoderConfig, config_from_dict
from goalrl.agents.losses import (
    PolyakAverage,
    bce_q_loss,
    check_neg_source,
    gaussian_nll,
    hindsight_floor,
    negative_candidates,
    negative_loss,
    q_targets,
    select_negatives,
)
from goalrl.agents.networks import GoalQNetwork
from goalrl.agents.observations import act_frames, batch_frames
from goalrl.data import keys as K

ACT_RULES = ("cem", "prior_mean", "actor")  # AMConfig.act_rule
AM_NEG_SOURCES = ("uniform", "batch", "swap")  # AMConfig.neg_source


@dataclass
class AMConfig:
    """Hyper-parameters of the Actionable Models agent (batch size lives with the sampler)."""

    gamma: float = 0.9  # discount; Q reads as the discounted probability of reaching g
    lr: float = 3e-4  # Adam learning rate of the Q network (encoder included)
    weight_decay: float = 0.0  # AdamW-style decoupled weight decay (0 = plain Adam)
    max_grad_norm: float = 0.0  # clip the global gradient norm to this value (0 = no clipping)
    # Polyak rate of the target network, target <- (1 - tau) target + tau online; 0.02 lets values
    # travel back along a trajectory within a few thousand updates (0.005 lagged on CPU budgets)
    tau: float = 0.02
    # Polyak rate of q_ema, the weight average that acts (and is evaluated): about the last
    # 1 / ema_tau updates, less early on (losses.ema_rate); 0 acts with the latest weights.
    # Training never reads it, so it changes no update.
    ema_tau: float = 0.0005
    chaining: bool = True  # the sampler draws chained goals; the agent treats them bootstrap-only
    negatives: bool = True  # contrastive artificial negatives (pick ∝ exp(Q), train toward 0)
    num_negatives: int = 16  # N candidate actions per (o, g) for the negative
    # where candidates come from: uniform | batch (other rows' data actions) | swap (the data
    # action with some dimensions taken from other rows: near misses); see
    # losses.negative_candidates for why uniform alone is easy to game
    neg_source: str = "batch"
    lambda_neg: float = 1.0  # weight of the negative BCE term relative to the TD term
    # p(candidate) ∝ exp(Q / T). T = 1 is the Actionable Models rule, but Q in [0, 1] then
    # picks nearly uniformly (at most a factor e apart); 0.05 picks mostly the best candidates,
    # the actions CEM would exploit (docs/lab-notes.md: with T = 1, the greedy action copied
    # the pictured arm on Push)
    neg_temperature: float = 0.05
    # also offer the target network's greedy action at (o', g), which the TD target's CEM found
    # anyway, as a candidate: CEM acts on exactly the actions the Q-function overrates, which
    # other candidates rarely hit
    policy_negative: bool = True
    # raise hindsight targets to gamma^(k-1), the value the logged actions achieved toward a goal
    # k steps ahead (losses.hindsight_floor); needs the sampler's OFFSET key
    mc_floor: bool = True
    # a Gaussian behaviour prior pi_b(a | o, g) on the fused embedding (beta-NLL on the data
    # actions of non-chained rows); CEM's first iteration samples from it instead of the box, so
    # max_a Q runs over actions the data takes where Q is trained, not where it is extrapolated
    behaviour_prior: bool = False
    prior_weight: float = 1.0  # weight of the prior's NLL in the loss (it trains the encoder too)
    # how act() picks an action: "cem" maximises Q by CEM (the recipe); "prior_mean" takes the
    # behaviour prior's mean and only scores it with Q (needs behaviour_prior; on Push the
    # prior's mean reached more goals than CEM on Q: docs/lab-notes.md); "actor" the actor's
    act_rule: str = "cem"
    # a deterministic actor on the fused embedding trained DDPG+BC on Q (am_actor.py); its loss
    # never trains Q, so the critic's updates are the same with it on
    actor: bool = False
    actor_alpha: float = 0.3  # weight of its BC term (squared error to the data action)
    augment: bool = True  # DrQ random shift of obs, next obs and goal (one shift per sample)
    pad: int = 4  # random-shift padding in pixels (for 64x64 images; scale with image size)
    cem_iterations: int = 2  # CEM iterations for max_a' Q_target in the TD target
    cem_samples: int = 64  # CEM samples per iteration for targets
    cem_elites: int = 6  # CEM elites for targets
    act_cem_iterations: int = 3  # CEM iterations when acting (online network)
    act_cem_samples: int = 128  # CEM samples per iteration when acting
    act_cem_elites: int = 10  # CEM elites when acting
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # image/proprio encoder shape
    head_hidden_dim: int = 128  # H: hidden width of each action head (and of the actor)
    num_q_heads: int = 2  # K: Q heads for clipped double Q (min over heads in targets and acting)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "agent") -> AMConfig:
        """From ``asdict`` output, nested or the old flat layout (``config.config_from_dict``);
        ValueError naming a removed option a checkpoint relied on."""
        removed = {"act_rule": ("prior_best",), "neg_source": ("mixed",)}
        return config_from_dict(cls, values, where=where, removed_values=removed)


def check_act_rule(rule: str, behaviour_prior: bool, actor: bool = False) -> None:
    """ValueError naming the field unless ``rule`` is an act rule this network can follow."""
    if rule not in ACT_RULES:
        raise ValueError(f"agent.act_rule={rule!r}: expected one of {', '.join(ACT_RULES)}")
    needs = {"prior_mean": ("behaviour_prior", behaviour_prior), "actor": ("actor", actor)}
    if rule in needs and not needs[rule][1]:
        raise ValueError(f"agent.act_rule={rule} needs agent.{needs[rule][0]}=true")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values over mask (NaN when the mask is empty); no host sync."""
    return (values * mask.float()).sum() / mask.float().sum()


class AMAgent(AgentBase):
    """Actionable Models agent: ``update(batch)``, ``act(obs, goal)``, ``q_values``, state dicts."""

    def __init__(
        self,
        cfg: AMConfig,
        image_shape: tuple[int, int, int],
        action_dim: int,
        proprio_dim: int | None = None,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        amp: bool = False,
    ) -> None:
        check_neg_source(cfg.neg_source, AM_NEG_SOURCES)
        check_act_rule(cfg.act_rule, cfg.behaviour_prior, cfg.actor)
        self._setup(cfg, image_shape, action_dim, proprio_dim, device, seed, amp)
        self.q = self.build_seeded(
            lambda: GoalQNetwork(
                self.image_shape,
                self.action_dim,
                cfg.encoder,
                proprio_dim=self.proprio_dim,
                head_hidden_dim=cfg.head_hidden_dim,
                num_heads=cfg.num_q_heads,
                behaviour_prior=cfg.behaviour_prior,
            ).to(self.device),
            seed,
        )
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self._target_averager = PolyakAverage(self.q_target, self.q)
        # the acting weight average and its averager; None when ema_tau = 0
        self.q_ema, self._ema_averager = self.make_weight_average(self.q, cfg.ema_tau)
        # Gradients flow through train_net: the network itself, or DistributedDataParallel(q)
        # when goalrl.training runs under torchrun (DDP syncs gradients in its backward hooks).
        self.train_net: torch.nn.Module = self.q
        self._params = list(self.q.parameters())  # listed once: clipped every update
        self.actor = AMActor(self, self.q.encoder.feature_dim, seed) if cfg.actor else None
        # the actor in a param group of its own, never clipped with Q (max_grad_norm is Q's)
        groups = AMActor.param_groups(self._params, self.actor)
        self.optimizer = make_adamw(groups, self.device, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if self.actor is not None:  # under torchrun its gradients are averaged before each step
            self.optimizer.register_step_pre_hook(self.actor.average_gradients)

    # --- batches ---

    def _images(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, ...]:
        """o, o' and g: images (B, H, W, 3) uint8 with one random shift per sample shared by the
        three (step 1 above), or states (B, S) with ``encoder.kind=state`` (no augmentation)."""
        kind = self.cfg.encoder.kind
        augment = self.cfg.augment and self.cfg.pad > 0 and kind == "image"
        f = batch_frames(batch, kind, ("obs", "next_obs", "goal"), self.device,
                         generator=self.generator if augment else None, pad=self.cfg.pad)
        return f["obs"], f["next_obs"], f["goal"]

    def _proprio(self, batch: Mapping[str, Any], key: str) -> torch.Tensor | None:
        if self.proprio_dim is None:
            return None
        return to_tensor(batch[key], self.device).float()  # (B, P)

    def _offset(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Hindsight offsets k (B,) for ``mc_floor``; -1 marks chained goals."""
        if K.OFFSET not in batch:
            raise KeyError(
                f"agent.mc_floor needs the batch key {K.OFFSET!r} (hindsight offset k), which "
                f"goalrl's relabeling sampler provides; this batch has only {sorted(batch)}"
            )
        return to_tensor(batch[K.OFFSET], self.device)  # (B,)

    def _score_fn(self, net: GoalQNetwork, e: torch.Tensor):
        """CEM score: min over heads of the logits (sigmoid is monotone, so argmax is the same)."""
        return lambda actions: net.head(e, actions).min(dim=-1).values  # (B, N)

    def maximize(
        self, net: GoalQNetwork, e: torch.Tensor, *, acting: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """argmax_a of ``net``'s min-over-heads logit by CEM for embeddings e (B, F).

        Returns (B, A) actions and (B,) logits. Target schedule by default, the acting one with
        ``acting``. A net with a behaviour prior seeds the first iteration from its Gaussian
        (per-row mean and std) instead of the uniform box.
        """
        cfg = self.cfg
        prior = net.prior(e)  # ((B, A), (B, A)) or None
        init_mean, init_std = (None, None) if prior is None else (prior[0], prior[1].exp())
        return cem_maximize(
            self._score_fn(net, e),
            e.shape[0],
            self.action_dim,
            iterations=cfg.act_cem_iterations if acting else cfg.cem_iterations,
            samples=cfg.act_cem_samples if acting else cfg.cem_samples,
            elites=cfg.act_cem_elites if acting else cfg.cem_elites,
            init_mean=init_mean,
            init_std=init_std,
            generator=self.generator,
            device=self.device,
        )

    # --- training ---

    def loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The Actionable Models loss of a relabeled batch (with gradient) and its diagnostics.

        No optimiser step: ``update`` takes it, and a fine-tuning agent adds it as an auxiliary
        term to its own loss (goalrl.agents.task_q). Diagnostics are 0-d tensors, no host sync.
        """
        cfg, dev = self.cfg, self.device
        obs, next_obs, goal = self._images(batch)
        action = to_tensor(batch[K.ACTION], dev).float()  # (B, A)
        chained = (
            to_tensor(batch[K.CHAINED], dev).bool()
            if K.CHAINED in batch
            else torch.zeros(action.shape[0], dtype=torch.bool, device=dev)
        )  # (B,)
        reached = to_tensor(batch[K.REACHED], dev).bool() & ~chained  # (B,)
        proprio = self._proprio(batch, K.OBS_PROPRIO)
        next_proprio = self._proprio(batch, K.NEXT_OBS_PROPRIO)
        bsz = action.shape[0]

        # TD target from the target network; no gradient.
        with torch.no_grad(), autocast_context(dev, self.amp):
            e_next = self.q_target.encode(next_obs, goal, next_proprio)  # (B, F) at (o', g)
            best, best_logit = self.maximize(self.q_target, e_next)  # (B, A) a*, (B,) its logit
            next_q = torch.sigmoid(best_logit.float())  # (B,)
            target = q_targets(reached, next_q, cfg.gamma)  # (B,)
            if cfg.mc_floor:
                target = torch.maximum(target, hindsight_floor(self._offset(batch), cfg.gamma))
            # (B, 1, A): the greedy action at o', one step from o, offered as a negative
            greedy = best[:, None] if cfg.negatives and cfg.policy_negative else None

        with autocast_context(dev, self.amp):
            actions = action[:, None]  # (B, 1, A)
            if cfg.negatives:
                cands = negative_candidates(
                    action, cfg.num_negatives, cfg.neg_source, self.generator
                )  # (B, N, A)
                if greedy is not None:
                    cands = torch.cat([cands, greedy.to(cands.dtype)], dim=1)  # (B, N + 1, A)
                actions = torch.cat([actions, cands], dim=1)  # (B, 1 + N [+ 1], A)
            # One forward through train_net (the network, or its DDP wrapper under torchrun):
            # the images are encoded once and the head scores the data action and candidates.
            out = self.train_net(obs, goal, actions, proprio, with_prior=cfg.behaviour_prior)
            logits, prior = out if cfg.behaviour_prior else (out, None)
            logits = logits.float()  # (B, 1 [+ N], K)
            pos_logits = logits[:, 0]  # (B, K)
            loss_td = bce_q_loss(pos_logits, target[:, None])
            if cfg.negatives:
                cand_logits = logits[:, 1:]  # (B, N, K)
                idx = select_negatives(
                    cand_logits.detach(), self.generator, temperature=cfg.neg_temperature
                )  # (B,)
                neg_logits = cand_logits[torch.arange(bsz, device=dev), idx]  # (B, K)
                loss_neg = negative_loss(neg_logits, cfg.lambda_neg)
            else:
                loss_neg = torch.zeros((), device=dev)
            loss = loss_td + loss_neg
            if prior is not None:
                # beta 1: the prior's mean gets the squared-error gradient of every row (gcbc.py)
                nll = gaussian_nll(action, prior[0], prior[1], beta=1.0)  # (B,)
                # chained goals say nothing about the action: the mean is over the rest
                used = (~chained).float()  # (B,)
                loss_prior = (nll * used).sum() / used.sum().clamp_min(1e-6)
                loss = loss + cfg.prior_weight * loss_prior

        with torch.no_grad():
            q_pos = torch.sigmoid(pos_logits).mean(dim=-1)  # (B,) mean over heads
            hindsight = ~chained & ~reached
            stats = {
                "critic/loss": loss.detach(),
                "critic/loss_td": loss_td.detach(),
                "critic/loss_negatives": loss_neg.detach(),
                "critic/q_pos": q_pos.mean(),
                "critic/q_reached": _masked_mean(q_pos, reached),
                "critic/q_bootstrap": _masked_mean(q_pos, hindsight),
                "critic/q_chained": _masked_mean(q_pos, chained),
                "critic/target_mean": target.mean(),
                "critic/target_bootstrap": _masked_mean(target, hindsight),
                "critic/target_chained": _masked_mean(target, chained),
                "critic/next_q": next_q.mean(),
                "critic/frac_reached": reached.float().mean(),
                "critic/frac_chained": chained.float().mean(),
            }
            if cfg.negatives:
                stats["critic/q_neg"] = torch.sigmoid(neg_logits.detach()).mean()
                stats["critic/q_random"] = torch.sigmoid(cand_logits.detach()).mean()
            if prior is not None:
                stats["prior/nll"] = loss_prior.detach()
                stats["prior/mse"] = _masked_mean(((prior[0] - action) ** 2).mean(-1), ~chained)
                stats["prior/std"] = prior[1].exp().mean()
            if greedy is not None:
                stats["critic/q_greedy"] = torch.sigmoid(cand_logits[:, -1].detach()).mean()
        if self.actor is not None:  # its gradients reach only the actor (am_actor.py)
            with autocast_context(dev, self.amp):
                loss_a, actor_stats = self.actor.loss(self.q, obs, goal, proprio, action, chained)
            loss = loss + loss_a
            stats.update(actor_stats)
        return loss, stats

    def update(self, batch: Mapping[str, Any]) -> UpdateStats:
        """One gradient step on a relabeled batch; returns ``critic/...`` diagnostics (read from
        the device on first access)."""
        loss, stats = self.loss(batch)
        stats["critic/grad_norm"] = self.apply_gradients(loss, self._params, self.cfg.max_grad_norm)
        self._target_averager(self.cfg.tau)
        self.step += 1
        self.update_weight_average(self._ema_averager, self.cfg.ema_tau)
        self.update_weight_average(self.actor.averager if self.actor else None, self.cfg.ema_tau)
        return UpdateStats(stats)

    # --- inference ---

    def set_act_rule(self, rule: str) -> None:
        """Act by ``rule`` (AMConfig.act_rule) from now on; training is unaffected."""
        check_act_rule(rule, self.cfg.behaviour_prior, self.cfg.actor)
        self.cfg.act_rule = rule

    @property
    def acting_q(self) -> GoalQNetwork:
        """The network ``act`` and ``q_values`` use: the weight average q_ema when kept."""
        return self.q if self.q_ema is None else self.q_ema

    def _obs_goal(
        self, obs_image: Any, goal_image: Any, proprio: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
        obs, goal, single = act_frames(obs_image, goal_image, self.cfg.encoder.kind, self.device)
        return obs, goal, batch_proprio(proprio, self.proprio_dim, self.device), single

    @torch.no_grad()
    def act(
        self,
        obs_image: Any,
        goal_image: Any,
        proprio: Any = None,
        *,
        explore_std: float = 0.0,
        return_q: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Greedy CEM action on ``acting_q``, plus optional Gaussian exploration noise.

        obs (B, H, W, 3) -> (B, A); an unbatched obs (H, W, 3) -> (A,); states (B, S) or (S,)
        with encoder.kind=state. A single goal is broadcast over a batch of observations. No
        augmentation at acting time. With ``return_q`` also the min-over-heads Q of the greedy
        action, (B,) or scalar, which CEM computed anyway (before exploration noise).
        """
        obs, goal, prop, single = self._obs_goal(obs_image, goal_image, proprio)
        with autocast_context(self.device, self.amp):
            e = self.acting_q.encode(obs, goal, prop)  # (B, F)
        return self.act_on_embedding(e, single, explore_std=explore_std, return_q=return_q)

    @torch.no_grad()
    def act_on_embedding(
        self,
        e: torch.Tensor,
        single: bool,
        *,
        explore_std: float = 0.0,
        return_q: bool = False,
        net: GoalQNetwork | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """CEM over the head of ``net`` (default: ``acting_q``) for fused embeddings e (B, F), or
        by ``act_rule`` the behaviour prior's mean or the actor's action, scored by the head;
        the acting half of ``act``, shared with the task agent (whose e comes from its task
        embedding or goal image, and which may act with its target weights)."""
        net = net or self.acting_q
        with autocast_context(self.device, self.amp):
            if self.cfg.act_rule in ("prior_mean", "actor"):  # (B, A) inside the box (tanh)
                best = net.prior(e)[0] if self.cfg.act_rule == "prior_mean" else self.actor.act(e)
                best_logit = self._score_fn(net, e)(best[:, None])[:, 0].float()  # (B,)
            else:
                best, best_logit = self.maximize(net, e, acting=True)  # (B, A), (B,)
        best = add_exploration(best, explore_std, self.generator)
        out = best.float().cpu().numpy()
        q = torch.sigmoid(best_logit.float()).cpu().numpy()  # (B,)
        if single:
            out, q = out[0], q[0]
        return (out, q) if return_q else out

    @torch.no_grad()
    def q_values(
        self,
        obs_image: Any,
        goal_image: Any,
        actions: Any,
        proprio: Any = None,
        *,
        reduce: str = "min",
    ) -> np.ndarray:
        """Q in [0, 1] of actions (B, A) -> (B,), or (B, N, A) -> (B, N), from ``acting_q``.

        An unbatched obs (H, W, 3) takes actions (A,) -> scalar or (N, A) -> (N,). ``reduce``:
        "min" (clipped double Q, as used for acting), "mean", or "none" (adds a trailing head
        axis).
        """
        obs, goal, prop, single = self._obs_goal(obs_image, goal_image, proprio)
        with autocast_context(self.device, self.amp):
            e = self.acting_q.encode(obs, goal, prop)  # (B, F)
        return self.q_on_embedding(e, actions, single, reduce=reduce)

    @torch.no_grad()
    def q_on_embedding(
        self,
        e: torch.Tensor,
        actions: Any,
        single: bool,
        *,
        reduce: str = "min",
        net: GoalQNetwork | None = None,
    ) -> np.ndarray:
        """Q in [0, 1] of given actions for fused embeddings e (B, F) already computed: runs
        only ``net``'s action head (default: ``acting_q``, the weight average when kept), no
        encoder. actions (B, A) -> (B,), (B, N, A) -> (B, N), and without the B axis when
        ``single``; heads reduced by ``reduce`` as in ``q_values``. The scoring half of
        ``q_values``, shared with the task agent (whose e comes from its task embedding)."""
        acts = to_tensor(actions, self.device).float()
        if single:
            acts = acts[None]  # (1, A) or (1, N, A)
        squeeze = acts.ndim == 2
        acts = acts[:, None] if squeeze else acts  # (B, N, A)
        with autocast_context(self.device, self.amp):
            q = torch.sigmoid((net or self.acting_q).head(e, acts).float())  # (B, N, K)
        return q_output(q, reduce, squeeze=squeeze, single=single)

    # --- checkpoints ---

    def state_dict(self) -> dict[str, Any]:
        """Networks, target network, optimiser, step and RNG state (everything a resume needs)."""
        return {
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            **({} if self.q_ema is None else {"q_ema": self.q_ema.state_dict()}),
            **({} if self.actor is None else self.actor.state_dict()),
            **self.training_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` output; the target net is copied from q if absent."""
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state.get("q_target", state["q"]))
        self.load_weight_average(self.q_ema, state, "q_ema", "q")
        if self.actor is not None:
            self.actor.load_state_dict(state)
        self.load_training_state(state)
