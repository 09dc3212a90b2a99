"""Crash safety and damaged files: finished episodes survive, damage is named clearly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import goalrl.data.storage.writer as storage_writer
from goalrl.data.storage import (
    DatasetError,
    DatasetWriter,
    EpisodeData,
    EpisodeDataset,
    repair_dataset,
)

SHAPE = (8, 8, 3)
REPO = Path(__file__).resolve().parents[2]


def episode(i: int, steps: int = 5) -> EpisodeData:
    """Deterministic content from the episode number, so survivors can be checked."""
    rng = np.random.default_rng(i)
    return EpisodeData(images=rng.integers(0, 256, (steps + 1, *SHAPE), dtype=np.uint8),
                       actions=rng.uniform(-1, 1, (steps, 2)).astype(np.float32),
                       proprio=rng.normal(size=(steps + 1, 3)).astype(np.float32), seed=i)


def make(root: Path, n: int, durable: bool = False, **kw) -> None:
    with DatasetWriter(root, image_shape=SHAPE, action_dim=2, proprio_dim=3,
                       durable=durable, **kw) as w:
        for i in range(n):
            w.append(episode(i))


def check_episodes(ds: EpisodeDataset, ids: list[int]) -> None:
    assert ds.num_episodes == len(ids)
    for e, i in enumerate(ids):
        ref, got = episode(i), ds.episode(e)
        np.testing.assert_array_equal(got.images, ref.images)
        np.testing.assert_array_equal(got.actions, ref.actions)
        assert got.seed == i


CHUNK = Path("chunks/000000")


# ----------------------------------------------------------------------------- crashes


def test_bytes_past_the_commit_are_ignored_then_truncated(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make(root, 3)
    sizes = {p: p.stat().st_size for p in (root / CHUNK).iterdir()}
    for name in ("images.u8", "actions.f32", "proprio.f32"):  # a half-written 4th episode
        with open(root / CHUNK / name, "ab") as f:
            f.write(b"\x07" * 1000)
    with open(root / "episodes.jsonl", "ab") as f:
        f.write(b'{"index": 3, "chunk": 0, "off')
    (root / "chunks" / "000001").mkdir()  # a chunk folder never committed
    check_episodes(EpisodeDataset(root), [0, 1, 2])
    with DatasetWriter.resume(root, durable=False) as w:  # resume truncates the leftovers
        assert not (root / "chunks" / "000001").exists()
        assert {p: p.stat().st_size for p in (root / CHUNK).iterdir()} == sizes
        w.append(episode(3))
    check_episodes(EpisodeDataset(root), [0, 1, 2, 3])


_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    import goalrl.data.storage.writer as storage_writer
    from goalrl.data.storage import DatasetWriter
    from test_storage_crash import episode
    root, kill_at, where = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    owner = storage_writer.os if where == "replace" else storage_writer
    real = getattr(owner, where)
    calls = [0]
    def fatal(*a, **k):
        calls[0] += 1
        if calls[0] == kill_at:
            if where == "pwrite_all":  # die after writing half of the bytes
                fd, data, off = a
                real(fd, memoryview(data).cast("B")[: len(memoryview(data).cast("B")) // 2], off)
            if where == "replace":  # die right after the commit point
                real(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    setattr(owner, where, fatal)
    w = DatasetWriter(root, image_shape=(8, 8, 3), action_dim=2, proprio_dim=3)
    for i in range(100):
        w.append(episode(i))
        print(i, flush=True)
""")


