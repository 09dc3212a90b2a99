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
HELP_FLAGS = ("--help", "-h")
FULL_ERROR_VARIABLE = "HYDRA_FULL_ERROR"  # "1": every error with its full traceback


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
    "dynamics": Command(
        "goalrl.commands.dynamics", "DynamicsCommandConfig", "run",
        "one-step state model for act_rule=model_lookahead",
    ),
    "compare": Command(
        "goalrl.commands.compare", "CompareConfig", "run", "tables + plot from a results store"
    ),
    "results withdraw": Command(
        "goalrl.commands.results", "WithdrawConfig", "withdraw",
        "move wrong rows out of a results store, with the reason",
    ),
    "data info": Command(
        "goalrl.commands.data", "DataInfoConfig", "info", "counts, shapes, sizes (JSON)"
    ),
    "data show": Command(
        "goalrl.commands.data", "DataShowConfig", "show", "contact sheet PNG (+ episode MP4)"
    ),
    "data import": Command(
        "goalrl.commands.data", "DataImportConfig", "import_",
        "import minari|lerobot|robomimic|ogbench",
    ),
    "data export": Command(
        "goalrl.commands.data", "DataExportConfig", "export", "export to minari"
    ),
    "data audit": Command(
        "goalrl.commands.audit", "DataAuditConfig", "audit", "eval pairs inside one episode"
    ),
    "data verify": Command(
        "goalrl.commands.data", "DataVerifyConfig", "verify", "check every checksum (JSON)"
    ),
    "data repair": Command(
        "goalrl.commands.data", "DataRepairConfig", "repair", "drop damaged episodes (JSON)"
    ),
    "ogbench generate": Command(
        "goalrl.commands.ogbench", "OgbenchGenerateConfig", "generate",
        "OGBench-style .npz from its envs and oracles",
    ),
}


def usage() -> str:
    lines = ["usage: goalrl <command> [key=value ...] [--help] [--cfg job]", "", "commands:"]
    width = max(len(name) for name in COMMANDS)
    lines += [f"  {name:<{width}} {cmd.help}" for name, cmd in COMMANDS.items()]
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
    if name in {n.split()[0] for n in COMMANDS if " " in n}:  # a group: data, ogbench
        if not rest or f"{name} {rest[0]}" not in COMMANDS:
            subs = [n.split()[1] for n in COMMANDS if n.startswith(f"{name} ")]
            print(f"goalrl {name}: choose a subcommand: {', '.join(subs)}", file=sys.stderr)
            raise SystemExit(2)
        name, rest = f"{name} {rest[0]}", rest[1:]
    if name not in COMMANDS:
        print(f"goalrl: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    return name, rest


def run_command(name: str, overrides: list[str]) -> dict[str, Any] | None:
    """Run subcommand ``name`` as a hydra app with ``overrides``; returns its summary.

    ``--help`` (or ``-h``) among the overrides prints the command's fields with their
    descriptions instead of running it. A user error (``UserError``, a missing required
    field, a bad override) ends the process with one line on stderr and exit status 2.
    """
    import hydra
    from hydra.core.config_store import ConfigStore
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from goalrl.cli_help import command_help

    cmd = COMMANDS[name]
    module = importlib.import_module(cmd.module)
    function: Callable[[Any], dict[str, Any]] = getattr(module, cmd.function)
    config_name = name.replace(" ", "_")
    ConfigStore.instance().store(name=f"{config_name}_schema", node=getattr(module, cmd.schema))
    if hasattr(module, "register_configs"):  # config groups (e.g. agent=am|gcbc)
        module.register_configs()
    show_help = any(arg in HELP_FLAGS for arg in overrides)
    overrides = [arg for arg in overrides if arg not in HELP_FLAGS]
    full_error = os.environ.get(FULL_ERROR_VARIABLE)
    result: dict[str, Any] = {}

    @hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base="1.3")
    def app(cfg: Any) -> None:
        if show_help:  # composed like a real run, so `agent=gcbc --help` shows gcbc's fields
            choices = HydraConfig.get().runtime.choices
            print_out(command_help(name, cmd.help, cfg, choices, CONFIG_DIR))
            return
        try:
            summary = function(checked_config(cfg, name))
        except Exception as error:
            # kept for the report below: raised out of here, hydra would first print
            # "Error executing job with overrides: [...]". A --multirun job raises: it may run
            # in another process (SLURM), which `result` does not reach.
            multirun = HydraConfig.get().mode == RunMode.MULTIRUN
            if full_error == "1" or multirun or user_error_message(error, name) is None:
                raise
            result["error"] = error
            return
        if summary:  # None, or {} from a non-zero rank: rank 0 alone writes the summary
            result["summary"] = summary
            out = OmegaConf.select(cfg, "out", default=None)
            if out and Path(out).is_dir():  # a folder the command wrote (not a video file)
                write_summary(Path(out), summary)
            print_out(json.dumps(summary, default=_json_default))

    saved_argv = sys.argv
    sys.argv = [f"goalrl {name}", *overrides]
    # hydra.main reports a failed composition (a bad override) itself, in several lines,
    # unless HYDRA_FULL_ERROR=1 makes it re-raise: set it for the call, report here
    os.environ[FULL_ERROR_VARIABLE] = "1"
    try:
        app()
    except Exception as error:
        message = user_error_message(error, name)
        if message is None or full_error == "1":
            raise
        result["error"] = error
    finally:
        sys.argv = saved_argv
        if full_error is None:
            os.environ.pop(FULL_ERROR_VARIABLE, None)
        else:
            os.environ[FULL_ERROR_VARIABLE] = full_error
    if "error" in result:
        print(f"goalrl {name}: {user_error_message(result['error'], name)}", file=sys.stderr)
        raise SystemExit(2)
    return result.get("summary")


