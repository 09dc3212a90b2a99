"""Networks of the goal-conditioned agents: a shared image encoder, Q(o, a, g) and pi(a | o, g).

Structure of the Q network (what the API exposes and why)::

    obs (B,H,W,3) uint8 --trunk--proj--> h_img (B, D) --+-- [proprio MLP] --> h (B, D + Dp)
    goal (B,H,W,3) uint8 --trunk--proj--> z (B, D)       |       (same trunk and projection)
    fuse(h, z) = MLP([h_img, z, h_img * z, |h_img - z|, h_prop]) --> e (B, F)
    head(e, actions (B, N, A)) --> logits (B, N, 2)      two heads, action enters only here

Design choices:

* **Siamese encoder (one trunk and projection for obs and goal).** Obs and goal are frames of the
  same camera, so one encoder halves the parameters, lets one conv call process the 2B images of a
  batch, and puts obs and goal in the same feature space: a goal identical to the observation
  gives h_img == z exactly, a cue the fusion can read directly. The goal enters only through the
  vector z (B, D) in (-1, 1)^D (LayerNorm + tanh), so fine-tuning can swap z for a learned task
  embedding initialised from ``encode_goal`` of successful final frames.
* **Late fusion with products and absolute differences** rather than FiLM or early (channel)
  fusion. Early fusion would need the goal image, not a vector, and FiLM of the conv features
  would tie the obs trunk to z, so the trunk could not run once for many goals or task
  embeddings. Late fusion keeps ``encode_obs`` independent of the goal; the elementwise product
  and |h - z| give the MLP the comparison features (a linear layer on [h, z] alone cannot form
  them) that plain concatenation would have to learn.
* **Patchify stem.** The first conv has kernel = stride = max(1, min(H, W) // 16), so every image
  size maps to a ~16x16 grid, followed by stride-2 3x3 convs down to ~4x4. The conv cost is then
  almost independent of the image size and small (about 2.4 M multiply-adds per 64x64 image with
  the default widths), which is what makes updates fast on a 2-core CPU. uint8 BHWC input is
  permuted (not copied) to a channels-last float tensor, the layout oneDNN convolutions prefer.
* **Cheap action head.** The first head layer is split, W [e; a] = W_e e + W_a a, so W_e e is
  computed once per (o, g) and only W_a a plus two small layers run per candidate action; CEM's
  (B, N, A) actions cost O(N * H^2), never a conv. Two heads (clipped double Q) are computed as one
  batched matmul over independent weights, like two separate MLPs on a shared encoder (DrQ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from goalrl.agents.config import EncoderConfig

# log std bounds of GoalQNetwork's behaviour prior: std from 0.05 (a CEM that can still move)
# to e (wider than the [-1, 1] box)
PRIOR_LOG_STD_MIN, PRIOR_LOG_STD_MAX = math.log(0.05), 1.0


def stem_stride_for(height: int, width: int) -> int:
    """Patch size of the stem: maps the image to a grid of about 16x16 cells."""
    return max(1, min(height, width) // 16)


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) uint8 (or float in [0, 1]) -> (B, C, H, W) float in [-0.5, 0.5], channels-last.

    The permute is a view, so the result keeps channels-last strides without a copy.
    """
    x = rearrange(images, "b h w c -> b c h w")  # a view with channels-last strides
    if x.dtype == torch.uint8:
        return x.float().mul_(1.0 / 255.0).sub_(0.5)
    return x.float() - 0.5


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ConvTrunk(nn.Module):
    """uint8 images (B, H, W, C) -> feature maps (B, C_out, h, w); see the module docstring."""

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int] = (32, 64, 64),
        stem_stride: int | None = None,
    ) -> None:
        super().__init__()
        height, width, in_ch = (int(s) for s in image_shape)
        if not channels:
            raise ValueError("channels must name at least one conv layer")
        stride = stem_stride or stem_stride_for(height, width)
        layers: list[nn.Module] = []
        if stride > 1:  # non-overlapping patches
            layers += [nn.Conv2d(in_ch, channels[0], stride, stride), nn.ReLU(inplace=True)]
            h, w = _conv_out(height, stride, stride, 0), _conv_out(width, stride, stride, 0)
        else:
            layers += [nn.Conv2d(in_ch, channels[0], 3, 1, 1), nn.ReLU(inplace=True)]
            h, w = height, width
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.ReLU(inplace=True)]
            h, w = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
        self.net = nn.Sequential(*layers)  # kept flat: checkpoints name its layers net.<i>
        self.out_shape = (int(channels[-1]), h, w)  # (C_out, h, w)
        self.out_dim = math.prod(self.out_shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images_to_float(images))  # (B, C_out, h, w)


