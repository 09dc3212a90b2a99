"""The shared PNG/MP4/WebM/GIF writers: readable output, clear errors, no partial files."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from goalrl.data import sheets
from goalrl.data.sheets import image_grid, write_png_atomic, write_video


def frames(n: int = 5) -> list[np.ndarray]:
    return [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(n)]


def test_mp4_and_gif_decode_with_every_frame(tmp_path) -> None:
    mp4 = write_video(tmp_path / "v.mp4", frames())
    cap = cv2.VideoCapture(str(mp4))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 5
    gif = Image.open(write_video(tmp_path / "v.gif", frames()))
    assert gif.n_frames == 5


def decoded(path) -> tuple[str, list]:
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context.name
        return codec, list(container.decode(video=0))


def test_mp4_is_h264_that_browsers_play(tmp_path) -> None:
    odd = [np.full((15, 17, 3), 40 * i, np.uint8) for i in range(5)]  # cropped to even
    codec, decoded_frames = decoded(write_video(tmp_path / "v.mp4", odd, fps=12.5))
    assert codec == "h264"
    assert len(decoded_frames) == 5
    assert (decoded_frames[0].height, decoded_frames[0].width) == (14, 16)
    assert list(tmp_path.iterdir()) == [tmp_path / "v.mp4"]  # no temp file left


def test_webm_is_vp8(tmp_path) -> None:
    codec, decoded_frames = decoded(write_video(tmp_path / "v.webm", frames()))
    assert codec == "vp8"
    assert len(decoded_frames) == 5


def test_mp4_falls_back_to_mp4v_without_libx264(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sheets, "_has_encoder", lambda codec: False)
    codec, decoded_frames = decoded(write_video(tmp_path / "v.mp4", frames()))
    assert codec == "mpeg4"
    assert len(decoded_frames) == 5
    assert sheets.write_browser_video(tmp_path / "page", frames()).suffix == ".webm"


def test_bad_video_requests_are_refused_without_leftovers(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"v\.avi must end in \.mp4, \.gif, \.webm"):
        write_video(tmp_path / "v.avi", frames())
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "v.mp4", [])
    assert list(tmp_path.iterdir()) == []


def test_grid_png_round_trip(tmp_path) -> None:
    grid = image_grid([frames(3), frames(2)], ("a", "b", "c"), scale=2)
    write_png_atomic(tmp_path / "g.png", grid)
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "g.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, grid)
    assert grid.shape[1] == 3 * (32 + 2)