def checked_config(cfg: Any, name: str) -> Any:
    """The schema object of ``cfg``; a UserError naming every required field left out."""
    from omegaconf import OmegaConf

    from goalrl.errors import UserError

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(
            f"missing required field{'s' * (len(missing) > 1)} {', '.join(missing)}: give "
            f"{' '.join(f'{key}=...' for key in missing)} (goalrl {name} --help describes them)"
        )
    return OmegaConf.to_object(cfg)


def user_error_message(error: BaseException, name: str) -> str | None:
    """The one-line report of a user error, or None when ``error`` is a bug (a traceback)."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from goalrl.errors import UserError

    if isinstance(error, UserError):
        return one_line(str(error))
    if isinstance(error, MissingMandatoryValue):
        return f"missing required field {error.full_key}: give {error.full_key}=..."
    if isinstance(error, MissingConfigException) and error.options:  # group=unknown option
        options = [o for o in error.options if not o.endswith("_schema")]  # not user choices
        first = str(error).strip().splitlines()[0]
        return f"{first}; choose one of {', '.join(options)}"
    if isinstance(error, (HydraException, OmegaConfBaseException)):
        # a bad override: hydra's message says which, its cause (omegaconf's) why
        parts = [str(error).strip().splitlines()[0].rstrip(".")]
        cause = error.__cause__
        hint = f" (goalrl {name} --help lists the fields)"
        if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
            parts.append(str(cause).strip().splitlines()[0].rstrip("."))
            hint = close_field_names(cause) or hint
        return ": ".join(parts) + hint
    return None


def close_field_names(error: Any) -> str:
    """"; did you mean 'steps'?" for an unknown key ``stpes`` of a schema, else ""."""
    import dataclasses
    import difflib

    schema, key = getattr(error, "object_type", None), getattr(error, "key", None)
    if not (isinstance(key, str) and dataclasses.is_dataclass(schema)):
        return ""
    names = [f.name for f in dataclasses.fields(schema)]
    if key in names:  # a known field given a bad value
        return ""
    close = difflib.get_close_matches(key, names, n=2)
    return f"; did you mean {' or '.join(repr(n) for n in close)}?" if close else ""


def print_out(text: str) -> None:
    """Print to stdout; a reader that closed the pipe early (``| head``) ends it quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # as Unix tools do: stop writing, and point stdout at /dev/null so that the flush at
        # exit does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON via a temp file + rename so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def write_summary(out: Path, summary: dict[str, Any]) -> bool:
    """Write ``out/summary.json``. A run or dataset folder has a writer lock, which the command
    released on return: take it again, so a run started on the folder since then never has its
    summary replaced by this one's. When that run holds it, skip the write (False) and say so."""
    from goalrl.data.storage import DatasetError
    from goalrl.data.storage.files import FolderLock
    from goalrl.data.storage.format import LOCK_FILE

    if not (out / LOCK_FILE).is_file():  # an eval output folder: nobody else writes there
        write_json_atomic(out / "summary.json", summary)
        return True
    lock = FolderLock(out)
    try:
        lock.acquire()
    except DatasetError:
        print(
            f"goalrl: {out / 'summary.json'} not written: another run took {out} when this one"
            " ended; its summary is printed below",
            file=sys.stderr,
        )
        return False
    try:
        write_json_atomic(out / "summary.json", summary)
    finally:
        lock.release()
    return True


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def main(argv: list[str] | None = None) -> None:
    name, rest = split_command(list(sys.argv[1:] if argv is None else argv))
    run_command(name, rest)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # a torchrun worker whose command finished: every file is written and closed and the
        # process group destroyed, yet torch's gloo sometimes aborts in the interpreter's
        # teardown ("terminate called without an active exception", about 1 exit in 10),
        # failing a run that succeeded. Leave without that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
