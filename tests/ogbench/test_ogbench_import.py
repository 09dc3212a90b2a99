"""goalrl data import format=ogbench: OGBench .npz files into goalrl's episode format."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from npz_files import load_like_ogbench, raw_npz  # noqa: E402

from goalrl.data.images import prepare_frames  # noqa: E402
from goalrl.data.importers import import_dataset  # noqa: E402
from goalrl.data.importers.ogbench import env_from_name  # noqa: E402
from goalrl.data.storage import DatasetError, EpisodeDataset  # noqa: E402


def transitions(root: Path) -> dict[str, np.ndarray]:
    """(o, a, o') of every transition of a goalrl dataset, in order, as OGBench lists them."""
    with EpisodeDataset(root) as ds:
        state = ds.proprio  # (F, D)
        rows = np.concatenate([np.arange(s, s + n - 1) for s, n in
                               zip(ds.episode_starts, ds.episode_lengths)])
        actions = np.concatenate([ds.episode(i).actions for i in range(ds.num_episodes)])
        return {"observations": state[rows], "next_observations": state[rows + 1],
                "actions": actions}


def test_raw_state_file_counts_shapes_and_values(tmp_path) -> None:
    src = raw_npz(tmp_path / "cube-single-play-v0.npz", [4, 1, 5])  # the 1-frame one: skipped
    summary = import_dataset(src, "ogbench", tmp_path / "out")
    assert summary["num_episodes"] == 2 and summary["num_frames"] == 9
    assert summary["num_transitions"] == 7 and summary["episodes_skipped"][0]["episode"] == 1
    assert summary["env_id"] == "ogbench:cube-single-v0" and summary["layout"] == "raw"
    with EpisodeDataset(tmp_path / "out") as ds:
        assert ds.image_shape == (8, 8, 3) and ds.proprio_dim == 4 and ds.goal_dim is None
        assert ds.proprio[:, 0].tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]  # source rows
        assert ds.meta["extra"]["source_info"]["fields_not_stored"] == {"qpos": [3]}
    # the dropped action of each episode's last frame: rows 3 and 9 are not kept
    assert np.allclose(transitions(tmp_path / "out")["actions"][:, 0] * 1000,
                       [0, 1, 2, 5, 6, 7, 8])


def test_transition_and_compact_layouts_import_the_same_episodes(tmp_path) -> None:
    raw = raw_npz(tmp_path / "raw.npz", [4, 6])
    ogb = load_like_ogbench(raw)
    np.savez(tmp_path / "transitions.npz", **ogb)
    file = np.load(raw)
    terminals = file["terminals"].astype(np.float32)
    np.savez(tmp_path / "compact.npz", observations=file["observations"],
             actions=file["actions"], valids=1 - terminals,
             terminals=np.minimum(terminals + np.concatenate([terminals[1:], [1]]), 1))
    expected = transitions(Path(import_dataset(raw, "ogbench", tmp_path / "a")["out"]))
    for name in ("transitions", "compact"):
        summary = import_dataset(tmp_path / f"{name}.npz", "ogbench", tmp_path / name)
        assert summary["layout"] == name and summary["num_transitions"] == 8
        got = transitions(tmp_path / name)
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{name} {key}")
    for key in ("observations", "next_observations", "actions"):  # OGBench's own pairs
        np.testing.assert_array_equal(expected[key], ogb[key])


def test_pixel_file_becomes_the_images(tmp_path) -> None:
    src = raw_npz(tmp_path / "visual-cube-single-play-v0.npz", [3, 4], pixels=16)
    summary = import_dataset(src, "ogbench", tmp_path / "out", image_size=8)
    assert summary["observation"] == "pixels" and summary["num_frames"] == 7
    with EpisodeDataset(tmp_path / "out") as ds:
        assert ds.image_shape == (8, 8, 3) and ds.proprio_dim is None
        images = np.concatenate([ds.episode(i).images for i in range(ds.num_episodes)])
    np.testing.assert_array_equal(images, prepare_frames(np.load(src)["observations"], 8))


def test_pixel_transitions_layout_streams_the_same_frames(tmp_path) -> None:
    raw = raw_npz(tmp_path / "raw.npz", [3, 5], pixels=8)
    np.savez(tmp_path / "transitions.npz", **load_like_ogbench(raw))
    frames = {}
    for name in ("raw", "transitions"):
        summary = import_dataset(tmp_path / f"{name}.npz", "ogbench", tmp_path / name,
                                 image_size=8)
        assert summary["num_frames"] == 8 and summary["num_transitions"] == 6
        with EpisodeDataset(tmp_path / name) as ds:
            frames[name] = np.concatenate([ds.episode(i).images for i in range(2)])
    np.testing.assert_array_equal(frames["transitions"], frames["raw"])
    broken = load_like_ogbench(raw)
    broken["next_observations"][2] += 1  # row 2 (episode 1) no longer leads to row 3
    np.savez(tmp_path / "broken.npz", **broken)
    with pytest.raises(DatasetError, match="'next_observations' row 2 "):
        import_dataset(tmp_path / "broken.npz", "ogbench", tmp_path / "broken", image_size=8)


