"""``goalrl compare``: tables, paired differences and a learning-curve plot from the results
store that ``goalrl eval results=<file>`` appends to (the protocol: goalrl/compare.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PLOT_NAME = "success_vs_updates.png"
TABLES_NAME = "tables.md"
MEASURES = {False: "IQM and mean", True: "the mean (the IQM of 0/1 goal scores is not shown)"}
METRIC_WORDS = {"iqm": "IQM", "mean": "mean"}
STEP_WORDS = {"last": "last evaluated step",
              "val_best": "step of best success on the validation goals (val split)"}


@dataclass
class CompareConfig:
    results: str = "???"  # results store (JSON Lines) that goalrl eval results=<file> appends to
    # row fields whose values make one table line (a cell of seeds x goals)
    group_by: str = "method,act_rule,dataset,goal_split"
    # group_by fields that differ between the two sides of a paired difference (and name the
    # plot's lines); the other group_by fields must match (and name the plot's panels)
    contrast: str = "method,act_rule"
    # score matrix columns: task (a seed's success rate on each task) | goal (each (task, env
    # seed): 0/1; the mean only, since the IQM of 0/1 scores trims whole outcomes away)
    unit: str = "task"
    # checkpoint step per seed: last (highest evaluated), a number fixed in advance, or val_best
    # (the step it did best at on goal_split=val goals; the table then shows the other splits)
    step: str = "last"
    # keep only rows with these field values, e.g. +where.goal_split=test +where.env=goalrl/Push-v0
    where: dict[str, str] = field(default_factory=dict)
    reps: int = 5000  # bootstrap resamples per interval (the curves use a fifth of them)
    seed: int = 0  # bootstrap seed: the same store gives the same intervals
    plot_metric: str = "iqm"  # the plotted line: iqm | mean (always mean with unit=goal)
    out: str | None = None  # folder for success_vs_updates.png and tables.md (none: print only)
    # also write this page (e.g. docs/results.md) with a header naming the store and command;
    # its plot goes to out (required with markdown)
    markdown: str | None = None
    note: str = ""  # a paragraph under the page's header (what the rows are, their caveats)


def run(cfg: CompareConfig) -> dict[str, Any]:
    """Tables and plot of the store; a warning (goals left out, a cell whose interval is a
    point) is one stderr line each, and is listed in the summary and on the page."""
    import sys
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary, tables_md = compare_store(cfg)
    notes = list(dict.fromkeys(str(w.message) for w in caught))  # once each, in order
    for note in notes:
        print(f"goalrl compare: warning: {note}", file=sys.stderr)
    summary["warnings"] = notes
    if cfg.markdown:
        page = results_page(cfg, summary["rows"], tables_md, Path(summary["plot"]), notes)
        summary["markdown"] = str(write_text_atomic(Path(cfg.markdown), page))
    return summary


def compare_store(cfg: CompareConfig) -> tuple[dict[str, Any], str]:
    """The summary (tables printed, plot and tables.md written under out) and the tables as
    markdown."""
    from goalrl import compare
    from goalrl.results import read_rows

    if cfg.markdown and not cfg.out:
        raise compare.CompareError("markdown= needs out=<folder> for the page's plot")
    group_by, contrast = compare.parse_fields(cfg.group_by), compare.parse_fields(cfg.contrast)
    all_rows = read_rows(cfg.results)
    rows = compare.filter_rows(all_rows, dict(cfg.where))
    if not rows:
        raise compare.CompareError(f"no rows of {cfg.results} match where={dict(cfg.where)} "
                                   f"({len(all_rows)} rows in the store)")
    step, reported = cfg.step, rows
    if cfg.step == "val_best":  # validation rows choose each seed's step; others are reported
        step, reported = "chosen", compare.val_best_rows(rows, group_by)
    table = compare.cell_table(reported, group_by, cfg.unit, step, cfg.reps, cfg.seed)
    pairs = compare.paired_table(reported, group_by, contrast, step, cfg.reps, cfg.seed)
    cells_text = compare.cell_lines(table, group_by, cfg.unit)
    pairs_text = compare.paired_lines(pairs, group_by, contrast)
    print(compare.text_table(*cells_text))
    if pairs:
        print("\npaired differences on shared goals")
        print(compare.text_table(*pairs_text))
    summary: dict[str, Any] = {"results": cfg.results, "rows": len(rows), "table": table,
                               "paired": pairs, "plot": None, "tables": None, "markdown": None}
    body = tables_markdown(cells_text, pairs_text, cfg.unit)
    if cfg.out:
        out = Path(cfg.out)
        panels = compare.curves(rows, group_by, contrast, cfg.unit, max(200, cfg.reps // 5),
                                cfg.seed)
        summary["plot"] = str(compare.plot_curves(panels, plot_metric(cfg), out / PLOT_NAME))
        summary["tables"] = str(write_text_atomic(out / TABLES_NAME, body + "\n"))
    return summary, body


def plot_metric(cfg: CompareConfig) -> str:
    return "mean" if cfg.unit == "goal" else cfg.plot_metric


def tables_markdown(cells_text: Any, pairs_text: Any, unit: str) -> str:
    from goalrl.compare import markdown_table

    measures = "mean" if unit == "goal" else "IQM and mean"  # the IQM of 0/1 scores: no
    parts = [f"### Success ({measures} over seeds x {unit}s, stratified bootstrap 95% "
             "intervals)", "", markdown_table(*cells_text)]
    if pairs_text[1]:
        parts += ["", "### Paired differences on shared goals (A - B, percentage points, "
                  "bootstrap 95% interval over goals)", "", markdown_table(*pairs_text)]
    return "\n".join(parts)


def command_line(cfg: CompareConfig) -> str:
    """The ``goalrl compare`` call that regenerates the page (fields not at their default)."""
    default = CompareConfig()
    parts = ["goalrl compare"]
    for f in fields(CompareConfig):
        value = getattr(cfg, f.name)
        if f.name == "note" or value == getattr(default, f.name):
            continue
        if f.name == "where":
            parts += [f"+where.{k}={v}" for k, v in value.items()]
        else:
            parts.append(f"{f.name}={value}")
    if cfg.note:
        parts.append("note='<the paragraph below>'")
    return " ".join(parts)


def results_page(cfg: CompareConfig, n_rows: int, body: str, plot: Path,
                 notes: list[str]) -> str:
    page_dir = Path(cfg.markdown).resolve().parent
    plot_link = os.path.relpath(plot.resolve(), page_dir)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!-- generated by `goalrl compare ... markdown=...`: edit the store or the command, "
        "not this page -->",
        "# Results",
        "",
        f"Generated {generated} from the results store `{cfg.results}` ({n_rows} rollouts) by:",
        "",
        "```",
        command_line(cfg),
        "```",
        "",
    ]
    if cfg.note:
        parts += [cfg.note, ""]
    parts += [body, ""]
    if notes:
        parts += ["Warnings while generating:", "", *(f"- {note}" for note in notes), ""]
    parts += [
        f"### Success against updates ({METRIC_WORDS[plot_metric(cfg)]}, 95% band)",
        "",
        f"![success against updates]({plot_link})",
        "",
        "### How these numbers are made",
        "",
        "- Every row of the store is one evaluation rollout appended by `goalrl eval "
        "results=<store>`; `act_rule` names what produced the action (`cem_on_q`: CEM on the "
        "Q-function; `prior_mean`: the behaviour prior's mean; `actor`: an actor trained on Q; "
        "`policy_mean`: GCBC's policy).",
        f"- A line is one cell of training seeds x {cfg.unit}s at each seed's "
        f"{STEP_WORDS.get(cfg.step, f'step {cfg.step}')}; "
        f"{MEASURES[cfg.unit == 'goal']} "
        "with stratified bootstrap 95% intervals (rliable: seeds resampled within each "
        f"{cfg.unit}, and the {cfg.unit}s resampled; {cfg.reps} resamples, seed {cfg.seed}).",
        "- Paired differences compare two cells on the goals both were evaluated on, paired by "
        "(scene, task, scene options, env seed): per goal, success averaged over each side's "
        "seeds; the interval resamples goals.",
        "",
    ]
    return "\n".join(parts)


def write_text_atomic(path: Path, text: str) -> Path:
    from goalrl.data.storage.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode(), durable=False)
    return path
