"""What bench/table.py runs (issues 40 and 41): the methods and their read-outs, the budget
profiles, the (dataset, method, seed) cells, and the protocol paragraph the results page opens
with. bench/table.py runs the cells; this module only names them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "configs" / "dataset"  # dataset names are `goalrl collect dataset=` presets


@dataclass(frozen=True)
class Method:
    overrides: tuple[str, ...]  # `goalrl pretrain` agent overrides
    act_rules: tuple[str | None, ...]  # read-outs, one table row each (None: the policy head)
    state_speed: float  # updates/s at batch 256, one thread, state vectors (for the plan)
    image_speed: float  # the same on 64 px images
    store_method: str  # the `method` its rows carry (goalrl.results.method_name)


# The read-out of the agents with a value V(s, g) (AM: its Q at its actor's action): one-step
# lookahead through a dynamics model trained on the cell's dataset (`goalrl dynamics`, in the
# cell's folder): of the state on state profiles, of each checkpoint's own embedding on images
LOOKAHEAD = "model_lookahead"

# One table of methods. AM is trained once with its actor and read out three times (CEM on Q,
# the actor, and on state profiles the lookahead scored by Q at the actor's action);
# am_prior adds the behaviour prior's mean (its rows carry method "am_prior").
# Speeds: docs/benchmarks/agent_speed.md (median, 2 shared cores at load about 3); AM without
# chaining and with the prior take the rows of AM without and with its actor.
METHODS: dict[str, Method] = {
    "am": Method(("agent=am", "agent.actor=true"), ("cem", "actor", LOOKAHEAD), 8.9, 1.8, "am"),
    "am_prior": Method(("agent=am_prior", "agent.actor=true"), ("cem", "prior_mean", "actor"),
                       8.9, 1.8, "am_prior"),
    "am_no_chaining": Method(("agent=am", "agent.chaining=false"), ("cem",), 10.1, 2.6,
                             "am_no_chaining"),
    "gcbc": Method(("agent=gcbc",), (None,), 82.0, 4.2, "gcbc"),
    "gcivl": Method(("agent=gcivl",), (None, LOOKAHEAD), 24.9, 1.6, "gcivl"),
    "gciql": Method(("agent=gciql",), (None, LOOKAHEAD), 17.3, 1.2, "gciql"),
    "crl": Method(("agent=crl",), (None,), 26.0, 2.0, "crl"),
    "hiql": Method(("agent=hiql",), (None, LOOKAHEAD), 11.3, 1.2, "hiql"),
    # QRL's speeds: 0.54-0.65 (state) and 0.8 (image) of GCIVL's measured beside it under
    # load, scaled to GCIVL's rows here (estimates); not in the default list (compute)
    "qrl": Method(("agent=qrl",), (None, LOOKAHEAD), 15.0, 1.3, "qrl"),
}
DEFAULT_METHODS = ("am", "am_prior", "gcbc", "gcivl", "gciql", "crl", "hiql", "am_no_chaining")
DEFAULT_DATASETS = ("push-play", "push-noisy", "push-stitch")
# seconds per evaluation rollout, for the plan: Push state, 50 steps, one thread, measured on
# 4-update checkpoints (goals=val, 1 and 3 per task: AM by CEM 0.21 s, its actor 0.14, GCBC
# 0.12; rounded up), on a 2-core machine shared with other jobs; the model lookahead: 30 Push
# val rollouts of 100 steps by a 20k GCIVL in 24 s (one core shared)
ROLLOUT_SECONDS = {"cem": 0.25, "model_lookahead": 0.8, "other": 0.15}


@dataclass(frozen=True)
class Profile:
    steps: int
    batch: int
    checkpoints: tuple[int, ...]  # fixed in advance: each is evaluated on the val goals
    episodes: int  # evaluation rollouts per task (5 named tasks + random goals per split)
    encoder: str  # agent.encoder.kind
    data_suffix: str  # dataset folder: <data-root>/<name><suffix>
    budget: str  # what it is for, printed by --dry-run
    device: str = "cpu"  # training and evaluation; cuda: training time is not estimated
    dynamics_steps: int = 3000  # `goalrl dynamics` updates of a state cell's lookahead model


PROFILES: dict[str, Profile] = {
    "state-cpu": Profile(20_000, 256, (5_000, 10_000, 15_000, 20_000), 10, "state", "-state",
                         "state variants, one core per cell: 5-70 min of training"),
    # images: AM with its actor runs 1.8 updates/s at batch 256 (about 3.6 at 128), so 10,000
    # updates keep its cell near the 45 minutes on one core
    "images-cpu": Profile(10_000, 128, (2_500, 5_000, 7_500, 10_000), 10, "image", "",
                          "64 px images, one core per cell: 20-70 min of training"),
    # full runs on one GPU (AM: 77 updates/s at batch 256 on an H200, pretrain.md); each run's
    # summary.json records the GPU's name
    "gpu": Profile(100_000, 256, (25_000, 50_000, 75_000, 100_000), 10, "image", "",
                   "64 px images on one GPU: AM about 22 min of training per cell on an H200",
                   device="cuda"),
    "smoke": Profile(4, 8, (2, 4), 1, "state", "-state", "tests: seconds per cell",
                     dynamics_steps=20),
}


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    seed: int
    data: Path
    run: Path

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.method}/seed{self.seed}"


class TableError(Exception):
    """Bad arguments or missing inputs: one line naming the value."""


def check_choices(kind: str, given: list[str], known: list[str]) -> None:
    unknown = [name for name in given if name not in known]
    if unknown:
        raise TableError(f"unknown {kind} {', '.join(unknown)}; known: {', '.join(known)}")


def plan_cells(profile_name: str, methods: list[str], datasets: list[str], seeds: list[int],
               data_root: Path, runs_root: Path) -> list[Cell]:
    check_choices("method", methods, list(METHODS))
    check_choices("dataset", datasets, sorted(p.stem for p in PRESETS.glob("*.yaml")))
    clash = [n for n in set(methods) if [METHODS[m].store_method for m in methods].count(
        METHODS[n].store_method) > 1]
    if clash:
        raise TableError(f"methods {', '.join(sorted(clash))} write rows under the same store "
                         "method name; run them into different stores")
    profile = PROFILES[profile_name]
    return [Cell(d, m, s, data_root / f"{d}{profile.data_suffix}",
                 runs_root / profile_name / d / m / f"seed{s}")
            for d in datasets for m in methods for s in seeds]


def protocol_note(profile_names: list[str], seeds: list[int]) -> str:
    """The page's paragraph: every profile whose runs fed the store (a page may hold several)."""
    parts = []
    for name in profile_names:
        profile = PROFILES[name]
        parts.append(
            f"`bench/table.py --profile {name}`: {profile.steps} updates at batch "
            f"{profile.batch} ({profile.encoder} observations"
            f"{', one GPU' if profile.device != 'cpu' else ''}, datasets "
            f"`<preset>{profile.data_suffix}`), checkpoints at steps "
            f"{', '.join(map(str, profile.checkpoints))} fixed in advance and evaluated on the "
            f"validation goals, {profile.episodes} rollouts of each named task and of random "
            f"goals per evaluation")
    return (f"Made by {'; '.join(parts)}. Training seeds {', '.join(map(str, seeds))}. Each "
            f"seed and read-out is reported on the test goals at the step it did best at on "
            f"validation (test rows of the last step are also in the store). AM is read out by "
            f"CEM on Q (cem_on_q) and by its DDPG+BC actor (actor) as separate rows.")
