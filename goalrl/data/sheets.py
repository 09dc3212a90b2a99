"""Pictures and videos on disk: contact-sheet grids (PNG) and frame sequences
(MP4/H.264, WebM/VP8, GIF): the one video writer of the project.

Every writer goes through a temp file and a rename, so no half-written file is left.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from einops import rearrange, repeat

from goalrl.errors import UserError

GRID_PAD = 2  # white pixels after each tile of a grid
HEADER_H = 14  # height of a grid's column-label header
LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_SCALE = 0.3  # grid labels: about 7 px tall
LINE_H = 11  # pixels between the lines of a row label


def image_grid(
    rows: list[list[np.ndarray]],
    labels: Sequence[str] = (),
    scale: int = 2,
    row_labels: Sequence[str | Sequence[str]] = (),
) -> np.ndarray:
    """(header + R*(h*scale + pad), label column + C*(w*scale + pad), 3) uint8 grid on white.

    ``rows`` of (h, w, 3) frames are upscaled ``scale``x (nearest); ``labels`` name the
    columns in a header; ``row_labels`` (one per row: its lines, e.g. ``("ep 3", "seed 3")``,
    or one string) fill a column on the left.
    """
    import torch
    from torchvision.utils import make_grid

    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one row with one image")
    h, w = rows[0][0].shape[:2]
    n_cols = max(len(r) for r in rows)
    blank = np.full((h, w, 3), 255, np.uint8)  # fills the end of a short row
    # (R*C, h, w, 3), row by row
    tiles = np.stack([_fit(row[c], h, w) if c < len(row) else blank
                      for row in rows for c in range(n_cols)])  # fmt: skip
    tiles = repeat(tiles, "n h w c -> n c (h sh) (w sw)", sh=scale, sw=scale)
    if len(tiles) > 1:
        body = make_grid(torch.from_numpy(tiles), nrow=n_cols, padding=GRID_PAD, pad_value=255)
        # make_grid pads before every tile as well: drop the first band so tiles start at 0
        body = rearrange(body.numpy(), "c h w -> h w c")[GRID_PAD:, GRID_PAD:]
    else:  # make_grid hands a single image back unpadded
        body = np.pad(rearrange(tiles[0], "c h w -> h w c"), ((0, GRID_PAD), (0, GRID_PAD), (0, 0)),
                      constant_values=255)  # fmt: skip
    lines = [[label] if isinstance(label, str) else list(label) for label in row_labels]
    label_w = max(_text_width(t) for ls in lines for t in ls) + 6 if lines else 0
    header = HEADER_H if labels else 0
    grid = np.full((header + body.shape[0], label_w + body.shape[1], 3), 255, np.uint8)
    grid[header:, label_w:] = body
    tile_h, tile_w = h * scale + GRID_PAD, w * scale + GRID_PAD
    for c, label in enumerate(labels):
        _put_text(grid, str(label), (label_w + c * tile_w + 2, 10))
    for r, row_lines in enumerate(lines):
        for i, text in enumerate(row_lines):
            _put_text(grid, text, (2, header + r * tile_h + 10 + i * LINE_H))
    return grid


def _fit(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    if frame.shape[:2] == (h, w):
        return frame
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST)


def _text_width(text: str, scale: float = LABEL_SCALE) -> int:
    return cv2.getTextSize(text, LABEL_FONT, scale, 1)[0][0]


def _put_text(image: np.ndarray, text: str, org: tuple[int, int]) -> None:
    """Black grid text, baseline at ``org`` (grids are white where labels go)."""
    cv2.putText(image, text, org, LABEL_FONT, LABEL_SCALE, (0, 0, 0), 1, cv2.LINE_AA)


def draw_label(
    image: np.ndarray,
    text: str,
    corner: tuple[int, int],
    *,
    scale: float = 0.4,
    color: tuple[int, int, int] = (255, 255, 255),
    box: tuple[int, int, int] = (0, 0, 0),
) -> tuple[int, int]:
    """Write ``text`` on a filled ``box`` whose top-left is ``corner``, in place: readable
    on any picture. Returns the box's (width, height)."""
    pad = 2
    (text_w, text_h), baseline = cv2.getTextSize(text, LABEL_FONT, scale, 1)
    box_w, box_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    x, y = corner
    cv2.rectangle(image, (x, y), (x + box_w - 1, y + box_h - 1), box, thickness=-1)
    cv2.putText(image, text, (x + pad, y + pad + text_h), LABEL_FONT, scale, color, 1, cv2.LINE_AA)
    return box_w, box_h


def write_png_atomic(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB image as PNG via a temp file + rename (never a half-written PNG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


VIDEO_SUFFIXES = (".mp4", ".gif", ".webm")


class VideoPathError(UserError, ValueError):
    """A video file name whose suffix names no format ``write_video`` writes."""


def check_video_path(path: str | Path) -> None:
    """VideoPathError unless ``path`` ends in a suffix ``write_video`` can write."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoPathError(f"video {path} must end in {', '.join(VIDEO_SUFFIXES)}")


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """(H, W, 3) uint8 RGB frames as a video, the format chosen by the suffix of ``path``:

    - ``.mp4``: H.264 via PyAV (libx264, yuv420p, odd sizes cropped to even, +faststart),
      what browsers play; OpenCV's mp4v (which browsers do not play) only where PyAV has
      no libx264;
    - ``.webm``: VP8 via PyAV;
    - ``.gif``: PIL.
    """
    path = Path(path).expanduser()
    check_video_path(path)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")  # suffix picks the format
    try:
        if suffix == ".gif":
            _write_gif(tmp, frames, fps)
        elif suffix == ".webm":
            _write_av(tmp, frames, fps, "libvpx", "webm", {"deadline": "realtime", "cpu-used": "8"})
        elif _has_encoder("libx264"):
            # H.264 also encodes ~100x faster here than VP8
            options = {"preset": "veryfast", "crf": "18"}
            _write_av(tmp, frames, fps, "libx264", "mp4", options, {"movflags": "+faststart"})
        else:
            _write_mp4v(tmp, frames, fps)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise OSError(f"{path}: the video writer produced no file")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_browser_video(stem: str | Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """``<stem>.mp4`` (H.264) when PyAV has libx264, else ``<stem>.webm`` (VP8): a video
    browsers play either way."""
    suffix = ".mp4" if _has_encoder("libx264") else ".webm"
    return write_video(Path(f"{stem}{suffix}"), frames, fps)


def _has_encoder(codec: str) -> bool:
    try:
        import av

        av.codec.Codec(codec, "w")
    except Exception:  # no PyAV, or a build without this encoder
        return False
    return True


def _write_gif(tmp: Path, frames: list[np.ndarray], fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def _write_mp4v(tmp: Path, frames: list[np.ndarray], fps: float) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"{tmp}: OpenCV could not open an mp4v video writer")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _write_av(
    tmp: Path,
    frames: list[np.ndarray],
    fps: float,
    codec: str,
    fmt: str,
    options: dict[str, str],
    container_options: dict[str, str] | None = None,
) -> None:
    import av

    h, w = frames[0].shape[:2]
    h, w = h - h % 2, w - w % 2  # yuv420p needs even sizes
    with av.open(str(tmp), mode="w", format=fmt, options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = options
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h, :w]), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
