"""Local web page for commanding the simulated arm (``goalrl serve``).

``worker.ArmWorker`` owns the arm on one thread; ``server.GoalServer`` answers HTTP on
others; ``static/`` holds the page. ``start_server`` builds both for scripts and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def start_server(
    ckpt: str | Path,
    out: str | Path,
    *,
    env: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    device: str = "auto",
    threads: int | None = 1,
    max_steps: int | None = None,
    realtime: bool = True,
    seed: int = 1_000_000,
    gallery: int = 4,
    **limits: Any,
) -> Any:
    """A running ``GoalServer`` (serve it with ``serve_forever`` in a thread; ``close()`` it).

    Raises the checkpoint's or scene's error before anything listens.
    """
    from goalrl.reacher import GoalReacher
    from goalrl.serve.server import make_server
    from goalrl.serve.worker import ArmWorker

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    worker = ArmWorker(
        lambda: GoalReacher(ckpt, env, device=device, max_steps=max_steps, threads=threads),
        out,
        realtime=realtime,
        start_seed=seed,
        gallery_seeds=[seed + i for i in range(gallery)],
    )
    worker.start()
    try:
        return make_server(worker, out, host, port, **limits)
    except BaseException:
        worker.close()
        raise
