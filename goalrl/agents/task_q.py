"""Task fine-tuning of a pretrained goal-conditioned Q: Q(o, a, g) or Q(o, a; z_task) on a reward.

The pretrained network sees the goal only as a vector z = encode_goal(g) (B, D), fused with the
observation features (goalrl.agents.networks). Fine-tuning keeps every weight and trains it on
the task reward. By default the task is given only by its reward (``task_input="embedding"``):
z is swapped for one learned vector z_task (D,), initialised from the mean goal embedding of
the labeled data's successful final frames (for Grasp: an object held up), so before any
update Q(o, a; z_task) already reads "how likely does this action lead to a state like
those?", and no goal image is read at fine-tuning or test time. The other input keeps the
scene's goal image (last section below). One update:

1. Random-shift o and o' (and g) with one shift per sample (as in pretraining).
2. Task TD target y = 1 where r_t = 1, else gamma * min_k Q_target,k(o', a*; z_task_target),
   a* from CEM on the target network: the same ``q_targets`` rule as goal reaching, with the
   task reward as the "reached" event. The Grasp scene never terminates (episodes end by the
   time limit), so o' is bootstrapped on every transition, the last one included.
   **Monte-Carlo floor** (``mc_floor``, as in MCAC): y is raised to the discounted return G_t
   the data's own action achieved from o_t. What the logged behaviour achieved is a lower
   bound on the best value, and the floor carries a late reward back along a whole labeled
   trajectory at once, instead of one step per target-network update (with tens of episodes
   and a slow target network, the value at the grasp itself otherwise lags far behind).
3. Conservative term (CQL-style, the contrastive negative of Actionable Models): among the
   candidate actions (N uniform or other rows' data actions, plus with ``policy_candidates``
   the current policy's: CEM on the online Q at o, and the target CEM's a* at o', as CQL's
   pi samples) pick one with probability ∝ exp(Q / T) and push its Q toward 0. A low T
   (default 0.1) picks nearly the best candidate, the action CEM would exploit.
   **Calibration** (``calibration="calql"``, Cal-QL, goalrl.agents.conservative): only the
   policy candidates' values are floored at the Monte-Carlo return G_t of the logged
   behaviour, max(Q(o, a_pi), G_t); random and data candidates are pushed down as before. No
   gradient pushes the policy's value below what the data shows achievable, so online
   fine-tuning does not start by un-learning an overly pessimistic value (the dip Cal-QL
   removes). Off by default (the config field says why).
4. Auxiliary goal reaching: ``AMAgent.loss`` on a relabeled batch of the unlabeled data,
   weighted by ``aux_weight`` (0 turns it off), so fine-tuning does not erase pretraining.
5. One Adam step on the network and z_task (z_task with its own learning rate), then Polyak
   averaging of the target network and of z_task's target copy.

**Goal-image task input** (``task_input="goal_image"``, not the default): each labeled
episode's own goal image g (the scene's ``desired_goal_image``, re-rendered from the episode's
seed by goalrl.data.episode_goals) goes through the pretrained goal encoder, and the task
reward trains Q(o, a, g). Acting then needs the scene's goal image: the task is partly given by
a picture that a pretrained goal reacher half-solves alone (docs/benchmarks/finetune.md).

**State observations** (``am.encoder.kind="state"``, from a state checkpoint or set for a
scratch run): o is the state vector (goalrl.envs.state, as pretraining reads it), no
augmentation; the task is given by its reward only (goal-image input is refused).

**Acting** (``act_with_target``, on by default): CEM over the Polyak-averaged target network
(and z_task's target copy), the average of about the last 1 / tau updates; the latest
weights' greedy policy proved much less steady from one evaluation to the next.

The agent composes an ``AMAgent`` (network, target network, RNG, auxiliary loss) instead of
copying its code; with the task embedding, acting and Q-values ignore any goal image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from goalrl.agents.am import AMAgent, AMConfig, _masked_mean
from goalrl.agents.base import (
    AgentBase,
    UpdateStats,
    autocast_context,
    batch_images,
    batch_proprio,
    make_adamw,
    to_tensor,
)
from goalrl.agents.config import config_from_dict
from goalrl.agents.conservative import CALIBRATIONS, conservative_loss
from goalrl.agents.losses import (
    PolyakAverage,
    bce_q_loss,
    check_neg_source,
    negative_candidates,
    q_targets,
)
from goalrl.agents.networks import GoalQNetwork
from goalrl.agents.observations import act_observations, batch_frames, mean_goal_embedding
from goalrl.data import keys as K
from goalrl.data.task import MC_RETURN, ONLINE

TASK_INPUTS = ("embedding", "goal_image")  # what stands in for the goal: z_task, or the goal image

# AMConfig fields that fix the network's shape: a checkpoint's values are the only valid ones
# ("encoder" is the nested EncoderConfig, every field of which shapes the network)
ARCHITECTURE_FIELDS = ("encoder", "head_hidden_dim", "num_q_heads", "behaviour_prior")


@dataclass
class TaskQConfig:
    """Hyper-parameters of task fine-tuning (network shape, CEM and augmentation: ``am``)."""

    gamma: float = 0.9  # discount of the task Q (a discounted probability of success)
    lr: float = 3e-4  # Adam learning rate of the network (encoder included)
    z_lr: float = 1e-3  # Adam learning rate of the task embedding z_task
    weight_decay: float = 0.0  # AdamW decoupled weight decay of the network (never of z_task)
    max_grad_norm: float = 0.0  # clip the global gradient norm (0 = no clipping)
    tau: float = 0.005  # Polyak rate of the target network and of z_task's target copy
    conservative: bool = True  # push down Q of sampled actions (contrastive negative, CQL-style)
    num_negatives: int = 64  # N candidate actions per observation
    # uniform | batch | mixed (half batch, half uniform) | swap: losses.negative_candidates
    neg_source: str = "mixed"
    lambda_neg: float = 1.0  # weight of the conservative term
    # p(candidate) ∝ exp(Q / T); 0.1 picks nearly the highest-Q candidate, as CQL's soft maximum
    # does: the greedy CEM policy exploits exactly those actions (AM's T = 1 is near uniform)
    neg_temperature: float = 0.1
    # the current policy's actions among the candidates (CEM on the online Q at o, the target
    # CEM's a* at o'): CQL's pi samples, the only candidates Cal-QL floors
    policy_candidates: bool = True
    # none | calql: Cal-QL floors the policy candidates' Q at the data's Monte-Carlo return
    # in the conservative term (goalrl.agents.conservative). Off by default: not yet measured
    # against none on this code (docs/benchmarks/finetune.md); the earlier rule, which floored
    # every candidate, ended the offline phase lower in all five Grasp pairs and is removed
    calibration: str = "none"
    mc_floor: bool = True  # raise TD targets to the Monte-Carlo return of the logged action
    aux_weight: float = 1.0  # weight of the goal-reaching loss on unlabeled data (0 = off)
    # embedding: the task given only by its reward, one learned z_task and no goal image at
    # fine-tuning or test time; goal_image: each episode's goal image (the batch's
    # GOAL_IMAGE) through the pretrained goal encoder, which a goal reacher half-solves alone
    task_input: str = "embedding"
    # act (online episodes, evaluation, commands) with the Polyak-averaged target weights and
    # z_task's target copy instead of the online ones: an average over about 1 / tau updates.
    # The greedy CEM policy of the last update's weights swung 30-40 points in success between
    # evaluations 250 updates apart on Grasp-v0; the averaged weights held steady
    # (docs/lab-notes.md)
    act_with_target: bool = True
    # network shape, CEM, augmentation and the auxiliary loss; with init=<ckpt> the shape comes
    # from the checkpoint, and its other values unless overridden here
    am: AMConfig = field(default_factory=AMConfig)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "agent") -> TaskQConfig:
        """Rebuild from ``asdict`` output (checkpoint metadata), its ``am`` nested or in the
        old flat layout (``AMConfig.from_dict``); unknown keys are ignored."""
        am = AMConfig.from_dict(values.get("am") or {}, where=f"{where}.am")
        # calibrate=true floored every candidate's value, not Cal-QL's rule: removed
        removed = {"calibrate": (True,)}
        return config_from_dict(cls, values, where=where, nested={"am": am},
                                removed_values=removed)


class TaskQAgent(AgentBase):
    """Q(o, a; z_task): ``update(batch, aux_batch)``, ``act(obs)``, ``q_values``, state dicts."""

    def __init__(
        self,
        cfg: TaskQConfig,
        image_shape: tuple[int, int, int],
        action_dim: int,
        proprio_dim: int | None = None,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        amp: bool = False,
    ) -> None:
        check_neg_source(cfg.neg_source)
        if cfg.task_input not in TASK_INPUTS:
            raise ValueError(
                f"agent.task_input must be one of {TASK_INPUTS}, got {cfg.task_input!r}"
            )
        if cfg.calibration not in CALIBRATIONS:
            raise ValueError(
                f"agent.calibration must be one of {CALIBRATIONS}, got {cfg.calibration!r}"
            )
        if cfg.task_input == "goal_image" and cfg.am.encoder.kind != "image":
            raise ValueError(
                "agent.task_input=goal_image reads the scene's goal image, but this network "
                f"reads states (agent.am.encoder.kind={cfg.am.encoder.kind!r}, from the init "
                "checkpoint or the command line): use agent.task_input=embedding (the task "
                "given by its reward)"
            )
        if cfg.calibration == "calql" and not (cfg.conservative and cfg.policy_candidates):
            raise ValueError(
                "agent.calibration=calql floors the policy's candidates of the conservative "
                f"term: it needs agent.conservative=true and agent.policy_candidates=true (got "
                f"{cfg.conservative} and {cfg.policy_candidates})"
            )
        self.cfg, self.amp = cfg, bool(amp)
        # network, target network, generator and the auxiliary loss live in the goal agent
        # No weight average in the goal agent: the task agent steps the shared network itself,
        # and goal images sent to a fine-tuned checkpoint are reached with that network.
        am_cfg = replace(cfg.am, ema_tau=0.0)
        self.goal_agent = AMAgent(
            am_cfg, image_shape, action_dim, proprio_dim, device, seed=seed, amp=amp
        )
        self.goal_agent.optimizer = None  # the task agent's optimiser steps the shared network
        g = self.goal_agent
        self.device, self.image_shape = g.device, g.image_shape
        self.action_dim, self.proprio_dim = g.action_dim, g.proprio_dim
        self.q = self.goal_agent.q
        self.q_target = self.goal_agent.q_target
        self.generator = self.goal_agent.generator
        dim = cfg.am.encoder.embed_dim
        self.z = torch.nn.Parameter(torch.zeros(dim, device=self.device))  # (D,) task embedding
        self.z_target = torch.zeros(dim, device=self.device)  # (D,) its Polyak-averaged copy
        # tensors listed once for clipping and the two Polyak averages (all updated in place)
        self._params = [*self.q.parameters(), self.z]
        self._target_averager = PolyakAverage(self.q_target, self.q)
        self._z_averager = PolyakAverage([self.z_target], [self.z])
        self.optimizer = make_adamw(
            [
                {"params": self._params[:-1], "lr": cfg.lr},
                {"params": [self.z], "lr": cfg.z_lr, "weight_decay": 0.0},
            ],
            self.device,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
        )
        self.step = 0

    # --- initialisation ---

    def load_pretrained(self, agent_state: Mapping[str, Any]) -> None:
        """Weights of a pretrained AM agent (or of a task agent, z_task included).

        A pretrained agent that kept a weight average (``agent.ema_tau``) starts the task agent
        from that average: the weights its goal-reaching evaluation measured. The target
        network starts equal to the online one; the optimiser starts fresh.
        """
        weights = agent_state.get("q_ema", agent_state["q"])
        self.q.load_state_dict(weights)
        self.q_target.load_state_dict(weights)
        if "z" in agent_state:
            self.set_task_embedding(agent_state["z"])

    def set_task_embedding(self, z: torch.Tensor) -> None:
        with torch.no_grad():
            self.z.copy_(torch.as_tensor(z, device=self.device).float())
            self.z_target.copy_(self.z)

    @torch.no_grad()
    def init_task_embedding(self, images: np.ndarray, chunk: int = 256) -> torch.Tensor:
        """z_task = mean of encode_goal over success frames (M, H, W, 3), or their states
        (M, S) with ``encoder.kind=state``; returns z (D,).

        The mean of the goal embeddings of the frames that show the task done is the goal
        vector closest (in squared distance) to all of them: the pretrained Q already knows how
        to reach states like those.
        """
        z = mean_goal_embedding(self.q, images, self.device, chunk)  # (D,)
        self.set_task_embedding(z)
        return z

    # --- training ---

    @property
    def calibrated(self) -> bool:
        """Cal-QL's floor is on (it floors policy candidates of the conservative term)."""
        return self.cfg.conservative and self.cfg.calibration == "calql"

    @torch.no_grad()
    def _candidates(
        self, action: torch.Tensor, e: torch.Tensor, next_best: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Conservative-term candidates (B, C, A) for data actions (B, A), and (C,) bool: which
        are the policy's. N uniform / other rows' data actions, then with ``policy_candidates``
        the online Q's CEM action at o (from the fused embedding e (B, F)) and the target
        CEM's a* at o' (``next_best`` (B, A), scored at o as CQL does)."""
        cfg = self.cfg
        cands = negative_candidates(action, cfg.num_negatives, cfg.neg_source, self.generator)
        parts = [cands]  # (B, N, A)
        if cfg.policy_candidates:
            here, _ = self.goal_agent.maximize(self.q, e.detach())  # (B, A)
            parts += [here[:, None].to(cands.dtype), next_best[:, None].to(cands.dtype)]
        is_policy = torch.zeros(sum(p.shape[1] for p in parts), dtype=torch.bool,
                                device=action.device)  # (C,)
        is_policy[cands.shape[1]:] = True
        return torch.cat(parts, dim=1), is_policy

    @property
    def uses_goal_image(self) -> bool:
        return self.cfg.task_input == "goal_image"

    @property
    def observation(self) -> str:
        """What the network reads: "image" (camera frames) or "state" (EncoderConfig.kind)."""
        return self.cfg.am.encoder.kind

    def _images(
        self, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """obs, next obs (B, H, W, 3) and, with goal-image input, the goal (B, H, W, 3) or None;
        states (B, S) with ``encoder.kind=state`` (never a goal: the task is its reward).

        One random shift per sample for all images (as in pretraining: obs and goal keep
        their relative geometry); states are used as they are."""
        if self.uses_goal_image and K.GOAL_IMAGE not in batch:
            raise KeyError(
                f"agent.task_input=goal_image needs the batch key {K.GOAL_IMAGE!r} (each "
                f"episode's goal image); this batch has only {sorted(batch)}"
            )
        am, kind = self.cfg.am, self.observation
        augment = am.augment and am.pad > 0 and kind == "image"
        names = ("obs", "next_obs", "goal") if self.uses_goal_image else ("obs", "next_obs")
        f = batch_frames(batch, kind, names, self.device,
                         generator=self.generator if augment else None, pad=am.pad)
        return f["obs"], f["next_obs"], f.get("goal")

    def _embed(
        self,
        net: torch.nn.Module,
        obs: torch.Tensor,
        prop: Any,
        z: torch.Tensor,
        goal: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """e (B, F) = fuse(encode_obs(o), z_task broadcast to (B, D)), or with a goal image
        (B, H, W, 3) fuse(encode_obs(o), encode_goal(g)) in one trunk call."""
        if goal is not None:
            return net.encode(obs, goal, prop)
        h = net.encode_obs(obs, prop)  # (B, D + Dp)
        return net.fuse(h, z.to(h.dtype).expand(obs.shape[0], -1))

    def update(
        self, batch: Mapping[str, Any], aux_batch: Mapping[str, Any] | None = None
    ) -> UpdateStats:
        """One gradient step on a reward-labeled batch (+ the auxiliary goal-reaching batch);
        returns ``task/...`` and ``aux/...`` diagnostics, read from the device on first access.

        ``batch``: OBS_IMAGE, NEXT_OBS_IMAGE (B, H, W, 3) (OBS_STATE, NEXT_OBS_STATE (B, S)
        with ``encoder.kind=state``), ACTION (B, A), REWARD (B,), and
        MC_RETURN (B,) for ``calibration`` and ``mc_floor``; proprio keys if the network uses them;
        GOAL_IMAGE (B, H, W, 3) with ``task_input="goal_image"``.
        ``aux_batch``: a relabeled GoalBatchSampler batch, used when ``aux_weight`` > 0.
        """
        cfg, dev = self.cfg, self.device
        obs, next_obs, goal = self._images(batch)
        action = to_tensor(batch[K.ACTION], dev).float()  # (B, A)
        rewarded = to_tensor(batch[K.REWARD], dev).float() > 0  # (B,)
        prop = self.goal_agent._proprio(batch, K.OBS_PROPRIO)
        next_prop = self.goal_agent._proprio(batch, K.NEXT_OBS_PROPRIO)
        need_mc = cfg.mc_floor or self.calibrated
        mc = to_tensor(batch[MC_RETURN], dev).float() if need_mc else None  # (B,)

        with torch.no_grad(), autocast_context(dev, self.amp):
            e_next = self._embed(self.q_target, next_obs, next_prop, self.z_target, goal)  # (B, F)
            next_best, next_logit = self.goal_agent.maximize(self.q_target, e_next)  # (B, A), (B,)
            next_q = torch.sigmoid(next_logit.float())  # (B,)
            td_target = q_targets(rewarded, next_q, cfg.gamma)  # (B,)
            target = torch.maximum(td_target, mc) if cfg.mc_floor else td_target  # (B,)

        with autocast_context(dev, self.amp):
            e = self._embed(self.q, obs, prop, self.z, goal)  # (B, F)
            actions = action[:, None]  # (B, 1, A)
            if cfg.conservative:
                cands, is_policy = self._candidates(action, e, next_best)  # (B, C, A), (C,)
                actions = torch.cat([actions, cands], dim=1)  # (B, 1 + C, A)
            logits = self.q.head(e, actions).float()  # (B, 1 [+ C], K)
            pos_logits = logits[:, 0]  # (B, K)
            loss_td = bce_q_loss(pos_logits, target[:, None])
            if cfg.conservative:
                cand_logits = logits[:, 1:]  # (B, C, K)
                loss_neg, idx, seen_logits = conservative_loss(
                    cand_logits, cfg.lambda_neg, temperature=cfg.neg_temperature,
                    generator=self.generator, is_policy=is_policy,
                    floor=mc if self.calibrated else None,
                )
            else:
                loss_neg = torch.zeros((), device=dev)
            loss = loss_td + loss_neg
            aux_stats: dict[str, torch.Tensor] = {}
            if aux_batch is not None and cfg.aux_weight > 0:
                aux_loss, aux_stats = self.goal_agent.loss(aux_batch)
                loss = loss + cfg.aux_weight * aux_loss

        with torch.no_grad():
            q_pos = torch.sigmoid(pos_logits).mean(dim=-1)  # (B,)
            stats: dict[str, torch.Tensor] = {
                "task/loss": loss.detach(),
                "task/loss_td": loss_td.detach(),
                "task/loss_conservative": loss_neg.detach(),
                "task/q_data": q_pos.mean(),
                "task/q_rewarded": _masked_mean(q_pos, rewarded),
                "task/target_mean": target.mean(),
                "task/td_target_mean": td_target.mean(),
                "task/next_q": next_q.mean(),
                "task/frac_rewarded": rewarded.float().mean(),
            }
            if cfg.conservative:
                q_seen = torch.sigmoid(seen_logits.detach()).mean(dim=-1)  # (B, C) over heads
                rows = torch.arange(q_seen.shape[0], device=dev)
                stats["task/q_neg"] = q_seen[rows, idx].mean()  # the pushed-down candidates
                stats["task/q_random"] = q_seen[:, ~is_policy].mean()  # uniform and data ones
                if cfg.policy_candidates:
                    q_pi = torch.sigmoid(cand_logits.detach()[:, is_policy]).mean(dim=-1)  # (B, 2)
                    stats["task/q_policy"] = q_pi.mean()  # before any floor
                    if self.calibrated:
                        stats["task/mc_return"] = mc.mean()
                        stats["task/frac_floored"] = (q_pi < mc[:, None]).float().mean()
            if ONLINE in batch:
                stats["task/frac_online"] = to_tensor(batch[ONLINE], dev).float().mean()
            for k, v in aux_stats.items():
                stats["aux/" + k.split("/", 1)[-1]] = v

        stats["task/grad_norm"] = self.apply_gradients(loss, self._params, cfg.max_grad_norm)
        self._target_averager(cfg.tau)
        self._z_averager(cfg.tau)
        self.step += 1
        stats["task/z_norm"] = self.z.detach().norm()
        return UpdateStats(stats)

    # --- inference ---

    @torch.no_grad()
    def _task_embedding(
        self, obs_image: Any, goal_image: Any, proprio: Any
    ) -> tuple[torch.Tensor, bool]:
        """e (B, F) for acting and scoring: the observation fused with z_task, or with the
        goal image under ``task_input="goal_image"``; and ``single``."""
        if self.uses_goal_image and goal_image is None:
            raise ValueError(
                "this task agent was fine-tuned with agent.task_input=goal_image: acting needs "
                "the scene's goal image (the env's desired_goal_image)"
            )
        if self.uses_goal_image:
            obs, goal, single = batch_images(obs_image, goal_image, self.device)
        else:  # the task embedding stands in for the goal: none is read
            (obs, single), goal = act_observations(obs_image, self.observation, self.device), None
        prop = batch_proprio(proprio, self.proprio_dim, self.device)
        net, z = self._acting_weights()
        with autocast_context(self.device, self.amp):
            return self._embed(net, obs, prop, z, goal), single

    def _acting_weights(self) -> tuple[GoalQNetwork, torch.Tensor]:
        """(network, z_task) used to act and score: the target copies with act_with_target."""
        if self.cfg.act_with_target:
            return self.q_target, self.z_target
        return self.q, self.z

    @torch.no_grad()
    def act(
        self,
        obs_image: Any,
        goal_image: Any = None,
        proprio: Any = None,
        *,
        explore_std: float = 0.0,
        return_q: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Greedy CEM action for the task, plus optional Gaussian exploration noise.

        Same signature as ``AMAgent.act`` so evaluation and command code can drive either;
        ``goal_image`` is ignored unless ``task_input="goal_image"`` (the task embedding stands
        in for it). obs (B, H, W, 3) -> (B, A); (H, W, 3) -> (A,); states (B, S) or (S,) with
        ``encoder.kind=state`` (the env's ``state``). The network and generator
        are the goal agent's, so its CEM acting does the rest.
        """
        e, single = self._task_embedding(obs_image, goal_image, proprio)
        return self.goal_agent.act_on_embedding(
            e, single, explore_std=explore_std, return_q=return_q, net=self._acting_weights()[0]
        )

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
        """Task Q in [0, 1] of actions (B, A) -> (B,) or (B, N, A) -> (B, N); the goal is used
        only with ``task_input="goal_image"``."""
        e, single = self._task_embedding(obs_image, goal_image, proprio)
        return self.goal_agent.q_on_embedding(
            e, actions, single, reduce=reduce, net=self._acting_weights()[0]
        )

    # --- checkpoints ---

    def state_dict(self) -> dict[str, Any]:
        """Network, target, task embedding (and its target), optimiser, step, RNG, config."""
        return {
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "z": self.z.detach().clone(),
            "z_target": self.z_target.clone(),
            **self.training_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state.get("q_target", state["q"]))
        with torch.no_grad():
            self.z.copy_(state["z"].to(self.device))
            self.z_target.copy_(state.get("z_target", state["z"]).to(self.device))
        self.load_training_state(state)
