"""``goalrl serve``: the web page to command the arm (see goalrl/serve/server.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from goalrl.evaluate import EVAL_SEED_OFFSET


@dataclass
class ServeConfig:
    ckpt: str = "???"  # checkpoint folder (a step folder, or a run folder: its latest)
    env: str | None = None  # scene id (default: the checkpoint's; another scene is refused)
    host: str = "127.0.0.1"  # listen address (loopback: only this machine can connect)
    port: int = 8765  # TCP port (0: any free port; the URL is printed)
    out: str = "runs/serve"  # the only folder the server writes to: goals/, runs/ (videos)
    gallery: int = 4  # goals captured from the scene at start (episodes seed, seed+1, ...)
    seed: int = EVAL_SEED_OFFSET  # episode the scene starts in (>= 1e6: not training data)
    max_steps: int | None = None  # step budget per command (default: the episode length)
    realtime: bool = True  # pace the arm at the scene's 10 steps/s so the motion is watchable
    max_upload_bytes: int = 5_000_000  # larger uploads get HTTP 413 before being read
    max_upload_pixels: int = 16_000_000  # larger images get HTTP 413 before being decoded
    view_size: int = 256  # side of the live camera picture (pixels, upscaled)
    max_threads: int = 32  # connections served at once (more wait in a queue of 256)
    timeout_s: float = 10.0  # seconds a client has to send a request head (then it is dropped)
    # folders the page may load checkpoints from (default: the working folder and the one
    # holding the starting checkpoint's run); other paths get the same answer as missing ones
    checkpoint_roots: list[str] = field(default_factory=list)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch CPU threads while acting (0: torch's default; 1 is fastest)
    verbose: bool = False  # log every request to stderr


def run(cfg: ServeConfig) -> None:
    from goalrl.commands.evaluate import require_at_least
    from goalrl.errors import UserError
    from goalrl.serve import start_server

    require_at_least(cfg.max_steps, 1, "max_steps", "serve")
    require_at_least(cfg.gallery, 0, "gallery", "serve")
    require_at_least(cfg.max_upload_bytes, 1, "max_upload_bytes", "serve")
    require_at_least(cfg.max_upload_pixels, 1, "max_upload_pixels", "serve")
    require_at_least(cfg.view_size, 16, "view_size", "serve")
    require_at_least(cfg.max_threads, 2, "max_threads", "serve")
    if not 0 < cfg.timeout_s <= 3600:
        raise UserError(
            f"goalrl serve: timeout_s must be in (0, 3600] seconds, got {cfg.timeout_s}"
        )
    server = start_server(
        cfg.ckpt,
        cfg.out,
        env=cfg.env,
        host=cfg.host,
        port=cfg.port,
        device=cfg.device,
        threads=cfg.threads,
        max_steps=cfg.max_steps,
        realtime=cfg.realtime,
        seed=cfg.seed,
        gallery=cfg.gallery,
        max_upload_bytes=cfg.max_upload_bytes,
        max_upload_pixels=cfg.max_upload_pixels,
        view_size=cfg.view_size,
        max_threads=cfg.max_threads,
        timeout_s=cfg.timeout_s,
        checkpoint_roots=tuple(cfg.checkpoint_roots) or None,
    )
    server.quiet = not cfg.verbose
    print(f"goalrl serve: {server.url}  (scene {server.worker.info['env']}; Ctrl-C stops)")
    print(f"goalrl serve: writing under {server.out}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("goalrl serve: stopping", flush=True)
    finally:
        server.server_close()
        server.worker.close()
