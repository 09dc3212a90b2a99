"""Inference (eval, command, serve, GoalReacher) builds agents from checkpoints without the
training package: a machine that only commands the arm never loads the training loop."""

from __future__ import annotations

import subprocess
import sys

INFERENCE_MODULES = (
    "goalrl.reacher",
    "goalrl.evaluate",
    "goalrl.agents.registry",
    "goalrl.commands.evaluate",
    "goalrl.commands.command",
    "goalrl.commands.serve",
    "goalrl.serve",
    "goalrl.serve.server",
    "goalrl.serve.worker",
)


def test_inference_modules_do_not_import_training() -> None:
    code = (f"import sys, {', '.join(INFERENCE_MODULES)}; "
            "print([m for m in sys.modules if m.startswith('goalrl.training')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
