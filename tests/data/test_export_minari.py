"""goalrl -> Minari export, loaded by minari itself, and the round trip back."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import make_episodes, write_goalrl  # noqa: E402

import goalrl  # noqa: E402,F401  (registers goalrl/Push-v0, so the env spec is exported)
from goalrl.data.export import export_minari, resolve_minari_target  # noqa: E402
from goalrl.data.importers import import_dataset  # noqa: E402
from goalrl.data.storage import DatasetError, EpisodeDataset  # noqa: E402


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture
def goalrl_ds(tmp_path):
    # 40x40 frames: large enough that minari would JPEG-encode them if the export let it
    return write_goalrl(tmp_path / "g", make_episodes(3, steps=[4, 6, 5], size=40))


def test_round_trip_by_id(minari_root, goalrl_ds, tmp_path):
    import minari

    s = export_minari(goalrl_ds, "goalrl/push-v0")
    assert s["num_episodes"] == 3 and s["num_steps"] == 15
    assert s["observation_keys"] == ["image", "proprio"]
    loaded = minari.load_dataset("goalrl/push-v0")
    assert loaded.total_episodes == 3
    assert "goalrl/push-v0" in minari.list_local_datasets()
    ep = next(loaded.iterate_episodes())
    assert ep.observations["image"].shape == (5, 40, 40, 3)  # N+1 observations

    back = import_dataset("goalrl/push-v0", "minari", tmp_path / "back", image_size=40,
                          proprio="proprio")
    assert back["env_id"] == "goalrl/Push-v0" and back["fps"] == 12.0
    a, b = EpisodeDataset(goalrl_ds), EpisodeDataset(tmp_path / "back")
    assert b.num_episodes == a.num_episodes
    for i in range(a.num_episodes):
        x, y = a.episode(i), b.episode(i)
        assert np.array_equal(x.images, y.images)
        assert np.array_equal(x.actions, y.actions)
        assert np.array_equal(x.proprio, y.proprio)
        assert np.array_equal(x.rewards, y.rewards)
        assert np.array_equal(x.success, y.success)
        assert x.seed == y.seed


def test_export_to_folder(minari_root, goalrl_ds, tmp_path):
    import minari

    s = export_minari(goalrl_ds, tmp_path / "exported")
    assert s["dataset_id"] == "exported-v0"
    ds = minari.MinariDataset(tmp_path / "exported" / "data")
    assert ds.total_steps == 15 and ds.spec.env_spec.id == "goalrl/Push-v0"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    with pytest.raises(DatasetError, match="already exists"):
        export_minari(goalrl_ds, tmp_path / "exported")


def test_target_resolution(minari_root, tmp_path):
    assert resolve_minari_target("ns/name-v3")[1:] == ("ns/name-v3", True)
    assert resolve_minari_target("./name-v3")[1:] == ("name-v3", False)
    dest, ds_id, by_id = resolve_minari_target(tmp_path / "my export")
    assert (ds_id, by_id) == ("my_export-v0", False) and dest == tmp_path / "my export"


def test_achieved_goal_and_state_survive_the_round_trip(minari_root, tmp_path):
    from goalrl.data.storage import DatasetWriter, EpisodeData

    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "g", image_shape=(8, 8, 3), action_dim=2, goal_dim=2,
                       state_dim=11, env_id="goalrl/Grasp-v0", durable=False) as w:
        for t in (3, 4):
            w.append(EpisodeData(
                images=rng.integers(0, 256, (t + 1, 8, 8, 3), dtype=np.uint8),
                actions=rng.uniform(-1, 1, (t, 2)).astype(np.float32),
                achieved_goal=rng.normal(size=(t + 1, 2)).astype(np.float32),
                state=rng.normal(size=(t + 1, 11)).astype(np.float32), seed=t))
    s = export_minari(tmp_path / "g", "goalrl/grasp-v0")
    assert s["observation_keys"] == ["achieved_goal", "image", "state"]
    import_dataset("goalrl/grasp-v0", "minari", tmp_path / "back", image_size=8)
    a, b = EpisodeDataset(tmp_path / "g"), EpisodeDataset(tmp_path / "back")
    assert b.state_dim == 11 and b.goal_dim == 2
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.achieved_goal, b.achieved_goal)
