"""Pictures and videos on disk: contact-sheet grids (PNG) and frame sequences
(MP4/H.264, WebM/VP8, GIF): the one video writer of the project.

Every writer goes through a temp file and a rename, so no half-written file is left.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def image_grid(
    rows: list[list[np.ndarray]], labels: tuple[str, ...] | list[str] = (), scale: int = 2
) -> np.ndarray:
    """(R*h + header, C*w, 3) uint8 grid of (h, w, 3) frames, upscaled ``scale``x, labelled."""
    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one row with one image")
    h, w = rows[0][0].shape[:2]
    h, w = h * scale, w * scale
    pad = 2
    header = 14 if labels else 0
    n_cols = max(len(r) for r in rows)
    grid = np.full(
        (header + len(rows) * (h + pad), n_cols * (w + pad), 3), 255, dtype=np.uint8
    )  # (H, W, 3) white background
    for c, label in enumerate(labels):
        cv2.putText(
            grid,
            str(label),
            (c * (w + pad) + 2, 10),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.3,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            big = cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST)
            y, x = header + r * (h + pad), c * (w + pad)
            grid[y : y + h, x : x + w] = big
    return grid


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


def check_video_path(path: str | Path) -> None:
    """ValueError unless ``path`` ends in a suffix ``write_video`` can write."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"video {path} must end in {', '.join(VIDEO_SUFFIXES)}")


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
