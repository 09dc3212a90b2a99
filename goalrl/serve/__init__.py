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
    checkpoint_roots: tuple[str | Path, ...] | None = None,
    **limits: Any,
) -> Any:
    """A running ``GoalServer`` (serve it with ``serve_forever`` in a thread; ``close()`` it).

    Raises the checkpoint's or scene's error before anything listens. ``checkpoint_roots``:
    folders the page may load checkpoints from (default: the working folder and the folder
    holding the starting checkpoint's run). ``limits``: fields of ``server.Limits``.
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
        if checkpoint_roots is None:
            checkpoint_roots = (Path.cwd(), runs_folder(ckpt))
        roots = tuple(str(r) for r in checkpoint_roots)
        return make_server(worker, out, host, port, checkpoint_roots=roots, **limits)
    except BaseException:
        worker.close()
        raise


def runs_folder(ckpt: str | Path) -> Path:
    """The folder holding a checkpoint's run (``runs`` for runs/am or one of its steps)."""
    from goalrl.checkpoint import resolve_checkpoint

    step = resolve_checkpoint(Path(ckpt).expanduser()).resolve()
    run = step.parent.parent if step.parent.name == "checkpoints" else step.parent
    return run.parent
