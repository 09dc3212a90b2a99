"""Goal images from whatever a user has, converted to what the Q-function was trained on.

The policy compares the camera view with the goal image, both ``(S, S, 3)`` uint8 RGB at
the checkpoint's image size ``S``. Users hand over numpy arrays, PIL images, files or raw
bytes of any size and channel layout; ``load_goal`` converts them and says what it did:

- any size -> resized to ``S x S`` (``cv2.INTER_AREA`` when shrinking, ``INTER_LINEAR``
  when enlarging). A non-square picture is stretched, not cropped: the camera is square,
  and cropping would silently drop part of the pictured scene.
- grayscale ``(H, W)`` / ``(H, W, 1)`` -> the channel repeated three times.
- RGBA -> alpha-composited over white, the colour of the empty background in the camera
  view (fully opaque pixels are unchanged, so an opaque RGBA image equals dropping alpha).
- channels-first ``(C, H, W)`` -> ``(H, W, C)``; float in [0, 1] -> uint8; uint16 -> uint8.

Anything else (NaN, float outside [0, 1], 2 channels, 5-d arrays, bytes that are no image,
too many pixels) raises a ``GoalImageError`` naming what is wrong.

Converting is not accepting: ``goalrl.goal_match.check_goal_can_match`` is the one rule
that ``goalrl command``, ``GoalReacher`` and the web page apply to a goal picture.

Goal PNGs written by ``save_goal_png`` (``goalrl goal``, the web page's captures) carry
the scene state they picture in a PNG text chunk, so commanding toward them reports
success and distance in metres; a plain picture only gets an image distance.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from goalrl.envs.tasks import Layout
from goalrl.errors import UserError
from goalrl.goal_match import (
    GRAY_REASON,
    TRANSPARENT_REASON,
    GoalMismatchError,
    mismatch_message,
)

ALPHA_BACKGROUND = 255  # RGBA goals are composited over white (the camera's empty background)
PNG_TEXT_KEY = "goalrl-goal"  # PNG tEXt chunk holding the pictured scene state (JSON)
GOAL_FORMAT = "goalrl-goal"
GOAL_VERSION = 1
DEFAULT_MAX_PIXELS = 50_000_000  # refuse bigger pictures before decoding them
COMPOSITE_BLOCK_PIXELS = 1 << 16  # RGBA compositing works on blocks of rows this big


class GoalImageError(UserError, ValueError):
    """A goal image that cannot be used; the message says what is wrong with it."""


class NotAnImageError(GoalImageError):
    """Bytes or a file that no image decoder understands."""


class ImageTooLargeError(GoalImageError):
    """More pixels (or bytes) than the caller allows."""


@dataclass
class Conversion:
    """What was done to turn the input into an RGB uint8 image (shown to users)."""

    original_shape: tuple[int, ...] = ()
    grayscale: bool = False  # the input had one channel (or a grayscale PIL mode)
    alpha: bool = False  # the input had an alpha channel
    transparent: bool = False  # ... and some pixel was not fully opaque
    notes: list[str] = field(default_factory=list)


@dataclass
class Goal:
    """A goal image at the size the policy sees, plus the scene state it shows when known."""

    image: np.ndarray  # (S, S, 3) uint8 RGB
    layout: Layout | None = None  # the pictured scene state (captured goals); None for pictures
    env_id: str | None = None  # scene the layout belongs to
    seed: int | None = None  # env seed whose goal this is (captured goals)
    source: str = "picture"  # "capture" (rendered from the scene) or "picture"
    notes: list[str] = field(default_factory=list)  # conversions applied, for users

    @property
    def state_known(self) -> bool:
        return self.layout is not None


# ---- arrays -------------------------------------------------------------------------------
def to_rgb_uint8(image: Any, name: str = "goal image") -> tuple[np.ndarray, Conversion]:
    """(H, W, 3) uint8 RGB from an array of any common layout; see the module docstring."""
    a = np.asarray(image)
    conv = Conversion(original_shape=tuple(a.shape))
    if a.dtype == object or a.size == 0:
        raise GoalImageError(f"{name} is empty or not numeric (shape {a.shape}, dtype {a.dtype})")
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]  # a batch of one
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise GoalImageError(
            f"{name} must be (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4; got shape {a.shape}"
        )
    if a.shape[-1] not in (1, 3, 4):
        if a.shape[0] in (1, 3, 4):
            a = np.moveaxis(a, 0, -1)  # (C, H, W) -> (H, W, C)
            conv.notes.append("channels-first array transposed to (H, W, C)")
        else:
            raise GoalImageError(
                f"{name} has shape {a.shape}: no axis of size 1, 3 or 4 for the colour channels"
            )
    a = _to_uint8(a, name, conv)
    channels = a.shape[-1]
    if channels == 1:
        conv.grayscale = True
        conv.notes.append("grayscale converted to RGB (channel repeated)")
        a = np.repeat(a, 3, axis=-1)
    elif channels == 4:
        conv.alpha = True
        conv.transparent = bool(a[..., 3].min() < 255)
        if conv.transparent:
            a = composite_over_white(a)
            conv.notes.append("transparent pixels composited over white")
        else:
            a = a[..., :3]
            conv.notes.append("opaque alpha channel dropped")
    return np.ascontiguousarray(a), conv


def composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W, 3) uint8 over white, a block of rows at a time: in one
    piece, the float math on a 16-megapixel upload (a 62 KB PNG) took 850 MB."""
    out = np.empty((*rgba.shape[:2], 3), np.uint8)  # (H, W, 3)
    rows = max(1, COMPOSITE_BLOCK_PIXELS // max(1, rgba.shape[1]))
    for top in range(0, rgba.shape[0], rows):
        block = rgba[top : top + rows]  # (rows, W, 4)
        alpha = block[..., 3:4].astype(np.float32) / 255.0  # (rows, W, 1)
        rgb = block[..., :3] * alpha + ALPHA_BACKGROUND * (1.0 - alpha)
        out[top : top + rows] = np.clip(np.rint(rgb), 0, 255)
    return out


def _to_uint8(a: np.ndarray, name: str, conv: Conversion) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise GoalImageError(f"{name} contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise GoalImageError(
                f"{name} is a float image with values in [{lo:g}, {hi:g}]; float images must "
                "lie in [0, 1] (pass uint8 for 0..255)"
            )
        conv.notes.append("float [0, 1] scaled to uint8")
        return np.rint(a * 255.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if a.dtype == np.uint16 or (lo >= 0 and 255 < hi <= 65535):
            conv.notes.append("16-bit image scaled to 8 bits")
            return np.rint(a.astype(np.float64) / 257.0).astype(np.uint8)
        if 0 <= lo and hi <= 255:
            return a.astype(np.uint8)
        raise GoalImageError(f"{name} has integer values in [{lo}, {hi}], not 0..255 or 0..65535")
    raise GoalImageError(f"{name} has unsupported dtype {a.dtype}")


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) -> (size, size, 3): INTER_AREA when shrinking (no aliasing), LINEAR otherwise."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    shrink = h * w >= size * size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


# ---- files, bytes and PIL images ----------------------------------------------------------
def read_image(
    source: Any,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    *,
    refuse_unmatchable: bool = False,
) -> tuple[np.ndarray, Conversion, dict[str, Any] | None]:
    """(H, W, 3) uint8, what was converted, and the goalrl metadata of a goal PNG (or None).

    ``source``: a path, raw file bytes, a PIL image or an array. The pixel count is checked
    from the header, before the image is decoded. ``refuse_unmatchable``: a grayscale file
    is refused on its header (before decoding) and a see-through one right after decoding,
    before any conversion (``GoalMismatchError``), instead of being converted.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, np.ndarray):
        rgb, conv = to_rgb_uint8(source, name or "goal image")
        _check_pixels(rgb.shape[1], rgb.shape[0], max_pixels, name or "goal image")
        return rgb, conv, None
    opened_here = not isinstance(source, Image.Image)
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "uploaded data"
        fp: Any = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        label = name or str(path)
        if not path.is_file():
            raise GoalImageError(f"goal image {path} does not exist (or is not a file)")
        fp = path
    elif isinstance(source, Image.Image):
        label = name or "PIL image"
    else:
        raise GoalImageError(
            f"goal must be a path, bytes, a PIL image or a numpy array, not {type(source).__name__}"
        )
    try:
        img = Image.open(fp) if opened_here else source
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"{label}: {err}") from err
    except UnidentifiedImageError as err:
        raise NotAnImageError(
            f"{label} is not an image in a format goalrl reads (PNG, JPEG, BMP, GIF, TIFF, WebP)"
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise NotAnImageError(f"{label} is not a readable image ({err})") from err
    opened = img
    try:
        _check_pixels(img.width, img.height, max_pixels, label)
        if refuse_unmatchable and img.mode in GRAY_MODES:  # known from the header
            raise GoalMismatchError(mismatch_message(label, [GRAY_REASON]))
        notes = []
        try:
            if getattr(img, "n_frames", 1) > 1:
                notes.append("first frame of an animated image used")
                img.seek(0)
            img.load()  # also reads PNG text chunks that follow the pixels
            img = ImageOps.exif_transpose(img)
        except Image.DecompressionBombError as err:
            raise ImageTooLargeError(f"{label}: {err}") from err
        except (OSError, SyntaxError, ValueError) as err:
            raise NotAnImageError(f"{label} is a damaged or truncated image ({err})") from err
        if refuse_unmatchable and _has_transparent_pixels(img):  # before any conversion
            raise GoalMismatchError(mismatch_message(label, [TRANSPARENT_REASON]))
        meta = _goal_metadata(opened)
        array, gray_mode = _pil_array(img)
        rgb, conv = to_rgb_uint8(array, label)
        conv.grayscale = conv.grayscale or gray_mode
        conv.original_shape = (img.height, img.width, len(img.getbands()))
        conv.notes = notes + conv.notes
        return rgb, conv, meta
    finally:
        if opened_here:
            opened.close()


def _check_pixels(width: int, height: int, max_pixels: int, label: str) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{label} is {width}x{height} = {width * height:,} pixels; the limit is "
            f"{max_pixels:,} pixels"
        )


GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def _has_transparent_pixels(img: Any) -> bool:
    """Whether a decoded PIL image has a pixel that is not fully opaque (PIL's own min of
    the alpha band: no copy, no float)."""
    if img.mode in ("RGBA", "RGBa", "PA"):
        return img.getextrema()[3][0] < 255
    if img.mode in ("LA", "La"):
        return img.getextrema()[1][0] < 255
    return img.mode == "P" and "transparency" in img.info


def _pil_array(img: Any) -> tuple[np.ndarray, bool]:
    """Numpy pixels of a PIL image in a layout ``to_rgb_uint8`` takes, and whether it is gray."""
    mode = img.mode
    gray = mode in GRAY_MODES
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")  # keeps gray-as-RGB plus alpha; ``gray`` remembers the mode
    elif mode == "1":
        img = img.convert("L")
    elif mode.startswith("I;16"):
        return np.asarray(img, dtype=np.uint16), True
    elif mode in ("I", "F"):
        arr = np.asarray(img)
        return (arr.astype(np.float32) if mode == "F" else arr.astype(np.int64)), True
    elif mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
    return np.asarray(img), gray


# ---- goal PNGs with their scene state -----------------------------------------------------
def layout_to_json(layout: Layout) -> dict[str, Any]:
    return {
        "tcp": [float(v) for v in layout.tcp],
        "yaw": float(layout.yaw),
        "opening": float(layout.opening),
        "objects": {k: [float(x) for x in v] for k, v in layout.objects.items()},
        "tray": None if layout.tray is None else [float(v) for v in layout.tray],
    }


def layout_from_json(data: Any) -> Layout:
    """Layout from ``layout_to_json`` output; GoalImageError on anything malformed."""

    def vec(value: Any, n: int, what: str) -> np.ndarray:
        try:
            v = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise GoalImageError(f"goal metadata: {what} is not a list of numbers") from err
        if v.shape != (n,) or not np.all(np.isfinite(v)) or np.abs(v).max(initial=0) > 10:
            raise GoalImageError(f"goal metadata: {what} must be {n} finite numbers (metres)")
        return v

    if not isinstance(data, dict) or not isinstance(data.get("objects", {}), dict):
        raise GoalImageError("goal metadata: layout must be an object with tcp, objects, ...")
    try:
        yaw, opening = float(data.get("yaw", 0.0)), float(data["opening"])
    except (KeyError, TypeError, ValueError) as err:
        raise GoalImageError("goal metadata: layout needs numeric yaw and opening") from err
    if not (math.isfinite(yaw) and math.isfinite(opening)):
        raise GoalImageError("goal metadata: yaw and opening must be finite")
    return Layout(
        tcp=vec(data.get("tcp"), 3, "tcp"),
        yaw=yaw,
        opening=opening,
        objects={str(k): vec(v, 4, f"object {k}") for k, v in data.get("objects", {}).items()},
        tray=None if data.get("tray") is None else vec(data["tray"], 3, "tray"),
    )


def _goal_metadata(img: Any) -> dict[str, Any] | None:
    text = getattr(img, "text", None) or {}
    raw = text.get(PNG_TEXT_KEY) if isinstance(text, dict) else None
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise GoalImageError(f"goal metadata ({PNG_TEXT_KEY} chunk) is not JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != GOAL_FORMAT:
        raise GoalImageError(f"goal metadata ({PNG_TEXT_KEY} chunk) is not a goalrl goal")
    return meta


def goal_from_metadata(image: np.ndarray, meta: dict[str, Any] | None, notes: list[str]) -> Goal:
    if meta is None:
        return Goal(image=image, notes=notes)
    seed = meta.get("seed")
    return Goal(
        image=image,
        layout=layout_from_json(meta.get("layout")),
        env_id=str(meta.get("env_id")) if meta.get("env_id") else None,
        seed=int(seed) if isinstance(seed, int) else None,
        source="capture",
        notes=notes,
    )


def load_goal(
    source: Any, size: int, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
) -> Goal:
    """A ``Goal`` at ``size x size`` from a Goal, array, PIL image, path or file bytes
    (converted whatever it shows; ``check_goal_can_match`` says whether to command it)."""
    return load_goal_converted(source, size, max_pixels=max_pixels, name=name)[0]


def load_goal_converted(
    source: Any,
    size: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    refuse_unmatchable: bool = False,
) -> tuple[Goal, Conversion]:
    """``load_goal`` plus what was converted; ``refuse_unmatchable`` as in ``read_image``."""
    if isinstance(source, Goal):
        conv = Conversion(original_shape=tuple(source.image.shape))
        if source.image.shape == (size, size, 3):
            return source, conv
        note = f"resized from {source.image.shape[1]}x{source.image.shape[0]} to {size}x{size}"
        goal = Goal(
            image=resize_square(source.image, size),
            layout=source.layout,
            env_id=source.env_id,
            seed=source.seed,
            source=source.source,
            notes=[*source.notes, note],
        )
        return goal, conv
    rgb, conv, meta = read_image(
        source, max_pixels=max_pixels, name=name, refuse_unmatchable=refuse_unmatchable
    )
    notes = list(conv.notes)
    h, w = rgb.shape[:2]
    if (h, w) != (size, size):
        notes.append(f"resized from {w}x{h} to {size}x{size}")
        if abs(w / h - 1.0) > 0.01:
            notes.append("aspect ratio not square: stretched to the square camera view")
    return goal_from_metadata(resize_square(rgb, size), meta, notes), conv


def save_goal_png(path: str | Path, goal: Goal) -> Path:
    """Write the goal image as PNG with its scene state in a text chunk (temp file + rename)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    path = Path(path).expanduser()
    if path.suffix.lower() != ".png":
        raise ValueError(f"goal image {path} must end in .png (it carries the scene state)")
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    if goal.layout is not None:
        meta = {
            "format": GOAL_FORMAT,
            "version": GOAL_VERSION,
            "env_id": goal.env_id,
            "seed": goal.seed,
            "image_size": int(goal.image.shape[0]),
            "layout": layout_to_json(goal.layout),
        }
        info.add_text(PNG_TEXT_KEY, json.dumps(meta))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    Image.fromarray(np.ascontiguousarray(goal.image)).save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)
    return path
