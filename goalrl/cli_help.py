"""``goalrl <command> --help``: every field with its value and the comment beside it.

The schemas are dataclasses whose fields carry their meaning as ``# comments`` in the
source (beside the field, or on the lines just above it). The help text is read from
that source each time, so it cannot drift from the code, and it is printed from the
composed config, so overrides given with ``--help`` (``agent=gcbc``) show their fields.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import shutil
import textwrap
import tokenize
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

KEY_COLUMN = 34  # width of the key=value column; longer ones put the description below


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment documenting it in ``cls`` (or a dataclass base it has)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's comment wins over its base's
        if dataclasses.is_dataclass(klass):
            comments.update(_own_field_comments(klass))
    return comments


def _own_field_comments(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # defined where there is no source (e.g. an interactive shell)
        return {}
    # line -> (is the comment the whole line?, its text)
    by_line: dict[int, tuple[bool, str]] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            whole_line = not token.line[: token.start[1]].strip()
            by_line[token.start[0]] = (whole_line, token.string.lstrip("#").strip())
    class_node = ast.parse(source).body[0]
    comments: dict[str, str] = {}
    for node in getattr(class_node, "body", []):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line in by_line and by_line[line][0] and not by_line[line][1].startswith("-"):
            above.insert(0, by_line[line][1])  # "# ---- section ----" headers are not docs
            line -= 1
        end = node.end_lineno or node.lineno
        beside = [by_line[n][1] for n in range(node.lineno, end + 1)
                  if n in by_line and not by_line[n][0]]  # fmt: skip
        comments[node.target.id] = " ".join(above + beside)
    return comments


def _format_value(value: Any) -> str:
    """A value as it would be typed on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value if value and not any(c in value for c in " ,[]{}'\"") else json.dumps(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def field_rows(cfg: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(``key=value``, description) for each field of a composed structured config."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    cls = OmegaConf.get_type(cfg)
    comments = field_comments(cls) if dataclasses.is_dataclass(cls) else {}
    for key in cfg.keys():
        name = f"{prefix}{key}"
        description = comments.get(str(key), "")
        if OmegaConf.is_missing(cfg, key):
            yield f"{name}=???", f"(required) {description}".strip()
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(node)):
            yield f"{name}.*", description  # a nested config: its own fields follow
            yield from field_rows(node, f"{name}.")
            continue
        if isinstance(node, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(node, resolve=False)
        else:
            value = node._value()
        yield f"{name}={_format_value(value)}", description


def _rows_text(rows: list[tuple[str, str]], width: int) -> list[str]:
    lines = []
    for left, description in rows:
        indent = " " * (KEY_COLUMN + 4)
        if not description:
            lines.append(f"  {left}")
            continue
        wrapped = textwrap.wrap(description, max(width - len(indent), 30))
        if len(left) <= KEY_COLUMN:
            lines.append(f"  {left:<{KEY_COLUMN}}  {wrapped[0]}")
            wrapped = wrapped[1:]
        else:
            lines.append(f"  {left}")
        lines += [indent + text for text in wrapped]
    return lines


def command_help(
    name: str, summary: str, cfg: Any, choices: Mapping[str, str | None], config_dir: Path
) -> str:
    """The help page of ``goalrl <name>`` for the composed ``cfg``.

    ``choices`` is hydra's group -> chosen option map for this run: only the groups this
    command's config uses are listed (hydra's own help would list every folder of the
    shared config directory, e.g. ``agent`` for commands that take a checkpoint instead).
    """
    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    lines = [f"goalrl {name}: {summary}", "",
             f"usage: goalrl {name} [key=value ...] [--cfg job]", ""]  # fmt: skip
    groups = {g: c for g, c in choices.items() if not g.startswith("hydra")}
    if groups:
        lines.append("config groups (group=option):")
        for group, chosen in sorted(groups.items()):
            options = sorted(p.stem for p in (config_dir / group).glob("*.yaml"))
            lines.append(f"  {group}: {' | '.join(options)}  (now: {chosen})")
        lines.append("")
    lines.append("fields (key=value as now; ??? marks a value you must give):")
    lines += _rows_text(list(field_rows(cfg)), width)
    lines += ["", "--cfg job prints the whole composed config; HYDRA_FULL_ERROR=1 shows the full "
              "traceback of an error."]  # fmt: skip
    return "\n".join(lines)