def test_generated_file_imports_as_ogbench_loads_it(generated, tmp_path) -> None:
    ogbench = pytest.importorskip("ogbench")
    steps = generated["summary"]["settings"]["max_episode_steps"]
    summary = import_dataset(generated["path"], "ogbench", tmp_path / "out")
    assert summary["num_episodes"] == 2 and summary["num_frames"] == 2 * steps
    assert summary["env_id"] == "ogbench:cube-single-v0"
    reference = ogbench.load_dataset(str(generated["path"]))
    got = transitions(tmp_path / "out")
    for key in ("observations", "next_observations", "actions"):
        np.testing.assert_array_equal(got[key], reference[key], err_msg=key)
    with EpisodeDataset(tmp_path / "out") as ds:  # the generator's settings in the card
        info = ds.meta["extra"]["source_info"]
        assert info["generator"]["settings"]["max_episode_steps"] == steps


N = 9  # rows of the malformed files: episodes of 4 and 5 frames
BAD_FILES = {
    "missing field": ({"terminals": None}, "terminals"),
    "mismatched lengths": ({"actions": np.zeros((N - 1, 5), np.float32)}, "actions"),
    "extra field length": ({"qvel": np.zeros((N + 1, 2), np.float32)}, "qvel"),
    "integer observations": ({"observations": np.zeros((N, 4), np.int64)}, "observations"),
    "3-d observations": ({"observations": np.zeros((N, 4, 4), np.float32)}, "observations"),
    "discrete actions": ({"actions": np.zeros(N, np.int32)}, "actions"),
    "NaN observation": ({"observations": np.where(np.arange(N)[:, None] == 5, np.nan,
                                                  np.zeros((N, 4), np.float32))},
                        "observations"),
    "inf action": ({"actions": np.full((N, 5), np.inf, np.float32)}, "actions"),
    "terminal value 2": ({"terminals": np.array([0, 0, 0, 2, 0, 0, 0, 0, 1])}, "terminals"),
    "unfinished last episode": ({"terminals": np.array([0, 0, 0, 1, 0, 0, 0, 0, 0], bool)},
                                "terminals"),
    "broken chain": ({"next_observations": np.ones((N, 4), np.float32)}, "next_observations"),
    "object array": ({"qpos": np.array([None] * N)}, "qpos"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_files_are_refused_naming_file_and_field(case, tmp_path) -> None:
    fields, field = BAD_FILES[case]
    src = raw_npz(tmp_path / "bad.npz", [4, 5], **fields)  # an object array is pickled
    with pytest.raises(DatasetError) as error:
        import_dataset(src, "ogbench", tmp_path / "out")
    assert str(src) in str(error.value) and f"'{field}'" in str(error.value), str(error.value)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_not_a_zip_and_camera_are_refused(tmp_path) -> None:
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        import_dataset(tmp_path / "x.npz", "ogbench", tmp_path / "out")
    src = raw_npz(tmp_path / "ok.npz", [3])
    with pytest.raises(DatasetError, match="camera="):
        import_dataset(src, "ogbench", tmp_path / "out", camera="front")


def test_rerun_resumes_and_cli_reports_one_line(tmp_path) -> None:
    src = raw_npz(tmp_path / "ok.npz", [3, 3])
    import_dataset(src, "ogbench", tmp_path / "out")
    again = import_dataset(src, "ogbench", tmp_path / "out")
    assert again["episodes_imported"] == 0 and again["num_episodes"] == 2
    bad = raw_npz(tmp_path / "bad.npz", [3, 3], terminals=None)
    proc = subprocess.run(
        [sys.executable, "-m", "goalrl.cli", "data", "import", "format=ogbench", f"src={bad}",
         f"out={tmp_path / 'x'}"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "missing field 'terminals'" in proc.stderr


@pytest.mark.parametrize("name, env", [
    ("cube-single-play-v0.npz", "cube-single-v0"),
    ("visual-scene-noisy-v0-val.npz", "visual-scene-v0"),
    ("antmaze-large-navigate-v0.npz", "antmaze-large-v0"),
    ("my-data.npz", None),
])
def test_env_from_ogbench_file_names(name, env) -> None:
    assert env_from_name(Path(name)) == env
