"""Progress: a bar on a terminal, plain lines at a steady cadence elsewhere."""

from __future__ import annotations

import io

from goalrl.training.progress import Progress, format_seconds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_at_the_cadence_and_at_the_end() -> None:
    stream = io.StringIO()
    progress = Progress("pretrain am", total=100, initial=40, every_s=3600, stream=stream)
    for step in range(41, 61):
        progress.update(step, loss=0.5 if step % 10 == 0 else None)
    assert stream.getvalue() == ""  # the cadence (an hour) has not come round
    progress.close()
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("pretrain am: step 60/100 (60%), ")
    assert "updates/s, ETA " in line and line.endswith(", loss 0.5")


def test_a_terminal_gets_the_bar_and_other_ranks_nothing() -> None:
    tty = Terminal()
    progress = Progress("finetune", total=3, stream=tty, every_s=0)
    for step in (1, 2, 3):
        progress.update(step)
    progress.close()
    assert "3/3" in tty.getvalue() and "finetune: step" not in tty.getvalue()
    quiet = io.StringIO()
    progress = Progress("finetune", total=3, enabled=False, stream=quiet, every_s=0)
    progress.update(1)
    progress.close()
    assert quiet.getvalue() == ""


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (12.4, 407, 11100)] == ["12s", "6m47s", "3h05m"]
