"""Training progress on stderr: a tqdm bar on a terminal, plain lines otherwise.

tqdm switches itself off when stderr is not a terminal (a log file, a SLURM job), which left
a half-hour run silent; there a line ``pretrain am: step 1200/20000 (6%), 41.3 updates/s,
ETA 6m47s, loss 0.412`` is printed every ``every_s`` seconds of wall time and at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """``update(step, loss)`` after each update; ``close()`` at the end."""

    def __init__(
        self,
        label: str,
        total: int,
        initial: int = 0,
        *,
        enabled: bool = True,
        every_s: float = 30.0,
        stream: TextIO | None = None,
    ) -> None:
        self.label, self.total, self.every_s = label, total, every_s
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.step = self.start = initial
        self.loss: float | None = None
        self.t0 = self.last_line = time.perf_counter()
        self.bar: Any = None
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=label, file=self.stream)

    def update(self, step: int, loss: float | None = None) -> None:
        """Update ``step`` is done; ``loss`` when it was read (no device sync here)."""
        self.step = step
        if loss is not None:
            self.loss = loss
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}")
        elif self.enabled and time.perf_counter() - self.last_line >= self.every_s:
            self.print_line()

    def print_line(self) -> None:
        now = time.perf_counter()
        self.last_line = now
        rate = (self.step - self.start) / (now - self.t0) if now > self.t0 else 0.0
        line = f"{self.label}: step {self.step}/{self.total} ({self.step / max(self.total, 1):.0%})"
        line += f", {rate:.1f} updates/s"
        if rate > 0 and self.step < self.total:
            line += f", ETA {format_seconds((self.total - self.step) / rate)}"
        elif self.step >= self.total:
            line += f", done in {format_seconds(now - self.t0)}"
        if self.loss is not None:
            line += f", loss {self.loss:.3g}"
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self.print_line()  # the last line: where the run stopped, however it stopped


def format_seconds(seconds: float) -> str:
    """``3h05m``, ``6m47s`` or ``12s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
