"""Writers of small, real source datasets for the importer / exporter tests.

Each writer produces files in the real on-disk format of its library: Minari through
``minari.DataCollector`` (or ``create_dataset_from_buffers``), LeRobot v3 with pyarrow
parquet + PyAV mp4 in the documented ``meta/ data/ videos/`` layout, robomimic with h5py.
Frames are tiny synthetic pictures (a moving square over a gradient) so that resizing and
video coding keep them recognisable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

# ----------------------------------------------------------------------------- synthetic data


def make_frames(rng: np.random.Generator, n: int, size: int = 16) -> np.ndarray:
    """(n, size, size, 3) uint8: a bright square moving over a per-episode gradient."""
    base = np.zeros((size, size, 3), np.uint8)
    base[..., 0] = np.linspace(0, 200, size, dtype=np.uint8)[None, :]
    base[..., 2] = int(rng.integers(0, 200))
    frames = np.repeat(base[None], n, axis=0)
    side = max(2, size // 4)
    for t in range(n):
        y, x = (t * 2) % (size - side), (t * 3 + int(rng.integers(0, 3))) % (size - side)
        frames[t, y : y + side, x : x + side] = (255, 255, 0)
    return frames


@dataclass
class RawEpisode:
    """A source episode in memory, before it is written in some format."""

    frames: np.ndarray  # (T+1, H, W, 3) uint8 (LeRobot writers drop the last)
    actions: np.ndarray  # (T, A) float32
    state: np.ndarray  # (T+1, P) float32
    rewards: np.ndarray  # (T,) float32
    extra_camera: np.ndarray | None = None  # (T+1, H, W, 3) second camera
    info: dict = field(default_factory=dict)


def make_episodes(n: int, *, steps: int | list[int] = 6, size: int = 16, action_dim: int = 3,
                  state_dim: int = 2, seed: int = 0, two_cameras: bool = False
                  ) -> list[RawEpisode]:
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(n):
        t = steps[i] if isinstance(steps, list) else steps
        eps.append(RawEpisode(
            frames=make_frames(rng, t + 1, size),
            actions=rng.uniform(-1, 1, (t, action_dim)).astype(np.float32),
            state=rng.normal(size=(t + 1, state_dim)).astype(np.float32),
            rewards=rng.uniform(0, 1, t).astype(np.float32),
            extra_camera=make_frames(rng, t + 1, size) if two_cameras else None,
        ))
    return eps


# ----------------------------------------------------------------------------- Minari


class TinyImageEnv(gym.Env):
    """A gymnasium env whose Dict observation holds a camera image and a state vector."""

    metadata = {"render_modes": []}

    def __init__(self, size: int = 16, steps: int = 5, two_cameras: bool = False,
                 goal: bool = False) -> None:
        spaces = {
            "image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
            "state": gym.spaces.Box(-10, 10, (2,), np.float32),
        }
        if two_cameras:
            spaces["wrist"] = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        if goal:
            spaces["achieved_goal"] = gym.spaces.Box(-10, 10, (3,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.size, self.steps, self.two_cameras, self.goal = size, steps, two_cameras, goal

    def _obs(self) -> dict:
        obs = {"image": self._frames[self.t], "state": np.array([self.t, 0.5], np.float32)}
        if self.two_cameras:
            obs["wrist"] = 255 - self._frames[self.t]
        if self.goal:
            obs["achieved_goal"] = np.array([self.t, 1, 2], np.float32)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._frames = make_frames(self.np_random, self.steps + 1, self.size)
        self.t = 0
        return self._obs(), {"is_success": False}

    def step(self, action):
        self.t += 1
        done = self.t >= self.steps
        return self._obs(), float(self.t), done, False, {"is_success": done}


TINY_ENV_ID = "goalrl_test/TinyImage-v0"  # registered so Minari records an env spec


def _register_tiny_env() -> None:
    if TINY_ENV_ID not in gym.registry:
        gym.register(TINY_ENV_ID, entry_point=f"{__name__}:TinyImageEnv", max_episode_steps=50)


def write_minari_collector(dataset_id: str, *, episodes: int = 3, size: int = 16,
                           steps: int = 5, two_cameras: bool = False, goal: bool = False,
                           record_infos: bool = False, jpeg: bool | None = None):
    """Collect episodes with the real ``minari.DataCollector``; returns the MinariDataset.

    Writes into ``$MINARI_DATASETS_PATH`` (tests point it at a tmp folder).
    """
    import minari
    import pytest

    pytest.importorskip("jax", reason="minari.DataCollector needs jax (minari[create])")
    kwargs = {} if jpeg is None else {"jpeg_encoding": jpeg}
    _register_tiny_env()
    base = gym.make(TINY_ENV_ID, size=size, steps=steps, two_cameras=two_cameras, goal=goal,
                    disable_env_checker=True)
    env = minari.DataCollector(base, record_infos=record_infos, **kwargs)
    for ep in range(episodes):
        env.reset(seed=ep)
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            done = term or trunc
    ds = env.create_dataset(dataset_id=dataset_id, eval_env=TINY_ENV_ID,
                            algorithm_name="random", author="test",
                            author_email="test@example.com", code_permalink="none",
                            description="goalrl importer fixture")
    env.close()
    return ds


# ----------------------------------------------------------------------------- LeRobot v3

LEROBOT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
LEROBOT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
LEROBOT_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"


def write_mp4(path: Path, frames: np.ndarray, fps: int, codec: str = "libx264") -> None:
    """Encode (N, H, W, 3) uint8 frames as an mp4 with PyAV (yuv420p, like LeRobot)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "0", "g": "2"}  # near-lossless for value checks
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_lerobot_v3(root: Path, episodes: list[RawEpisode], *, fps: int = 10,
                     camera: str = "observation.images.top", episodes_per_file: int = 2,
                     codec: str = "libx264", with_reward: bool = True, video: bool = True
                     ) -> Path:
    """A LeRobot v3.0 dataset: each episode has T = len(actions) frames and actions.

    Episodes are packed ``episodes_per_file`` to a data parquet / video mp4, as LeRobot
    does, so readers must use the per-episode offsets in ``meta/episodes``. ``video=False``
    stores the cameras as ``image`` features (PNG bytes inside the data parquet) instead.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    cams = [camera] + (["observation.images.wrist"] if episodes[0].extra_camera is not None
                       else [])
    h, w = episodes[0].frames.shape[1:3]
    a_dim, s_dim = episodes[0].actions.shape[1], episodes[0].state.shape[1]
    ep_rows, index = [], 0
    groups = [list(range(i, min(i + episodes_per_file, len(episodes))))
              for i in range(0, len(episodes), episodes_per_file)]
    for file_index, group in enumerate(groups):
        cols: dict[str, list] = {k: [] for k in ("action", "observation.state", "timestamp",
                                                 "frame_index", "episode_index", "index",
                                                 "task_index", "next.reward")}
        videos: dict[str, list[np.ndarray]] = {c: [] for c in cams}
        t0 = 0.0
        for e in group:
            ep = episodes[e]
            n = len(ep.actions)  # LeRobot: T frames, T actions (the last frame is not kept)
            start = index
            for t in range(n):
                cols["action"].append(ep.actions[t].tolist())
                cols["observation.state"].append(ep.state[t].tolist())
                cols["timestamp"].append(t / fps)
                cols["frame_index"].append(t)
                cols["episode_index"].append(e)
                cols["index"].append(index)
                cols["task_index"].append(0)
                cols["next.reward"].append(float(ep.rewards[t]))
                index += 1
            videos[camera].append(ep.frames[:n])
            if len(cams) > 1:
                videos[cams[1]].append(ep.extra_camera[:n])
            row = {"episode_index": e, "tasks": ["push the block"], "length": n,
                   "data/chunk_index": 0, "data/file_index": file_index,
                   "dataset_from_index": start, "dataset_to_index": index,
                   "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
            for c in cams:
                row.update({f"videos/{c}/chunk_index": 0, f"videos/{c}/file_index": file_index,
                            f"videos/{c}/from_timestamp": t0,
                            f"videos/{c}/to_timestamp": t0 + n / fps})
            if not video:
                row = {k: v for k, v in row.items() if not k.startswith("videos/")}
            ep_rows.append(row)
            t0 += n / fps
        if not with_reward:
            del cols["next.reward"]
        table = pa.table({
            k: (pa.array(v, pa.list_(pa.float32(), len(v[0])))
                if k in ("action", "observation.state") else
                pa.array(v, pa.float32() if k in ("timestamp", "next.reward") else pa.int64()))
            for k, v in cols.items()
        })
        if not video:  # image features: {bytes, path} structs of PNG files, as LeRobot stores
            for c in cams:
                cells = [{"bytes": _png(f), "path": None} for f in np.concatenate(videos[c])]
                table = table.append_column(c, pa.array(cells, pa.struct(
                    [("bytes", pa.binary()), ("path", pa.string())])))
        path = root / LEROBOT_DATA_PATH.format(chunk_index=0, file_index=file_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        for c in cams if video else []:
            write_mp4(root / LEROBOT_VIDEO_PATH.format(video_key=c, chunk_index=0,
                                                       file_index=file_index),
                      np.concatenate(videos[c]), fps, codec)
    ep_path = root / LEROBOT_EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(ep_rows), ep_path)
    pq.write_table(pa.table({"task_index": [0], "task": ["push the block"]}),
                   root / "meta" / "tasks.parquet")
    video_info = {"video.height": h, "video.width": w, "video.codec": codec,
                  "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                  "video.channels": 3, "has_audio": False}
    features = {
        "action": {"dtype": "float32", "shape": [a_dim], "names": None},
        "observation.state": {"dtype": "float32", "shape": [s_dim], "names": None},
        **{c: {"dtype": "video" if video else "image", "shape": [h, w, 3],
               "names": ["height", "width", "channels"],
               **({"info": video_info} if video else {})} for c in cams},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    if with_reward:
        features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    info = {
        "codebase_version": "v3.0", "robot_type": "tiny", "total_episodes": len(episodes),
        "total_frames": index, "total_tasks": 1, "chunks_size": 1000,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"}, "data_path": LEROBOT_DATA_PATH,
        "video_path": LEROBOT_VIDEO_PATH, "features": features,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return root


def _png(frame: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


# ----------------------------------------------------------------------------- robomimic


def write_robomimic(path: Path, episodes: list[RawEpisode], *, camera: str = "agentview_image",
                    next_obs: bool = True, env_name: str = "Lift") -> Path:
    """A robomimic-style HDF5 file: data/demo_i/{obs,next_obs,actions,rewards,dones}."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        env_args = {"env_name": env_name, "type": 1,
                    "env_kwargs": {"control_freq": 20, "camera_names": [camera.split("_")[0]]}}
        data.attrs["env_args"] = json.dumps(env_args)
        total = 0
        for i, ep in enumerate(episodes):
            t = len(ep.actions)
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = t
            g.create_dataset("actions", data=ep.actions.astype(np.float64))
            g.create_dataset("rewards", data=ep.rewards.astype(np.float64))
            dones = np.zeros(t, np.int64)
            dones[-1] = 1
            g.create_dataset("dones", data=dones)
            g.create_dataset(f"obs/{camera}", data=ep.frames[:t])
            g.create_dataset("obs/robot0_eef_pos", data=ep.state[:t].astype(np.float64))
            if ep.extra_camera is not None:
                g.create_dataset("obs/robot0_eye_in_hand_image", data=ep.extra_camera[:t])
            if next_obs:
                g.create_dataset(f"next_obs/{camera}", data=ep.frames[1:])
                g.create_dataset("next_obs/robot0_eef_pos", data=ep.state[1:].astype(np.float64))
                if ep.extra_camera is not None:
                    g.create_dataset("next_obs/robot0_eye_in_hand_image",
                                     data=ep.extra_camera[1:])
            total += t
        data.attrs["total"] = total
    return path


# ----------------------------------------------------------------------------- goalrl


def write_goalrl(root: Path, episodes: list[RawEpisode], *, success: bool = True,
                 env_id: str = "goalrl/Push-v0") -> Path:
    """A collect-like goalrl dataset (images, actions, proprio, rewards, success, seeds)."""
    from goalrl.data.storage import DatasetWriter, EpisodeData

    e0 = episodes[0]
    with DatasetWriter(root, image_shape=e0.frames.shape[1:], action_dim=e0.actions.shape[1],
                       proprio_dim=e0.state.shape[1], env_id=env_id, fps=12.0,
                       durable=False) as w:
        for i, ep in enumerate(episodes):
            t = len(ep.actions)
            succ = np.zeros(t + 1, bool)
            succ[-1] = i % 2 == 0
            w.append(EpisodeData(images=ep.frames, actions=ep.actions, proprio=ep.state,
                                 rewards=ep.rewards, success=succ if success else None,
                                 seed=100 + i))
    return root