class ImageEncoder(nn.Module):
    """Conv trunk + linear + LayerNorm + tanh: (B, H, W, C) uint8 -> (B, D)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        embed_dim: int = 128,
        channels: Sequence[int] = (32, 64, 64),
        stem_stride: int | None = None,
    ) -> None:
        super().__init__()
        self.trunk = ConvTrunk(image_shape, channels, stem_stride)
        self.proj = nn.Sequential(
            nn.Linear(self.trunk.out_dim, embed_dim),
            nn.LayerNorm(embed_dim),
            nn.Tanh(),
        )
        self.embed_dim = embed_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(rearrange(self.trunk(images), "b c h w -> b (c h w)"))  # (B, D)


class StateEncoder(nn.Module):
    """MLP + linear + LayerNorm + tanh: low-dim states (B, S) -> (B, D), like ImageEncoder's end."""

    def __init__(self, state_dim: int, embed_dim: int = 128, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        width = int(state_dim)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(inplace=True)]
            width = int(h)
        layers += [nn.Linear(width, embed_dim), nn.LayerNorm(embed_dim), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.embed_dim = embed_dim

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.net(states.float())  # (B, D)


def frame_encoder(image_shape: Sequence[int], cfg: EncoderConfig) -> nn.Module:
    """The per-frame encoder ``cfg.kind`` names: conv trunk for images, MLP for state vectors."""
    if cfg.kind == "state":
        if not cfg.state_dim:
            raise ValueError("agent.encoder.kind=state needs agent.encoder.state_dim (the width "
                             "of the dataset's state vectors; training fills it in)")
        return StateEncoder(cfg.state_dim, cfg.embed_dim, cfg.state_hidden)
    return ImageEncoder(image_shape, cfg.embed_dim, cfg.conv_channels, cfg.stem_stride)


class ObsGoalEncoder(nn.Module):
    """Siamese frame encoder, optional proprio encoder and late fusion: (o, g) -> e (B, F).

    A frame is an image (B, H, W, 3) uint8 or, with ``encoder.kind=state``, a state (B, S); the
    per-frame encoder is kept as ``image`` or ``state`` so image checkpoints keep their names.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        encoder: EncoderConfig | None = None,
        *,
        proprio_dim: int | None = None,
    ) -> None:
        """``encoder`` sets the widths (default: EncoderConfig()); the proprio embedding exists
        when ``proprio_dim`` is given (the agent passes it only with ``encoder.use_proprio``)."""
        super().__init__()
        cfg = encoder or EncoderConfig()
        self.kind = cfg.kind
        if cfg.kind == "state":
            self.state = frame_encoder(image_shape, cfg)
        else:
            self.image = frame_encoder(image_shape, cfg)
        self.embed_dim = cfg.embed_dim
        self.proprio_dim = proprio_dim or 0
        self.proprio: nn.Module | None = None
        prop_out = 0
        if self.proprio_dim:
            self.proprio = nn.Sequential(
                nn.Linear(self.proprio_dim, cfg.proprio_embed_dim),
                nn.LayerNorm(cfg.proprio_embed_dim),
                nn.Tanh(),
            )
            prop_out = cfg.proprio_embed_dim
        self.obs_dim = cfg.embed_dim + prop_out  # width of h
        self.fusion = nn.Sequential(
            nn.Linear(4 * cfg.embed_dim + prop_out, cfg.fusion_dim),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.fusion_dim, cfg.fusion_dim),
            nn.ReLU(inplace=True),
        )
        self.feature_dim = cfg.fusion_dim  # width of e

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) images or (B, S) states -> (B, D) in (-1, 1), by the kind's encoder."""
        return self.state(frames) if self.kind == "state" else self.image(frames)

    def _with_proprio(self, h_img: torch.Tensor, proprio: torch.Tensor | None) -> torch.Tensor:
        if self.proprio is None:
            return h_img  # (B, D)
        if proprio is None:
            raise ValueError("this network was built with proprio_dim; pass proprio (B, P)")
        return torch.cat([h_img, self.proprio(proprio.float())], dim=-1)  # (B, D + Dp)

    def encode_obs(
        self, obs_image: torch.Tensor, proprio: torch.Tensor | None = None
    ) -> torch.Tensor:
        """h (B, D + Dp): image embedding, then the proprio embedding if the net has one."""
        return self._with_proprio(self.embed_frames(obs_image), proprio)

    def encode_goal(self, goal_image: torch.Tensor) -> torch.Tensor:
        """z (B, D) in (-1, 1): the goal embedding (a task embedding can stand in for it)."""
        return self.embed_frames(goal_image)

    def fuse(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """e (B, F) from obs features h (B, D + Dp) and goal vector z (B, D)."""
        h_img, h_prop = h[:, : self.embed_dim], h[:, self.embed_dim :]
        x = torch.cat([h_img, z, h_img * z, (h_img - z).abs(), h_prop], dim=-1)  # (B, 4D + Dp)
        return self.fusion(x)

    def encode(
        self,
        obs_image: torch.Tensor,
        goal_image: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """fuse(encode_obs(o), encode_goal(g)) with one trunk call on the stacked images.

        obs (mB, ...) may stack m batches of observations for the same B goals: each goal
        image is then encoded once and its z reused m times.
        """
        b, rows = goal_image.shape[0], obs_image.shape[0]
        if rows % b:
            raise ValueError(f"obs rows ({rows}) must be a multiple of goal rows ({b})")
        both = self.embed_frames(torch.cat([obs_image, goal_image], dim=0))  # (mB + B, D)
        h_img, z = both[:rows], both[rows:]  # (mB, D), (B, D)
        z = z.repeat(rows // b, 1)  # (mB, D): goal i for rows i, B + i, ...
        return self.fuse(self._with_proprio(h_img, proprio), z)  # (mB, F)


def gaussian_params(
    raw: torch.Tensor, log_std_min: float, log_std_max: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw head output (B, 2A) -> mean (B, A) in (-1, 1), log_std (B, A) in [min, max].

    tanh keeps the mean inside the action box; the smooth squash keeps log_std bounded.
    """
    mu, raw_std = raw.float().chunk(2, dim=-1)
    span = log_std_max - log_std_min
    return torch.tanh(mu), log_std_min + 0.5 * span * (torch.tanh(raw_std) + 1.0)


class EnsembleActionHead(nn.Module):
    """K independent MLP heads on [e; a]; e (B, F), actions (B, N, A) -> logits (B, N, K).

    Layer 1 is split into W_e e (once per row) + W_a a (per action); layers 2 and 3 run as one
    batched matmul over the K heads.
    """

    def __init__(
        self, embed_dim: int, action_dim: int, hidden_dim: int = 128, num_heads: int = 2
    ) -> None:
        super().__init__()
        self.num_heads, self.hidden_dim, self.action_dim = num_heads, hidden_dim, action_dim
        k, h = num_heads, hidden_dim
        self.embed_in = nn.Linear(embed_dim, k * h)  # carries the layer-1 bias
        self.action_in = nn.Parameter(torch.empty(k, action_dim, h))
        self.w2 = nn.Parameter(torch.empty(k, h, h))
        self.b2 = nn.Parameter(torch.empty(k, 1, h))
        self.w3 = nn.Parameter(torch.empty(k, h, 1))
        self.b3 = nn.Parameter(torch.empty(k, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default init, per head; the action part uses its own fan-in so that actions
        # move the logits from the start (CEM and negatives need action-dependent scores).
        bound = 1.0 / math.sqrt(self.hidden_dim)
        for p in (self.w2, self.b2, self.w3, self.b3):
            nn.init.uniform_(p, -bound, bound)
        a_bound = 1.0 / math.sqrt(self.action_dim)
        nn.init.uniform_(self.action_in, -a_bound, a_bound)

    def embed(self, e: torch.Tensor) -> torch.Tensor:
        """The action-independent part of layer 1: (B, F) -> (K, B, H); reusable across calls."""
        return rearrange(self.embed_in(e), "b (k h) -> k b h", k=self.num_heads)

    def forward(self, e: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = actions.shape[0]  # actions (B, N, A)
        u = self.embed(e)  # (K, B, H)
        flat = rearrange(actions, "b n a -> (b n) a").to(u.dtype)
        wa = torch.matmul(flat, self.action_in.to(u.dtype))  # (K, B*N, H)
        # In-place ReLUs on fresh sums are autograd-safe and save two (K, B*N, H) buffers.
        x = (rearrange(wa, "k (b n) h -> k b n h", b=b) + u[:, :, None]).relu_()
        x = torch.baddbmm(self.b2, rearrange(x, "k b n h -> k (b n) h"), self.w2).relu_()
        out = torch.baddbmm(self.b3, x, self.w3)  # (K, B*N, 1)
        return rearrange(out, "k (b n) 1 -> b n k", b=b)


class EnsembleHead(nn.Module):
    """K independent two-layer MLP heads on e (B, F) -> values (B, K), batched like
    ``EnsembleActionHead`` but without an action input (V(o, g) of GCIVL, GCIQL, HIQL)."""

    def __init__(self, embed_dim: int, hidden_dim: int = 256, num_heads: int = 2) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.embed_in = nn.Linear(embed_dim, num_heads * hidden_dim)
        bound = 1.0 / math.sqrt(hidden_dim)  # nn.Linear's default init, per head
        self.w2 = nn.Parameter(torch.empty(num_heads, hidden_dim, 1).uniform_(-bound, bound))
        self.b2 = nn.Parameter(torch.empty(num_heads, 1, 1).uniform_(-bound, bound))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        x = rearrange(self.embed_in(e), "b (k h) -> k b h", k=self.num_heads).relu()  # (K, B, H)
        return rearrange(torch.baddbmm(self.b2, x, self.w2), "k b 1 -> b k")  # (B, K)


class _ObsGoalNetwork(nn.Module):
    """A network on an ``ObsGoalEncoder`` (kept as ``self.encoder``, so checkpoints keep their
    ``encoder.*`` names); the encoding methods are the encoder's own."""

    def __init__(
        self, image_shape: Sequence[int], encoder: EncoderConfig | None, proprio_dim: int | None
    ) -> None:
        super().__init__()
        self.encoder = ObsGoalEncoder(image_shape, encoder, proprio_dim=proprio_dim)

    def encode_obs(
        self, obs_image: torch.Tensor, proprio: torch.Tensor | None = None
    ) -> torch.Tensor:
        """h (B, D + Dp); see ``ObsGoalEncoder.encode_obs``."""
        return self.encoder.encode_obs(obs_image, proprio)

    def encode_goal(self, goal_image: torch.Tensor) -> torch.Tensor:
        """z (B, D) in (-1, 1)."""
        return self.encoder.encode_goal(goal_image)

    def fuse(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """e (B, F)."""
        return self.encoder.fuse(h, z)

    def encode(
        self,
        obs_image: torch.Tensor,
        goal_image: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """e (B, F) with one trunk call for obs and goal."""
        return self.encoder.encode(obs_image, goal_image, proprio)


class GoalQNetwork(_ObsGoalNetwork):
    """Q(o, a, g) = sigmoid(logits) with K heads; see the module docstring for the structure."""

    def __init__(
        self,
        image_shape: Sequence[int],
        action_dim: int,
        encoder: EncoderConfig | None = None,
        *,
        proprio_dim: int | None = None,
        head_hidden_dim: int = 128,
        num_heads: int = 2,
        behaviour_prior: bool = False,
    ) -> None:
        super().__init__(image_shape, encoder, proprio_dim)
        self.q_head = EnsembleActionHead(
            self.encoder.feature_dim, action_dim, head_hidden_dim, num_heads
        )
        # Optional behaviour prior pi_b(a | o, g): a diagonal Gaussian on e where CEM starts
        # its search (am.py, AMConfig.behaviour_prior); None keeps the plain Q network.
        self.prior_head = (
            nn.Linear(self.encoder.feature_dim, 2 * action_dim) if behaviour_prior else None
        )
        self.action_dim, self.num_heads = action_dim, num_heads

    def head(self, e: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """logits (B, N, K) for embeddings e (B, F) and actions (B, N, A)."""
        return self.q_head(e, actions)

    def prior(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Behaviour prior mean (B, A) in (-1, 1) and log_std (B, A), or None without one."""
        if self.prior_head is None:
            return None
        return gaussian_params(self.prior_head(e), PRIOR_LOG_STD_MIN, PRIOR_LOG_STD_MAX)

    def forward(
        self,
        obs_image: torch.Tensor,
        goal_image: torch.Tensor,
        actions: torch.Tensor,
        proprio: torch.Tensor | None = None,
        *,
        with_prior: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """logits (B, N, K) for actions (B, N, A), or (B, K) for actions (B, A); with
        ``with_prior`` also ``prior(e)`` from the same encoding (one forward, so DDP sees it)."""
        e = self.encode(obs_image, goal_image, proprio)
        single = actions.ndim == 2
        logits = self.head(e, actions[:, None] if single else actions)  # (B, N, K)
        logits = logits[:, 0] if single else logits
        return (logits, self.prior(e)) if with_prior else logits


class GoalValueNetwork(_ObsGoalNetwork):
    """V(o, g) with K heads (B, K): the ObsGoalEncoder, then ``EnsembleHead``; unbounded values."""

    def __init__(
        self,
        image_shape: Sequence[int],
        encoder: EncoderConfig | None = None,
        *,
        proprio_dim: int | None = None,
        head_hidden_dim: int = 256,
        num_heads: int = 2,
    ) -> None:
        super().__init__(image_shape, encoder, proprio_dim)
        self.v_head = EnsembleHead(self.encoder.feature_dim, head_hidden_dim, num_heads)

    def forward(
        self, obs: torch.Tensor, goal: torch.Tensor, proprio: torch.Tensor | None = None
    ) -> torch.Tensor:
        """values (mB, K) for obs (mB, ...) and goals (B, ...) (see ``ObsGoalEncoder.encode``)."""
        return self.v_head(self.encode(obs, goal, proprio)).float()


class GaussianPolicyNetwork(_ObsGoalNetwork):
    """pi(a | o, g) = N(tanh(mu), sigma) on the same encoder; sigma depends on (o, g)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        action_dim: int,
        encoder: EncoderConfig | None = None,
        *,
        proprio_dim: int | None = None,
        log_std_min: float = -5.0,
        log_std_max: float = 1.0,
    ) -> None:
        super().__init__(image_shape, encoder, proprio_dim)
        self.out = nn.Linear(self.encoder.feature_dim, 2 * action_dim)
        self.action_dim = action_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def dist_params(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mean (B, A) in (-1, 1) and log_std (B, A) in [log_std_min, log_std_max]."""
        return gaussian_params(self.out(e), self.log_std_min, self.log_std_max)

    def forward(
        self,
        obs_image: torch.Tensor,
        goal_image: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dist_params(self.encode(obs_image, goal_image, proprio))
