"""``goalrl data info|show|import|export|verify|repair``: configs and command functions.

Plain dataclass configs (the CLI registers them as hydra structured configs) and one
function per subcommand, each returning a JSON-serialisable summary dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from goalrl.data.storage import DatasetError

EXPORT_FORMATS = ("minari",)  # valid values of `goalrl data export format=`


@dataclass
class DataInfoConfig:
    path: str = "???"  # goalrl dataset folder


@dataclass
class DataVerifyConfig:
    path: str = "???"  # goalrl dataset folder; every checksum (images included) is checked


@dataclass
class DataRepairConfig:
    path: str = "???"  # goalrl dataset folder; damaged episodes are dropped from its index
    check_images: bool = True  # also read every frame to find corrupt images (slow on big sets)


@dataclass
class DataShowConfig:
    path: str = "???"  # goalrl dataset folder
    out: str = "???"  # contact sheet PNG to write
    episodes: int = 16  # rows on the sheet (episodes spread evenly over the dataset)
    video_episode: int | None = None  # also write this episode as an MP4
    video_out: str | None = None  # MP4 path (default: next to `out`, episode_<i>.mp4)
    video_scale: int = 4  # upscaling factor of the video frames
    video_fps: float | None = None  # playback rate (default: the dataset's fps)


@dataclass
class DataImportConfig:
    src: str = "???"  # source file/folder (or a local Minari dataset id)
    format: str = "???"  # minari | lerobot | robomimic | ogbench
    out: str = "???"  # goalrl dataset folder to create (or resume)
    camera: str | None = None  # image/video key (needed when the source has several)
    image_size: int = 64  # stored frames are image_size x image_size x 3
    proprio: str | None = None  # low-dim observation key stored as proprio (None: none)
    fps: float | None = None  # override the frame rate recorded in the dataset


@dataclass
class DataExportConfig:
    path: str = "???"  # goalrl dataset folder
    format: str = "minari"  # export format (minari)
    out: str = "???"  # destination folder, or a Minari dataset id `[namespace/]name-vN`
    dataset_id: str | None = None  # Minari id to record when `out` is a folder
    author: str | None = None  # author recorded in the Minari metadata


def info(cfg: DataInfoConfig) -> dict:
    """Counts, shapes, sizes and action statistics of a dataset."""
    from goalrl.data.inspect import dataset_info

    return dataset_info(cfg.path)


def verify(cfg: DataVerifyConfig) -> dict:
    """Every checksum; a DatasetError naming each damaged episode, its file and the fault."""
    from goalrl.data.integrity import verify_dataset

    return verify_dataset(cfg.path)


def repair(cfg: DataRepairConfig) -> dict:
    """Drop damaged episodes (frames stay on disk; the index and meta.json are rewritten)."""
    from goalrl.data.integrity import repair_summary

    return repair_summary(cfg.path, check_images=cfg.check_images)


def show(cfg: DataShowConfig) -> dict:
    """Contact sheet PNG (first / middle / last frame per episode), optionally an MP4."""
    from goalrl.data.inspect import contact_sheet, episode_video

    summary = {"sheet": contact_sheet(cfg.path, cfg.out, max_episodes=cfg.episodes)}
    if cfg.video_episode is not None:
        video_out = cfg.video_out or str(Path(cfg.out).with_name(
            f"episode_{cfg.video_episode}.mp4"))
        summary["video"] = episode_video(cfg.path, cfg.video_episode, video_out,
                                         fps=cfg.video_fps, scale=cfg.video_scale)
    return summary


def import_(cfg: DataImportConfig) -> dict:
    """Import a Minari / LeRobot v3 / robomimic / OGBench dataset (resumable)."""
    from goalrl.data.importers import import_dataset

    return import_dataset(cfg.src, cfg.format, cfg.out, camera=cfg.camera,
                          image_size=cfg.image_size, proprio=cfg.proprio, fps=cfg.fps)


def export(cfg: DataExportConfig) -> dict:
    """Export a dataset to another format (Minari)."""
    if str(cfg.format).lower() != "minari":
        raise DatasetError(f"unknown export format {cfg.format!r}; valid formats: "
                           f"{', '.join(EXPORT_FORMATS)}")
    from goalrl.data.export import export_minari

    return export_minari(cfg.path, cfg.out, dataset_id=cfg.dataset_id, author=cfg.author)
