"""The human-readable dataset card (README.md in a dataset folder), rendered from meta.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

_FIELD_DOC = {
    "images": "camera frames, every observation incl. the final one of each episode",
    "actions": "action a_t taken at frame t; zero row on each episode's last frame",
    "proprio": "low-dim robot state at frame t",
    "rewards": "task reward r(o_t, a_t); zero on each episode's last frame",
    "success": "success label of frame t (0/1)",
    "achieved_goal": "low-dim achieved goal (e.g. object positions) at frame t",
    "state": "what state-based agents read at frame t: the arm's and objects' coordinates "
             "and the scene layout (tray)",
}


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    return "-" if x is None else str(x)


def _disk_bytes(root: Path) -> int:
    chunks = root / "chunks"
    if not chunks.is_dir():
        return 0
    return sum(p.stat().st_size for p in chunks.rglob("*") if p.is_file())


def render_card(meta: dict, root: Path) -> str:
    """Markdown card: what the data is, its shapes and statistics, and how to load it."""
    name = Path(root).name
    size = _disk_bytes(Path(root))
    lines = [
        f"# Dataset `{name}`",
        "",
        "An unlabeled robot-log dataset in goalrl's episode format "
        f"(`{meta['format']}` version {meta['format_version']}). This card is generated; "
        "the source of truth is `meta.json`.",
        "",
        "| | |",
        "|---|---|",
        f"| source | {_fmt(meta.get('source'))} |",
        f"| environment | {_fmt(meta.get('env_id'))} |",
        f"| episodes | {meta['num_episodes']} |",
        f"| frames (observations) | {meta['num_frames']} |",
        f"| transitions (steps) | {meta['num_transitions']} |",
        f"| image shape | {tuple(meta['image_shape'])} uint8 |",
        f"| action dim | {meta['action_dim']} (float32) |",
        f"| action bounds | low {_fmt(meta['action_low'])}, high {_fmt(meta['action_high'])} |",
        f"| proprio dim | {_fmt(meta.get('proprio_dim'))} |",
        f"| goal dim | {_fmt(meta.get('goal_dim'))} |",
        f"| state dim | {_fmt(meta.get('state_dim'))} |",
        f"| fps | {_fmt(meta.get('fps'))} |",
        f"| chunks | {len(meta['chunks'])} (up to {meta['chunk_frames']} frames each) |",
        f"| size on disk | {size / 2**20:.1f} MiB |",
        f"| fingerprint | `{meta['fingerprint'][:16]}` |",
        f"| created / updated | {meta.get('created')} / {meta.get('updated')} |",
        "",
        "## Fields",
        "",
        "| field | dtype | per-frame shape | meaning |",
        "|---|---|---|---|",
    ]
    for field, spec in meta["fields"].items():
        lines.append(f"| `{field}` | {np.dtype(spec['dtype']).name} | {tuple(spec['shape'])} | "
                     f"{_FIELD_DOC.get(field, '')} |")
    stats = meta.get("stats", {})
    if stats.get("actions", {}).get("count"):
        a = stats["actions"]
        lines += ["", "## Action statistics", "",
                  f"Over {a['count']} transitions.", "",
                  "| dim | mean | std | min | max |", "|---|---|---|---|---|"]
        for d in range(meta["action_dim"]):
            lines.append(f"| {d} | {a['mean'][d]:.4g} | {a['std'][d]:.4g} | "
                         f"{a['min'][d]:.4g} | {a['max'][d]:.4g} |")
    for field in ("rewards", "success"):
        if stats.get(field, {}).get("count"):
            lines.append(f"\nMean `{field}`: {stats[field]['mean']:.4g} "
                         f"over {stats[field]['count']} rows.")
    if meta.get("extra"):
        lines += ["", "## Extra metadata", "", "```json",
                  json.dumps(meta["extra"], indent=1, default=str), "```"]
    if meta.get("repairs"):
        lines += ["", "## Repairs", ""]
        for rep in meta["repairs"]:
            lines.append(f"- {rep['time']}: dropped {len(rep['dropped'])} damaged episode(s)")
    lines += [
        "",
        "## Layout",
        "",
        "- `meta.json`: metadata, counts and statistics; replaced atomically after every "
        "appended episode (the commit point).",
        f"- `{meta['episodes_file']['name']}`: one JSON line per episode (chunk, row offset, "
        "frame count, env seed, CRC-32 of each field, info).",
        "- `chunks/NNNNNN/<field>.<ext>`: raw little-endian arrays, one row per frame, "
        "memory-mappable; episodes never span chunks. The next observation of frame i is "
        "frame i + 1.",
        "",
        "## Loading",
        "",
        "```python",
        "from goalrl.data.storage import EpisodeDataset",
        f"ds = EpisodeDataset({name!r})",
        "frames = ds.images([0, 1, 2])      # (3, H, W, 3) uint8, read lazily",
        "ep = ds.episode(0)                 # EpisodeData with all fields",
        "```",
        "",
    ]
    return "\n".join(lines)
