"""Tables, paired differences and learning curves from the results store (goalrl.results).

Protocol (docs/results.md says it to readers):
- A cell is one value of the ``group_by`` fields (by default method, act rule, dataset and
  goal split). Its score matrix has one row per training seed and one column per unit: a
  ``task`` (the seed's success rate over that task's rollouts) or a ``goal`` (one
  (task, env seed) pair: 0/1 success, averaged when rolled out more than once).
- Aggregates: the interquartile mean and the mean of the matrix, with stratified bootstrap
  95% intervals from rliable (``get_interval_estimates``): seeds are resampled within each
  column, and the columns themselves too (``task_bootstrap``). The IQM of 0/1 goal scores
  trims whole successes and failures away: with ``unit=goal`` the tables and plot show the
  mean only.
- Paired differences: two cells that differ only in the ``contrast`` fields (method, act
  rule) are compared on the goals both were evaluated on, paired by (scene, task, scene
  options, env seed): per goal, success averaged over each side's seeds, then the mean of the
  per-goal differences with a bootstrap interval over goals (rliable again).
- Step: each seed's highest evaluated step (``last``), one fixed in advance, or (``val_best``)
  the step each seed did best at on the validation goals, reported on the other splits.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.storage.files import atomic_write
from goalrl.errors import UserError

UNITS = ("task", "goal")  # columns of a cell's score matrix
VAL_SPLIT = "val"  # the validation goals' split (goalrl.benchmark.goals): they choose steps
PLOT_METRICS = ("iqm", "mean")


class CompareError(UserError, ValueError):
    """Settings of ``goalrl compare`` that do not fit the store."""


@dataclass(frozen=True)
class Estimate:
    point: float
    low: float  # 95% interval
    high: float


# ---- keys -----------------------------------------------------------------------------------
def goal_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    """What makes two rollouts the same goal: scene, task, scene options, env seed."""
    options = json.dumps(row.get("env_kwargs") or {}, sort_keys=True)
    return (row["env"], row["task"], options, row["env_seed"])


def unit_key(row: dict[str, Any], unit: str) -> tuple:
    return goal_key(row) if unit == "goal" else goal_key(row)[:3]


def check_fields(rows: Sequence[dict[str, Any]], fields: Sequence[str], setting: str) -> None:
    known = set().union(*(row.keys() for row in rows)) if rows else set()
    for field in fields:
        if field not in known:
            raise CompareError(f"{setting}: field {field!r} is in no row of the store "
                               f"(fields: {', '.join(sorted(known))})")


def parse_fields(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def group_rows(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> dict[tuple, list]:
    """Rows by their values of ``fields``, groups in sorted order of those values."""
    groups: dict[tuple, list] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(f) for f in fields)].append(row)
    return dict(sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))))


def filter_rows(rows: Sequence[dict[str, Any]], where: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows whose fields equal ``where``'s values (``where_predicate``); CompareError naming a
    field that no row has."""
    check_fields(rows, list(where), "where")
    return list(filter(where_predicate(where), rows))


