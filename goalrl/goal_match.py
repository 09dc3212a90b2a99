"""Can the scene's camera ever show this goal picture? The one rule for goal pictures.

``goalrl command``, ``GoalReacher`` (the Python API) and the web page all apply
``check_goal_can_match`` to a goal that is only a picture (a goal captured from the scene,
whose state is known, always passes). It refuses what the camera can never produce, with a
``GoalMismatchError`` naming the goal and the measured image distance:

- grayscale or colourless pictures (the camera sees colour; every scene view measured has
  a mean channel spread of 0.17 or more, a gray picture 0);
- see-through pixels (a camera view has none);
- pictures far from the scene's camera view now: goals rendered in any scene were at most
  0.074 from its views (mean absolute pixel difference, 0..1), photos 0.23 or more
  (``python bench/command.py goals``, docs/benchmarks/command.md).

``force=True`` lets such a goal through with a loud ``GoalMismatchWarning``. Without a known
state, such goals sent the arm farther from where it started than it began.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from goalrl.errors import UserError

if TYPE_CHECKING:  # goal_image imports this module
    from goalrl.goal_image import Conversion, Goal

MAX_VIEW_DISTANCE = 0.15  # farther from the camera view than this: cannot be matched
MIN_COLOUR_SPREAD = 0.02  # mean channel spread (0..1) under which a picture is colourless


class GoalMismatchError(UserError, ValueError):
    """A goal picture the scene's camera cannot produce (gray, see-through, far from its view)."""


class GoalMismatchWarning(UserWarning):
    """Such a goal commanded anyway (``force=True``)."""


GRAY_REASON = (
    "is a grayscale image; the arm's camera sees colour, so a gray goal cannot match its view"
)
TRANSPARENT_REASON = (
    "has transparent pixels; a camera view has none, so what they should show is unknown"
)


def image_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two (S, S, 3) uint8 images, in [0, 1]."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() / 255.0)


def colour_spread(image: np.ndarray) -> float:
    """Mean of (largest - smallest channel) / 255 over an (H, W, 3) uint8 image's pixels."""
    spread = image.max(axis=-1).astype(np.int16) - image.min(axis=-1)  # (H, W)
    return float(spread.mean() / 255.0)


def unmatchable_reasons(
    image: np.ndarray, conv: Conversion | None = None, view: np.ndarray | None = None
) -> list[str]:
    """Why the scene's camera can never show ``image`` ((S, S, 3) uint8 as converted);
    empty when it can. ``view``: the scene's camera view now, (S, S, 3) uint8."""
    reasons = []
    if (conv is not None and conv.grayscale) or colour_spread(image) < MIN_COLOUR_SPREAD:
        reasons.append(GRAY_REASON)
    if conv is not None and conv.transparent:
        reasons.append(TRANSPARENT_REASON)
    if view is not None and view.shape == image.shape:
        distance = image_distance(image, view)
        if distance > MAX_VIEW_DISTANCE:
            reasons.append(
                f"is {distance:.3f} from the scene's camera view (mean absolute pixel "
                f"difference, 0..1); goals of this scene are within {MAX_VIEW_DISTANCE} of "
                "it, so this picture (a photo or drawing?) cannot be matched"
            )
    return reasons


def mismatch_message(name: str, reasons: list[str]) -> str:
    return (
        f"goal {name} {'; and it '.join(reasons)}. Use a goal of the scene (`goalrl goal`, a "
        "capture), or pass force=true to command it anyway"
    )


def check_goal_can_match(
    goal: Goal,
    conv: Conversion | None,
    view: np.ndarray | None,
    name: str,
    *,
    force: bool = False,
) -> list[str]:
    """The one rule for goal pictures (``goalrl command``, ``GoalReacher``, the web page).

    A goal captured from the scene (its state known) always passes. Any other goal that the
    camera cannot produce (``unmatchable_reasons``) raises ``GoalMismatchError`` naming it and
    the measured image distance; with ``force`` it passes with a ``GoalMismatchWarning`` and
    the warning lines are returned (for the result's notes).
    """
    if goal.layout is not None:
        return []
    reasons = unmatchable_reasons(goal.image, conv, view)
    if not reasons:
        return []
    if view is not None and view.shape == goal.image.shape:
        measured = f"image distance to the camera view {image_distance(goal.image, view):.3f}"
        reasons[-1] += f" ({measured})" if "from the scene's camera view" not in reasons[-1] else ""
    if not force:
        raise GoalMismatchError(mismatch_message(name, reasons))
    warning = f"WARNING (force): goal {name} {'; and it '.join(reasons)}"
    warnings.warn(warning, GoalMismatchWarning, stacklevel=2)
    return [warning]