# per append: 4 pwrite_all (images, actions, proprio, episode line), 1 atomic_write and
# 1 os.replace (meta.json); creating the dataset does 2 of each (meta.json, README.md)
@pytest.mark.parametrize("where, kill_at, survivors", [
    ("pwrite_all", 4 * 2 + 1, 2),  # half-way through the images of episode 2
    ("pwrite_all", 4 * 3 + 4, 3),  # half-way through the index line of episode 3
    ("atomic_write", 2 + 2, 1),  # before the meta.json of episode 1 is written
    ("replace", 2 + 3, 3),  # right after episode 2's commit, before append returns
])
def test_sigkill_mid_append_keeps_finished_episodes(tmp_path: Path, where: str,
                                                   kill_at: int, survivors: int) -> None:
    root = tmp_path / "ds"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(repo=str(REPO)))
    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{REPO}"}
    proc = subprocess.run([sys.executable, str(script), str(root), str(kill_at), where],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    finished = [int(x) for x in proc.stdout.split()]
    ds = EpisodeDataset(root)
    # every finished append survives; the one in flight is either fully there or absent
    assert ds.num_episodes == survivors
    assert len(finished) == survivors - (where == "replace")
    check_episodes(ds, list(range(ds.num_episodes)))
    with DatasetWriter.resume(root, durable=False) as w:
        w.append(episode(50))
    check_episodes(EpisodeDataset(root), [*range(ds.num_episodes), 50])


def test_sigkill_at_random_times(tmp_path: Path) -> None:
    """A real collection loop killed from outside, several times in a row."""
    code = textwrap.dedent(f"""
        import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(REPO)!r}]
        from goalrl.data.storage import DatasetWriter
        from test_storage_crash import episode
        w = DatasetWriter.resume(sys.argv[1]) if sys.argv[2] == "1" else DatasetWriter(
            sys.argv[1], image_shape=(8, 8, 3), action_dim=2, proprio_dim=3, chunk_frames=40)
        i = w.num_episodes
        print("ready", flush=True)
        while True:
            w.append(episode(i)); i += 1
    """)
    root = tmp_path / "ds"
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(int(round_ > 0))],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        before = EpisodeDataset(root).num_episodes
        while EpisodeDataset(root).num_episodes < before + 5 + 7 * round_:  # reads while it writes
            assert proc.poll() is None, "the writer died on its own"
        proc.kill()
        proc.wait()
        ds = EpisodeDataset(root)
        check_episodes(ds, list(range(ds.num_episodes)))


def test_exception_mid_append_leaves_dataset_and_writer_usable(tmp_path: Path,
                                                               monkeypatch) -> None:
    root = tmp_path / "ds"
    w = DatasetWriter(root, image_shape=SHAPE, action_dim=2, proprio_dim=3, durable=False)
    w.append(episode(0))
    real = storage_writer.pwrite_all
    calls = [0]

    def flaky(fd, data, off):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(28, "No space left on device")
        return real(fd, data, off)

    monkeypatch.setattr(storage_writer, "pwrite_all", flaky)
    with pytest.raises(OSError):
        w.append(episode(1))
    check_episodes(EpisodeDataset(root), [0])
    assert w.append(episode(2)) == 1
    w.close()
    check_episodes(EpisodeDataset(root), [0, 2])


