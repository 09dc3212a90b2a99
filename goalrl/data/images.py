"""Image conversion helpers: any camera layout -> (N, S, S, 3) uint8.

Importers get frames in many layouts (HWC, CHW, grayscale, RGBA, float in [0, 1]);
goalrl stores one: square RGB uint8 at `image_size`. Resizing uses cv2.INTER_AREA
(the right filter for downscaling, which is the common case). The aspect ratio is not
kept: a 640x480 camera becomes a square image, as in most image-based RL pipelines.
"""

from __future__ import annotations

import cv2
import numpy as np
from einops import rearrange

_CHANNELS = (1, 3, 4)


def frames_to_uint8(frames: np.ndarray) -> np.ndarray:
    """Cast a frame batch to uint8; floats are read as [0, 1] when their max is <= 1."""
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype == np.bool_:
        return frames.astype(np.uint8) * 255
    x = np.asarray(frames, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("image frames contain NaN or inf values")
    if np.issubdtype(frames.dtype, np.floating) and x.size and float(x.max()) <= 1.0:
        x = x * 255.0  # float images in [0, 1] (torchvision / LeRobot convention)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def frames_to_hwc(frames: np.ndarray) -> np.ndarray:
    """Put a batch of frames in (N, H, W, C) layout.

    Accepts (N, H, W) grayscale, (N, H, W, C) and (N, C, H, W) with C in {1, 3, 4}.
    """
    if frames.ndim == 3:  # (N, H, W) grayscale
        return frames[..., None]
    if frames.ndim != 4:
        raise ValueError(
            f"expected frames of shape (N, H, W[, C]) or (N, C, H, W), got {frames.shape}"
        )
    if frames.shape[-1] in _CHANNELS:
        return frames
    if frames.shape[1] in _CHANNELS:  # channels-first, as torch and LeRobot features use
        return rearrange(frames, "n c h w -> n h w c")
    raise ValueError(f"no channel axis of size 1, 3 or 4 in frames of shape {frames.shape}")


def frames_to_rgb(frames: np.ndarray) -> np.ndarray:
    """Any supported layout/dtype -> (N, H, W, 3) uint8 (gray repeated, alpha dropped)."""
    x = frames_to_uint8(frames_to_hwc(np.asarray(frames)))  # (N, H, W, C)
    c = x.shape[-1]
    if c == 1:
        x = np.repeat(x, 3, axis=-1)
    elif c == 4:
        x = x[..., :3]
    return np.ascontiguousarray(x)


def resize_frames(frames: np.ndarray, image_size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, S, S, 3) uint8 with cv2.INTER_AREA; a no-op at the right size."""
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    n, h, w = frames.shape[:3]
    if (h, w) == (image_size, image_size):
        return np.ascontiguousarray(frames)
    out = np.empty((n, image_size, image_size, 3), dtype=np.uint8)  # (N, S, S, 3)
    for i in range(n):
        out[i] = cv2.resize(frames[i], (image_size, image_size), interpolation=cv2.INTER_AREA)
    return out


def prepare_frames(frames: np.ndarray, image_size: int) -> np.ndarray:
    """Any layout -> (N, image_size, image_size, 3) uint8: the one call importers use."""
    return resize_frames(frames_to_rgb(frames), image_size)


def prepare_image(image: np.ndarray, image_size: int) -> np.ndarray:
    """One frame (H, W), (H, W, C) or (C, H, W) -> (S, S, 3) uint8 (e.g. a goal PNG)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected one image of shape (H, W[, C]) or (C, H, W), got {image.shape}")
    return prepare_frames(image[None], image_size)[0]
