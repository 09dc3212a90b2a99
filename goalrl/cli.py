"""The ``goalrl`` command: one entry point, hydra ``key=value`` arguments everywhere.

Each subcommand is a hydra app over a dataclass schema (so a misspelled override
fails loudly, and ``--help`` / ``--cfg job`` work). Results-producing commands
return a dict; it is written to ``<out>/summary.json`` when the command has an
``out`` folder and printed as JSON on the last line of standard output.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Command:
    module: str  # module holding the schema and the function
    schema: str  # dataclass name of the config schema
    function: str  # function(cfg) -> dict summary
    help: str  # one line for `goalrl --help`


COMMANDS: dict[str, Command] = {
    "collect": Command(
        "goalrl.commands.collect", "CollectConfig", "collect", "scripted play data from a scene"
    ),
    "pretrain": Command(
        "goalrl.commands.pretrain", "PretrainConfig", "run", "goal-conditioned Q pretraining"
    ),
    "eval": Command(
        "goalrl.commands.evaluate", "EvalConfig", "run", "success rate of a checkpoint"
    ),
    "finetune": Command(
        "goalrl.commands.finetune", "FinetuneConfig", "run", "task fine-tuning (offline, online)"
    ),
    "command": Command(
        "goalrl.commands.command", "CommandConfig", "run", "drive the arm to a goal image (video)"
    ),
    "goal": Command(
        "goalrl.commands.command", "GoalConfig", "goal", "goal image PNG captured from a scene"
    ),
    "serve": Command(
        "goalrl.commands.serve", "ServeConfig", "run", "local web page to command the arm"
    ),
    "data info": Command(
        "goalrl.commands.data", "DataInfoConfig", "info", "counts, shapes, sizes (JSON)"
    ),
    "data show": Command(
        "goalrl.commands.data", "DataShowConfig", "show", "contact sheet PNG (+ episode MP4)"
    ),
    "data import": Command(
        "goalrl.commands.data", "DataImportConfig", "import_", "import minari|lerobot|robomimic"
    ),
    "data export": Command(
        "goalrl.commands.data", "DataExportConfig", "export", "export to minari"
    ),
}


def usage() -> str:
    lines = ["usage: goalrl <command> [key=value ...] [--help] [--cfg job]", "", "commands:"]
    lines += [f"  {name:<14} {cmd.help}" for name, cmd in COMMANDS.items()]
    lines += [
        "",
        "Any config field can be overridden as key=value; `goalrl <command> --help` lists them.",
    ]
    return "\n".join(lines)


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    """('data info', rest) from ['data', 'info', ...]; SystemExit with usage on bad names."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        raise SystemExit(0)
    name, rest = argv[0], argv[1:]
    if name == "data":
        if not rest or f"data {rest[0]}" not in COMMANDS:
            subs = [n.split()[1] for n in COMMANDS if n.startswith("data ")]
            print(f"goalrl data: choose a subcommand: {', '.join(subs)}", file=sys.stderr)
            raise SystemExit(2)
        name, rest = f"data {rest[0]}", rest[1:]
    if name not in COMMANDS:
        print(f"goalrl: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    return name, rest


def run_command(name: str, overrides: list[str]) -> dict[str, Any] | None:
    """Run subcommand ``name`` as a hydra app with ``overrides``; returns its summary."""
    import hydra
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    cmd = COMMANDS[name]
    module = importlib.import_module(cmd.module)
    function: Callable[[Any], dict[str, Any]] = getattr(module, cmd.function)
    config_name = name.replace(" ", "_")
    ConfigStore.instance().store(name=f"{config_name}_schema", node=getattr(module, cmd.schema))
    if hasattr(module, "register_configs"):  # config groups (e.g. agent=am|gcbc)
        module.register_configs()
    result: dict[str, Any] = {}

    @hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base="1.3")
    def app(cfg: Any) -> None:
        summary = function(OmegaConf.to_object(cfg))
        if summary:  # None, or {} from a non-zero rank: rank 0 alone writes the summary
            result["summary"] = summary
            out = OmegaConf.select(cfg, "out", default=None)
            if out and Path(out).is_dir():  # a folder the command wrote (not a video file)
                write_json_atomic(Path(out) / "summary.json", summary)
            print(json.dumps(summary, default=_json_default))

    saved_argv = sys.argv
    sys.argv = [f"goalrl {name}", *overrides]
    try:
        app()
    finally:
        sys.argv = saved_argv
    return result.get("summary")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON via a temp file + rename so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def main(argv: list[str] | None = None) -> None:
    name, rest = split_command(list(sys.argv[1:] if argv is None else argv))
    run_command(name, rest)


if __name__ == "__main__":
    main()