def test_ctrl_c_during_append_finishes_the_append(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "ds"
    w = DatasetWriter(root, image_shape=SHAPE, action_dim=2, proprio_dim=3, durable=False)
    real = storage_writer.pwrite_all

    def interrupted(fd, data, off):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives while bytes are written
        return real(fd, data, off)

    monkeypatch.setattr(storage_writer, "pwrite_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        w.append(episode(0))
    monkeypatch.setattr(storage_writer, "pwrite_all", real)
    assert w.num_episodes == 1  # committed, and the writer knows it
    w.append(episode(1))
    w.close()
    check_episodes(EpisodeDataset(root), [0, 1])


# ----------------------------------------------------------------------------- damage


def test_truncated_chunk_file(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make(root, 6, chunk_frames=18)  # 3 episodes of 6 frames per chunk
    images = root / CHUNK / "images.u8"
    os.truncate(images, images.stat().st_size - 100)  # damages episode 2 only
    with pytest.raises(DatasetError) as err:
        EpisodeDataset(root)
    msg = str(err.value)
    assert str(images) in msg and "episode 2" in msg and "truncated" in msg
    assert "'images'" in msg and f"goalrl data repair path={root}" in msg
    with pytest.warns(UserWarning, match="skipping 1 damaged"):
        ds = EpisodeDataset(root, skip_damaged=True)
    check_episodes(ds, [0, 1, 3, 4, 5])
    assert len(ds.damaged) == 1 and "episode 2" in ds.damaged[0]
    with pytest.raises(DatasetError, match="damaged"):  # no appending to a damaged dataset
        DatasetWriter.resume(root)
    dropped = repair_dataset(root, durable=False)
    assert len(dropped) == 1
    ds = EpisodeDataset(root)
    check_episodes(ds, [0, 1, 3, 4, 5])
    assert ds.meta["num_episodes"] == 5 and ds.meta["repairs"]
    with DatasetWriter.resume(root, durable=False) as w:
        w.append(episode(6))
    check_episodes(EpisodeDataset(root), [0, 1, 3, 4, 5, 6])
    assert repair_dataset(root) == []


def test_corrupt_lowdim_bytes_fail_checksum(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make(root, 3)
    path = root / CHUNK / "actions.f32"
    data = bytearray(path.read_bytes())
    data[6 * 2 * 4 + 3] ^= 0xFF  # a byte of episode 1's actions
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"actions\.f32: episode 1: field 'actions' fails"):
        EpisodeDataset(root)


def test_corrupt_images_found_by_verify(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make(root, 3)
    path = root / CHUNK / "images.u8"
    with open(path, "r+b") as f:
        f.seek(int(np.prod(SHAPE)) * 6 * 2 + 5)  # episode 2's first frame
        f.write(b"\x00\x01\x02")
    ds = EpisodeDataset(root)  # images are not checksummed on open (they are the bulk)
    problems = ds.verify()
    assert len(problems) == 1 and str(path) in problems[0] and "episode 2" in problems[0]
    ds.close()
    assert len(repair_dataset(root, check_images=True)) == 1
    check_episodes(EpisodeDataset(root), [0, 1])
    assert EpisodeDataset(root).verify() == []


def _edit_meta(root: Path, fn) -> None:
    meta = json.loads((root / "meta.json").read_text())
    fn(meta)
    (root / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case, match", [
    ("no meta", r"meta\.json: missing file"),
    ("bad json", r"meta\.json: corrupt JSON"),
    ("missing key", r"meta\.json: missing key 'image_shape'"),
    ("wrong type", r"meta\.json: key 'num_frames' has wrong type"),
    ("future version", r"meta\.json: unknown format_version 99 .*newer"),
    ("old version", r"meta\.json: unknown format_version 0"),
    ("not goalrl", r"meta\.json: 'format' is 'minari'"),
    ("bad dtype", r"meta\.json: field 'actions': expected file 'actions\.f32' with dtype '<f4'"),
    ("bad field", r"meta\.json: unknown field 'depth'"),
    ("missing chunk file", r"proprio\.f32: missing file \(field 'proprio'"),
    ("no index", r"episodes\.jsonl: missing file"),
    ("truncated index", r"episodes\.jsonl: truncated"),
    ("corrupt index", r"episodes\.jsonl: checksum mismatch"),
    ("count mismatch", r"episodes\.jsonl: has 3 episodes, meta\.json says 4"),
    ("no folder", r"dataset folder does not exist"),
])
def test_damaged_dataset_errors(tmp_path: Path, case: str, match: str) -> None:
    root = tmp_path / "ds"
    make(root, 3)
    index = root / "episodes.jsonl"
    if case == "no meta":
        (root / "meta.json").unlink()
    elif case == "bad json":
        (root / "meta.json").write_text('{"format": "goalrl-epi')
    elif case == "missing key":
        _edit_meta(root, lambda m: m.pop("image_shape"))
    elif case == "wrong type":
        _edit_meta(root, lambda m: m.update(num_frames="18"))
    elif case == "future version":
        _edit_meta(root, lambda m: m.update(format_version=99))
    elif case == "old version":
        _edit_meta(root, lambda m: m.update(format_version=0))
    elif case == "not goalrl":
        _edit_meta(root, lambda m: m.update(format="minari"))
    elif case == "bad dtype":
        _edit_meta(root, lambda m: m["fields"]["actions"].update(dtype="<f8"))
    elif case == "bad field":
        _edit_meta(root, lambda m: m["fields"].update(depth=m["fields"]["images"]))
    elif case == "missing chunk file":
        (root / CHUNK / "proprio.f32").unlink()
    elif case == "no index":
        index.unlink()
    elif case == "truncated index":
        os.truncate(index, index.stat().st_size - 10)
    elif case == "corrupt index":
        index.write_bytes(index.read_bytes().replace(b'"seed":1', b'"seed":7'))
    elif case == "count mismatch":
        _edit_meta(root, lambda m: m.update(num_episodes=4))
    elif case == "no folder":
        root = tmp_path / "nothing"
    with pytest.raises(DatasetError, match=match):
        EpisodeDataset(root)