def where_predicate(where: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """Whether a row's fields equal ``where``'s values (compared as text: ``train_seed=0``); a
    value ``a|b`` accepts either (``goal_split=val|test``)."""
    allowed = {k: set(str(v).split("|")) for k, v in where.items()}
    return lambda row: all(str(row.get(k)) in ok for k, ok in allowed.items())


def select_step(rows: Sequence[dict[str, Any]], step: str | int) -> list[dict[str, Any]]:
    """The rows of one step per training seed: its highest (``last``) or the one given
    (``chosen``: rows already filtered by ``val_best_rows``)."""
    if str(step) == "chosen":
        return list(rows)
    if str(step) == "last":
        last: dict[int, int] = {}
        for row in rows:
            last[row["train_seed"]] = max(last.get(row["train_seed"], row["step"]), row["step"])
        return [row for row in rows if row["step"] == last[row["train_seed"]]]
    try:
        wanted = int(step)
    except ValueError as err:
        raise CompareError(f"step={step!r}: expected last, val_best or a step number") from err
    return [row for row in rows if row["step"] == wanted]


def val_best_rows(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """The non-validation rows at the step each (cell, training seed) did best at on the
    validation goals (split ``val``; ties: the earlier step). Validation rows choose, they are
    not returned; a (cell, seed) without validation rows is left out with a warning. The step
    is chosen on all of a seed's validation goals, also when ``fields`` split rows by task:
    a per-task table then shows the checkpoint the headline used, not one chosen per task."""
    fields = [f for f in fields if f not in ("goal_split", "task")]
    outcomes: dict[tuple, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["goal_split"] == VAL_SPLIT:
            key = (*(row.get(f) for f in fields), row["train_seed"])
            outcomes[key][row["step"]].append(row["success"])
    if not outcomes:
        raise CompareError(f"step=val_best: the store has no rows of goal_split={VAL_SPLIT}")
    best = {key: max(steps, key=lambda st: (np.mean(steps[st]), -st))
            for key, steps in outcomes.items()}
    chosen, unmatched = [], set()
    for row in rows:
        if row["goal_split"] == VAL_SPLIT:
            continue
        key = (*(row.get(f) for f in fields), row["train_seed"])
        if key not in best:
            unmatched.add(key)
        elif row["step"] == best[key]:
            chosen.append(row)
    if unmatched:
        warnings.warn(f"step=val_best: {len(unmatched)} (cell, seed) with no validation rows "
                      f"left out, e.g. {sorted(map(str, unmatched))[0]}", stacklevel=2)
    return chosen


# ---- estimates ------------------------------------------------------------------------------
def score_matrix(rows: Sequence[dict[str, Any]], unit: str) -> tuple[np.ndarray, list, list]:
    """(seeds, units) mean success; columns every seed was evaluated on (others dropped with a
    warning, since rliable needs a full matrix). Returns (matrix, seeds, units)."""
    if unit not in UNITS:
        raise CompareError(f"unit={unit!r}: expected one of {', '.join(UNITS)}")
    cells: dict[tuple, list[bool]] = defaultdict(list)
    for row in rows:
        cells[(row["train_seed"], unit_key(row, unit))].append(row["success"])
    seeds = sorted({seed for seed, _ in cells})
    per_seed = [{u for s, u in cells if s == seed} for seed in seeds]
    shared = set.intersection(*per_seed) if per_seed else set()
    every = set.union(*per_seed) if per_seed else set()
    if len(shared) < len(every):
        warnings.warn(f"{len(every) - len(shared)} of {len(every)} {unit}s were not evaluated "
                      f"for every seed ({seeds}); left out", stacklevel=2)
    units = sorted(shared, key=lambda key: tuple(map(str, key)))
    matrix = np.array([[np.mean(cells[(s, u)]) for u in units] for s in seeds], dtype=float)
    return matrix.reshape(len(seeds), len(units)), seeds, units


@contextlib.contextmanager
def numpy_seed(seed: int) -> Iterator[None]:
    """rliable's StratifiedBootstrap draws from numpy's global generator (not its
    random_state): seed that for reproducible intervals, and put it back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm_and_mean(matrix: np.ndarray, reps: int, seed: int) -> dict[str, Estimate]:
    """IQM and mean of a (seeds, units) matrix with stratified bootstrap 95% intervals."""
    from rliable import library, metrics

    if matrix.size == 0:
        raise CompareError("no (seed, goal) scores to aggregate")

    def aggregates(scores: np.ndarray) -> np.ndarray:  # scores (seeds, units) -> (2,)
        return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_mean(scores)])

    with numpy_seed(seed):
        points, intervals = library.get_interval_estimates(
            {"cell": matrix}, aggregates, reps=reps, task_bootstrap=matrix.shape[1] > 1)
    point, (low, high) = points["cell"], intervals["cell"]  # (2,), (2, 2) lower/upper rows
    return {name: Estimate(float(point[i]), float(low[i]), float(high[i]))
            for i, name in enumerate(("iqm", "mean"))}


def paired_difference(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]],
                      reps: int, seed: int) -> dict[str, Any] | None:
    """Mean over shared goals of (A's success - B's), each side averaged over its seeds, with
    a bootstrap interval over goals; None when no goal is shared."""
    from rliable import library, metrics

    def per_goal(rows: Sequence[dict[str, Any]]) -> dict[tuple, float]:
        outcomes: dict[tuple, list[bool]] = defaultdict(list)
        for row in rows:
            outcomes[goal_key(row)].append(row["success"])
        return {goal: float(np.mean(values)) for goal, values in outcomes.items()}

    a, b = per_goal(rows_a), per_goal(rows_b)
    shared = sorted(set(a) & set(b), key=lambda key: tuple(map(str, key)))
    if not shared:
        return None
    diffs = np.array([[a[g] - b[g] for g in shared]])  # (1, goals): goals resampled
    with numpy_seed(seed):
        points, intervals = library.get_interval_estimates(
            {"diff": diffs}, lambda d: np.array([metrics.aggregate_mean(d)]), reps=reps,
            task_bootstrap=True)
    return {
        "goals": len(shared),
        # seeds behind each side's per-goal means: a side with fewer seeds has a noisier mean
        # that the interval over goals does not show
        "a_seeds": len({row["train_seed"] for row in rows_a}),
        "b_seeds": len({row["train_seed"] for row in rows_b}),
        "a_success": float(np.mean([a[g] for g in shared])),
        "b_success": float(np.mean([b[g] for g in shared])),
        "difference": Estimate(float(points["diff"][0]), float(intervals["diff"][0, 0]),
                               float(intervals["diff"][1, 0])),
    }


# ---- tables ---------------------------------------------------------------------------------
def cell_table(rows: Sequence[dict[str, Any]], group_by: Sequence[str], unit: str,
               step: str | int, reps: int, seed: int) -> list[dict[str, Any]]:
    """One line per cell: its key, counts, steps, IQM and mean with intervals."""
    check_fields(rows, group_by, "group_by")
    table = []
    for key, group in group_rows(rows, group_by).items():
        chosen = select_step(group, step)
        if not chosen:
            continue
        matrix, seeds, units = score_matrix(chosen, unit)
        if len(seeds) == 1 and len(units) == 1:
            warnings.warn(f"{dict(zip(group_by, key))}: one seed and one {unit}: its interval "
                          "is a point (unit=goal resamples goals)", stacklevel=2)
        estimates = iqm_and_mean(matrix, reps, seed)
        table.append({
            **dict(zip(group_by, key)),
            "seeds": len(seeds), "units": len(units), "rollouts": len(chosen),
            "steps": sorted({row["step"] for row in chosen}),
            **{name: asdict(est) for name, est in estimates.items()},
        })
    return table


def paired_table(rows: Sequence[dict[str, Any]], group_by: Sequence[str],
                 contrast: Sequence[str], step: str | int, reps: int,
                 seed: int) -> list[dict[str, Any]]:
    """Paired differences between every two cells equal in the non-contrast fields."""
    if not set(contrast) <= set(group_by):
        raise CompareError(f"contrast={','.join(contrast)}: every contrast field must be in "
                           f"group_by={','.join(group_by)}")
    shared_fields = [f for f in group_by if f not in contrast]
    pairs = []
    for shared_key, block in group_rows(rows, shared_fields).items():
        sides = {key: select_step(group, step)
                 for key, group in group_rows(block, contrast).items()}
        for (key_a, rows_a), (key_b, rows_b) in combinations(sides.items(), 2):
            result = paired_difference(rows_a, rows_b, reps, seed)
            if result is None:
                continue
            result["difference"] = asdict(result["difference"])
            pairs.append({**dict(zip(shared_fields, shared_key)),
                          "a": "/".join(map(str, key_a)), "b": "/".join(map(str, key_b)),
                          **result})
    return pairs


def curves(rows: Sequence[dict[str, Any]], group_by: Sequence[str], contrast: Sequence[str],
           unit: str, reps: int, seed: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per panel (the non-contrast fields) and line (the contrast fields): per evaluated step,
    IQM and mean with intervals."""
    shared_fields = [f for f in group_by if f not in contrast]
    panels: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for panel_key, block in group_rows(rows, shared_fields).items():
        lines = panels.setdefault(" / ".join(map(str, panel_key)) or "all", {})
        for line_key, group in group_rows(block, contrast).items():
            points = []
            for step in sorted({row["step"] for row in group}):
                with warnings.catch_warnings():  # a seed missing a step: said by the table
                    warnings.simplefilter("ignore")
                    matrix, seeds, _ = score_matrix(select_step(group, step), unit)
                if matrix.size:
                    estimates = iqm_and_mean(matrix, reps, seed)
                    points.append({"step": step, "seeds": len(seeds),
                                   **{k: asdict(v) for k, v in estimates.items()}})
            lines["/".join(map(str, line_key))] = points
    return panels


def task_lines(rows: Sequence[dict[str, Any]], group_by: Sequence[str],
               step: str | int) -> tuple[list[str], list[list[str]]]:
    """Each cell's success per task at its step (``select_step``): the mean over its seeds'
    rollouts, a column per task (``random`` last) and the count of seeds; no body when the
    rows hold one task or ``group_by`` splits them by task already. Pure."""
    tasks = sorted({row["task"] for row in rows}, key=lambda t: (t == "random", t))
    if "task" in group_by or len(tasks) < 2:
        return [], []
    header = [*group_by, "seeds", *tasks]
    body = []
    for key, group in group_rows(rows, group_by).items():
        chosen = select_step(group, step)
        if not chosen:
            continue
        by_task = group_rows(chosen, ["task"])
        body.append([*map(str, key), str(len({row["train_seed"] for row in chosen})),
                     *(f"{100 * np.mean([r['success'] for r in by_task[(t,)]]):.1f}"
                       if (t,) in by_task else "–" for t in tasks)])
    return header, body


# ---- rendering ------------------------------------------------------------------------------
def percent(est: dict[str, float]) -> str:
    return f"{100 * est['point']:.1f} [{100 * est['low']:.1f}, {100 * est['high']:.1f}]"


def signed_percent(est: dict[str, float]) -> str:
    return f"{100 * est['point']:+.1f} [{100 * est['low']:+.1f}, {100 * est['high']:+.1f}]"


def cell_lines(table: Sequence[dict[str, Any]], group_by: Sequence[str],
               unit: str) -> tuple[list[str], list[list[str]]]:
    # the IQM of 0/1 goal scores trims whole successes and failures away: not shown
    with_iqm = unit != "goal"
    header = [*group_by, "seeds", f"{unit}s", "rollouts", "step",
              *(["IQM % [95% CI]"] if with_iqm else []), "mean % [95% CI]"]
    body = [[*(str(line[f]) for f in group_by), str(line["seeds"]), str(line["units"]),
             str(line["rollouts"]), step_text(line["steps"]),
             *([percent(line["iqm"])] if with_iqm else []), percent(line["mean"])]
            for line in table]
    return header, body


def wide_lines(table: Sequence[dict[str, Any]], group_by: Sequence[str], column: str,
               unit: str) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """The cell table with ``column``'s values as columns (a compact table for a README): a
    line per value of the other group_by fields, each cell ``IQM [CI] · mean`` (the mean only
    for unit=goal) and its seed count where it has fewer than the table's most. Fields with
    one value in every cell are left out of the lines and returned as {field: value}. Pure."""
    if column not in group_by:
        raise CompareError(f"readme_columns={column}: not one of group_by="
                           f"{','.join(group_by)}")
    constant = {f: str(table[0][f]) for f in group_by
                if f != column and len({str(line[f]) for line in table}) == 1} if table else {}
    keys = [f for f in group_by if f != column and f not in constant]
    columns = sorted({str(line[column]) for line in table})
    most = max((line["seeds"] for line in table), default=0)
    cells: dict[tuple, dict[str, str]] = {}
    for line in table:
        text = (f"{100 * line['iqm']['point']:.1f} [{100 * line['iqm']['low']:.0f}, "
                f"{100 * line['iqm']['high']:.0f}] · {100 * line['mean']['point']:.1f}"
                if unit != "goal" else percent(line["mean"]))
        if line["seeds"] < most:
            text += f" ({line['seeds']} seed{'s' if line['seeds'] > 1 else ''})"
        cells.setdefault(tuple(str(line[f]) for f in keys), {})[str(line[column])] = text
    body = [[*key, *(row.get(c, "–") for c in columns)] for key, row in cells.items()]
    return [*keys, *columns], body, constant


def paired_lines(pairs: Sequence[dict[str, Any]], group_by: Sequence[str],
                 contrast: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    shared_fields = [f for f in group_by if f not in contrast]
    header = [*shared_fields, "A", "B", "seeds A/B", "goals", "A %", "B %",
              "A - B, points [95% CI]"]
    body = [[*(str(p[f]) for f in shared_fields), p["a"], p["b"],
             f"{p['a_seeds']}/{p['b_seeds']}", str(p["goals"]),
             f"{100 * p['a_success']:.1f}", f"{100 * p['b_success']:.1f}",
             signed_percent(p["difference"])] for p in pairs]
    return header, body


def step_text(steps: Sequence[int]) -> str:
    return str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"


def text_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(x) for x in column) for column in zip(header, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(lines)


def plot_curves(panels: dict[str, dict[str, list[dict[str, Any]]]], metric: str,
                path: str | Path) -> Path:
    """Success against updates: one axis per panel, one line per method with its band."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    if metric not in PLOT_METRICS:
        raise CompareError(f"plot_metric={metric!r}: expected one of {', '.join(PLOT_METRICS)}")
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 3.6),
                             squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, points in lines.items():
            steps = [p["step"] for p in points]
            values = np.array([[p[metric][k] for k in ("point", "low", "high")] for p in points])
            if not len(values):
                continue
            (line,) = ax.plot(steps, 100 * values[:, 0], marker="o", label=label)
            ax.fill_between(steps, 100 * values[:, 1], 100 * values[:, 2],
                            color=line.get_color(), alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("updates")
        ax.set_ylabel(f"success, {'IQM' if metric == 'iqm' else 'mean'} (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, dpi=110, format="png")
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, png.getvalue(), durable=False)  # a reader never sees half a PNG
    return path
