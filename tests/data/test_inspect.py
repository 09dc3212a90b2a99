"""`goalrl data info|show|import|export` functions: info JSON, contact sheet, MP4."""

import json
import sys
from pathlib import Path

import cv2
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import make_episodes, write_goalrl, write_robomimic  # noqa: E402

from goalrl.commands import data as data_cmd  # noqa: E402
from goalrl.data.inspect import contact_sheet, dataset_info, episode_video  # noqa: E402
from goalrl.data.storage import DatasetError  # noqa: E402


@pytest.fixture
def ds_path(tmp_path):
    return write_goalrl(tmp_path / "g", make_episodes(5, steps=[3, 4, 5, 6, 7], size=16))


def test_info_is_json_with_counts_and_sizes(ds_path):
    info = dataset_info(ds_path)
    json.dumps(info)  # JSON-serialisable
    assert info["num_episodes"] == 5 and info["num_transitions"] == 25
    assert info["num_frames"] == 30 and info["image_shape"] == [16, 16, 3]
    assert info["episode_length"] == {"min": 3, "max": 7, "mean": 5.0, "median": 5.0}
    assert info["field_bytes"]["images"] == 30 * 16 * 16 * 3
    assert info["size_bytes"] > info["field_bytes"]["images"]
    assert info["action_stats"]["count"] == 25 and len(info["action_stats"]["mean"]) == 3
    assert set(info["fields"]) >= {"images", "actions", "proprio", "rewards", "success"}
    assert info["env_id"] == "goalrl/Push-v0" and info["fps"] == 12.0
    assert info["state_dim"] is None  # written without the state field
    assert info["final_success_rate"] == 0.6  # episodes 0, 2, 4 end in success


def test_contact_sheet(ds_path, tmp_path):
    out = tmp_path / "sheets" / "sheet.png"
    s = contact_sheet(ds_path, out, max_episodes=3)
    assert s["episodes"] == [0, 2, 4]  # spread over the dataset
    img = cv2.imread(str(out))
    assert img.shape[:2] == (s["height"], s["width"])
    assert img.shape[0] > 3 * 96  # three rows of upscaled tiles
    label_w = img.shape[1] - 3 * (96 + 2)  # the column of episode / seed / length labels
    assert label_w > 20 and (img[:, :label_w] < 128).any()  # dark text on white
    assert [p.name for p in out.parent.iterdir()] == ["sheet.png"]  # no temp file left


def test_episode_video_decodes(ds_path, tmp_path):
    out = tmp_path / "ep.mp4"
    s = episode_video(ds_path, 4, out, scale=4)
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert s["frames"] == 8 and len(frames) == 8  # T+1 frames
    assert frames[0].shape == (64, 64, 3)
    with pytest.raises(DatasetError, match="out of range"):
        episode_video(ds_path, 9, out)


def test_commands_end_to_end(ds_path, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    info = data_cmd.info(data_cmd.DataInfoConfig(path=str(ds_path)))
    assert info["num_episodes"] == 5
    shown = data_cmd.show(data_cmd.DataShowConfig(path=str(ds_path), out=str(tmp_path / "s.png"),
                                                  episodes=2, video_episode=1))
    assert Path(shown["video"]["out"]).name == "episode_1.mp4"
    assert Path(shown["sheet"]["out"]).is_file()
    src = write_robomimic(tmp_path / "demo.hdf5", make_episodes(2, steps=3))
    imported = data_cmd.import_(data_cmd.DataImportConfig(
        src=str(src), format="robomimic", out=str(tmp_path / "imp"), image_size=8))
    assert imported["num_episodes"] == 2
    exported = data_cmd.export(data_cmd.DataExportConfig(path=str(tmp_path / "imp"),
                                                         out=str(tmp_path / "mnr")))
    assert exported["num_steps"] == 6
    for summary in (info, shown, imported, exported):
        json.dumps(summary)
    with pytest.raises(DatasetError, match="valid formats: minari"):
        data_cmd.export(data_cmd.DataExportConfig(path=str(ds_path), format="rlds", out="x"))


def test_contact_sheet_and_video_of_a_grayscale_dataset(tmp_path):
    import numpy as np

    from goalrl.data.storage import DatasetWriter, EpisodeData

    root = tmp_path / "gray"
    rng = np.random.default_rng(0)
    with DatasetWriter(root, image_shape=(12, 12, 1), action_dim=2, durable=False) as w:
        for _ in range(2):
            w.append(EpisodeData(images=rng.integers(0, 256, (5, 12, 12, 1), dtype=np.uint8),
                                 actions=np.zeros((4, 2), np.float32)))
    s = contact_sheet(root, tmp_path / "sheet.png")
    img = cv2.imread(str(tmp_path / "sheet.png"))
    assert s["episodes"] == [0, 1] and img.shape == (s["height"], s["width"], 3)
    v = episode_video(root, 1, tmp_path / "ep.mp4", scale=8)
    assert v["frames"] == 5 and v["size"] == [96, 96]
