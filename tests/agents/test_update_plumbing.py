"""What every agent's update shares: no host syncs, lazily read stats, tensor batches, the fused
optimiser and resuming across optimiser implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bench_modules import load_bench
from test_am import SIZE, A, make_batch, tiny_cfg
from test_gcbc import tiny_cfg as gcbc_cfg
from test_task_q import A as TASK_A
from test_task_q import cfg as task_cfg
from test_task_q import task_batch

from goalrl.agents.am import AMAgent
from goalrl.agents.base import UpdateStats, place_optimizer_steps
from goalrl.agents.gcbc import GCBCAgent
from goalrl.agents.task_q import TaskQAgent
from goalrl.data import keys as K
from goalrl.data.prefetch import tensor_batch

host_reads_mode = load_bench("update_overhead").host_reads_mode  # counts values read to host


def agents():
    am = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0)
    gcbc = GCBCAgent(gcbc_cfg(), (SIZE, SIZE, 3), A, seed=0)
    task = TaskQAgent(task_cfg(), (SIZE, SIZE, 3), TASK_A, seed=0)
    return [(am, make_batch), (gcbc, make_batch), (task, task_batch)]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["am", "gcbc", "task_q"])
def test_an_update_reads_nothing_back_until_its_stats_are_read(index: int) -> None:
    # On a GPU every value read to the host waits for all queued kernels; an update that reads
    # none lets the trainer queue the next one while the device works.
    agent, batch = agents()[index]
    agent.update(batch(seed=0))  # first update allocates the optimiser state
    with host_reads_mode() as counter:
        stats = agent.update(batch(seed=1))
    assert counter.reads == 0
    assert isinstance(stats, UpdateStats)
    with host_reads_mode() as counter:
        values = dict(stats)
        again = stats[next(iter(stats))]
    assert counter.reads == 1  # every value in one transfer, once
    assert all(np.isfinite(v) for v in values.values())
    assert again == values[next(iter(stats))]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["am", "gcbc", "task_q"])
def test_tensor_batches_train_like_numpy_batches(index: int) -> None:
    one, batch = agents()[index]
    two, _ = agents()[index]
    for seed in range(2):
        a = dict(one.update(batch(seed=seed)))
        b = dict(two.update(tensor_batch(batch(seed=seed), pin=False)))
        assert a == b


def test_an_eager_update_of_a_graphed_agent_moves_its_average_at_the_current_rate() -> None:
    # GraphedUpdate fills graph_ema_weight before each replay; an eager update in between
    # must not average at whatever rate an earlier replay left there (here: 0, no motion)
    plain = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0)
    graphed = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0)
    graphed.graph_ema_weight = torch.zeros(())
    for seed in range(2):
        plain.update(make_batch(seed=seed))
        graphed.update(make_batch(seed=seed))
    start = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0).q_ema.state_dict()
    for (name, a), b in zip(plain.q_ema.state_dict().items(),
                            graphed.q_ema.state_dict().values(), strict=True):
        # the same up to the rate's float32 rounding in the tensor; a stale 0 would leave b at
        # its start while a moved
        torch.testing.assert_close(b - start[name], a - start[name], msg=name)


def test_fused_adamw_where_the_device_has_it() -> None:
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0)
    assert all(group["fused"] for group in agent.optimizer.param_groups)


@pytest.mark.parametrize("saved_fused", [False, True])
def test_resume_keeps_this_runs_optimiser_kernel(saved_fused: bool) -> None:
    # A checkpoint written with the per-tensor loop (or fused) resumes with this agent's kernel,
    # its step counters where that kernel reads them, and continues as the saving run would.
    source = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0)
    if not saved_fused:
        source.optimizer = torch.optim.AdamW(source._params, lr=source.cfg.lr, fused=False)
    source.update(make_batch(seed=0))
    state = source.state_dict()
    resumed = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=1)
    resumed.load_state_dict(state)
    assert all(group["fused"] for group in resumed.optimizer.param_groups)
    steps = [s["step"] for s in resumed.optimizer.state.values()]
    assert steps and all(t.dtype == torch.float32 and t.device.type == "cpu" for t in steps)
    want = dict(source.update(make_batch(seed=1)))
    got = dict(resumed.update(make_batch(seed=1)))
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key


def test_place_optimizer_steps_follows_each_groups_kernel() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([p], fused=False)
    p.grad = torch.ones(3)
    opt.step()
    opt.state[p]["step"] = opt.state[p]["step"].double()
    place_optimizer_steps(opt)
    assert opt.state[p]["step"].dtype == torch.float32
    assert float(opt.state[p]["step"]) == 1.0


def test_stacked_stats_read_like_a_dict() -> None:
    stats = UpdateStats.stacked(["a", "b"], torch.tensor([1.0, 2.5]))
    assert dict(stats) == {"a": 1.0, "b": 2.5} and len(stats) == 2
    assert [float(t) for t in stats.tensors()] == [1.0, 2.5]


def test_graphed_update_needs_cuda() -> None:
    from goalrl.agents.graphed import GraphedUpdate

    with pytest.raises(ValueError, match="needs a CUDA device; the agent is on cpu"):
        GraphedUpdate(AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["am", "gcbc"])
def test_graphed_updates_train_like_eager_ones_on_cuda(kind: str) -> None:
    # Replays must change the weights, keep the acting average moving and fit a fixed batch;
    # the RNG streams of graph and eager runs differ, so the check is on the fit, not bits.
    from goalrl.agents.graphed import GraphedUpdate

    make = (lambda: AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, device="cuda", seed=0)) \
        if kind == "am" else (lambda: GCBCAgent(gcbc_cfg(), (SIZE, SIZE, 3), A, device="cuda"))
    eager, graphed = make(), make()
    update = GraphedUpdate(graphed, warmup=2)
    batch = tensor_batch(make_batch(seed=0), pin=True)
    loss_key = "critic/loss" if kind == "am" else "actor/loss"
    acting = graphed.q_ema if kind == "am" else graphed.policy_ema
    first = snapshot = None
    for i in range(30):
        want = eager.update(batch)[loss_key]
        got = update(batch)[loss_key]
        first = got if first is None else first
        if i == 0:
            assert got == pytest.approx(want, rel=1e-4)  # both start eager, from one seed
        if i == 5:  # replays from here on
            snapshot = [p.clone() for p in acting.parameters()]
    assert update.graph is not None and graphed.step == eager.step == 30
    assert got < first and abs(got - want) < 0.5 * abs(first)
    moved = max((a - b).abs().max().item()
                for a, b in zip(acting.parameters(), snapshot, strict=True))
    assert moved > 0  # replays keep the acting average moving (its rate comes from a tensor)
    with pytest.raises(ValueError, match="fixed batch_size"):
        update(tensor_batch(make_batch(b=4, seed=1), pin=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_acting_between_replays_with_the_rng_restored_leaves_the_graph_stream_alone() -> None:
    # Evaluation during a cuda_graph run acts with the generator the graph registered, then
    # restores its state (loop.evaluate_agent). The next replay must draw what it would have
    # drawn without the evaluation; without the restore it draws something else.
    from goalrl.agents.graphed import GraphedUpdate

    agents = [AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, device="cuda", seed=0) for _ in range(3)]
    updates = [GraphedUpdate(agent, warmup=2) for agent in agents]
    batch = tensor_batch(make_batch(seed=0), pin=True)
    for _ in range(5):  # two eager, one capture, two replays
        for update in updates:
            update(batch)
    obs = make_batch(b=2, seed=3)
    untouched, restored, moved = agents
    rng = restored.get_rng_state()
    restored.act(obs[K.OBS_IMAGE], obs[K.GOAL_IMAGE])
    restored.set_rng_state(rng)
    moved.act(obs[K.OBS_IMAGE], obs[K.GOAL_IMAGE])  # the stream moves on without a restore
    want, got, other = (update(batch)["critic/loss"] for update in updates)
    assert got == pytest.approx(want, rel=1e-4)
    assert other != pytest.approx(want, rel=1e-4)


def test_to_tensor_takes_flipped_and_read_only_arrays() -> None:
    import numpy as np
    import torch

    from goalrl.agents.base import to_tensor

    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    flipped = frame[..., ::-1]  # BGR -> RGB as a view: a negative stride torch cannot wrap
    assert torch.equal(to_tensor(flipped, torch.device("cpu")), torch.from_numpy(flipped.copy()))
    frame.flags.writeable = False
    assert torch.equal(to_tensor(frame, torch.device("cpu")), torch.from_numpy(frame.copy()))
