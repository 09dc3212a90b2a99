"""The encoder settings the agents share, and reading agent configs back from checkpoints.

Every agent builds its networks on the same observation/goal encoder (goalrl.agents.networks),
so its settings live in one nested ``EncoderConfig`` (``agent.encoder.embed_dim=64`` on the
command line; ``agent.am.encoder...`` for fine-tuning). Checkpoints written before it kept these
six fields at the top level of the agent config, next to options that have since been removed;
``config_from_dict`` reads either layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from goalrl.errors import UserError

C = TypeVar("C")


class AgentConfigError(UserError, ValueError):
    """An agent config field with a value no agent can be built from."""


OBSERVATION_KINDS = ("image", "state")


@dataclass
class EncoderConfig:
    """Shape of the Siamese observation encoder, its proprio embedding and the (o, g) fusion MLP.

    ``kind`` picks what an observation (and a goal) is: a camera image, encoded by a conv trunk,
    or a low-dim state vector (arm and object coordinates), encoded by an MLP; everything after
    the per-frame embedding (proprio, fusion, heads) is the same for both.
    """

    # what observations and goals are: image (camera frames) or state (low-dim vectors, an MLP)
    kind: str = "image"
    # conv widths, stem first; the trunk ends at about 4x4 cells whatever the image size
    conv_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    stem_stride: int | None = None  # patch size of the first conv (None: min(H, W) // 16)
    embed_dim: int = 128  # D: image/goal embedding width (the goal vector z)
    proprio_embed_dim: int = 32  # Dp: proprio embedding width (used when use_proprio)
    fusion_dim: int = 256  # F: width of the fused (o, g) embedding and its MLP
    use_proprio: bool = False  # feed the batch's proprio vectors to the encoder if present
    state_hidden: list[int] = field(default_factory=lambda: [256, 256])  # state MLP widths
    # width of a state vector (kind=state); None: taken from the dataset when the agent is built
    state_dim: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in OBSERVATION_KINDS:
            raise AgentConfigError(
                f"agent.encoder.kind={self.kind!r}: must be one of {', '.join(OBSERVATION_KINDS)}"
            )


ENCODER_FIELDS = tuple(f.name for f in fields(EncoderConfig))

# Options older checkpoints may carry, with the value that meant "off": there they are dropped,
# any other value is refused (a checkpoint that relied on one cannot be rebuilt faithfully).
# A saved ``amp`` is ignored like any unknown key: it is a run setting now (the agent
# constructors' ``amp=``), not a hyper-parameter.
REMOVED_OPTIONS: dict[str, Any] = {
    "prior_adv_beta": 0.0,
    "prior_adv_max": 20.0,
    "act_prior_samples": 32,
    "policy_negative_state": "next",
    "keypoints": 0,
}


def removed_value_error(where: str, name: str, value: Any) -> ValueError:
    return ValueError(
        f"{where}.{name}={value} was removed (measured of no use; docs/lab-notes.md); "
        "this config cannot be rebuilt with it"
    )


def config_from_dict(
    cls: type[C],
    values: Mapping[str, Any],
    *,
    where: str = "agent",
    removed_values: Mapping[str, tuple[Any, ...]] | None = None,
    nested: Mapping[str, Any] | None = None,
) -> C:
    """``cls`` from ``asdict`` output of this or an older goalrl (checkpoint metadata).

    Encoder fields at the top level (the old flat layout) move into ``encoder``; removed options
    at their old default are dropped, at any other value (and any value in ``removed_values``,
    e.g. {"act_rule": ("prior_best",)}) a ValueError names the field; unknown keys are ignored.
    ``nested`` maps a field to the already built value it takes (TaskQConfig's ``am``).
    """
    values = dict(values)
    for name, off in REMOVED_OPTIONS.items():
        if name in values and (value := values.pop(name)) != off:
            raise removed_value_error(where, name, value)
    for name, gone in (removed_values or {}).items():
        if values.get(name) in gone:
            raise removed_value_error(where, name, values[name])
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kwargs = {k: v for k, v in values.items() if k in known and k not in ENCODER_FIELDS}
    if "encoder" in known:
        encoder = values.get("encoder") or {}
        encoder = asdict(encoder) if isinstance(encoder, EncoderConfig) else dict(encoder)
        encoder.update({k: values[k] for k in ENCODER_FIELDS if k in values})  # old flat layout
        kwargs["encoder"] = EncoderConfig(**{k: encoder[k] for k in ENCODER_FIELDS if k in encoder})
    kwargs.update(nested or {})
    return cls(**kwargs)
