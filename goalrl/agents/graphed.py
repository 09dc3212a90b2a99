"""Replay an agent's whole update as one CUDA graph (``goalrl pretrain cuda_graph=true``).

An AM update dispatches about 1,900 small ops (``bench/update_overhead.py``); on a GPU the
host's time to launch them, not the arithmetic, sets the update rate. A CUDA graph records the
kernels of one update once and then launches them all with one call per update.

What makes goalrl's updates capturable: a fixed batch shape (the sampler's ``batch_size``), no
value read back by the host inside an update (``tests/agents/test_update_plumbing.py``), the
agent's generator registered with the graph, fused AdamW switched to ``capturable``, and the
one Python number that changes between updates (the acting average's warm-up rate) read from a
device tensor. Everything else a graph bakes in is constant for a run.

Not for multi-process runs: DistributedDataParallel's gradient hooks are not captured here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from goalrl.agents.base import UpdateStats, to_tensor
from goalrl.agents.losses import ema_rate


class GraphedUpdate:
    """``update(batch)`` for an agent on a CUDA device: ``warmup`` eager updates on a side
    stream (they allocate the optimiser state and let the allocator settle), then one capture,
    then replays. Every call is one real update on its batch: a capture records kernels
    without running them, so the call that captures replays too."""

    def __init__(self, agent: Any, warmup: int = 3) -> None:
        if agent.device.type != "cuda":
            raise ValueError(f"cuda_graph needs a CUDA device; the agent is on {agent.device}")
        if agent.train_net is not getattr(agent, "q", getattr(agent, "policy", None)):
            raise ValueError("cuda_graph does not support DistributedDataParallel (torchrun)")
        self.agent = agent
        self.warmup = warmup
        self.updates = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: dict[str, torch.Tensor] = {}  # static device copies of the batch fields
        self.keys: list[str] = []
        self.outputs: list[torch.Tensor] = []  # the stats tensors the graph writes
        self.side = torch.cuda.Stream(agent.device)

    def __call__(self, batch: Mapping[str, Any]) -> UpdateStats:
        self.updates += 1
        if self.updates <= self.warmup:
            return self._on_side_stream(lambda: self.agent.update(batch))
        if self.graph is None:
            self._capture(batch)
        else:
            self._load(batch)
        agent = self.agent
        agent.step += 1  # what update() does on the host; the graph has only the kernels
        tau = getattr(agent.cfg, "ema_tau", 0.0)
        if agent.graph_ema_weight is not None and tau > 0:
            agent.graph_ema_weight.fill_(ema_rate(agent.step, tau))
        self.graph.replay()
        # copied out in one kernel: the next replay overwrites the outputs
        return UpdateStats.stacked(self.keys, torch.stack(self.outputs))

    def _on_side_stream(self, fn):
        current = torch.cuda.current_stream(self.agent.device)
        self.side.wait_stream(current)
        with torch.cuda.stream(self.side):
            out = fn()
        current.wait_stream(self.side)
        return out

    def _load(self, batch: Mapping[str, Any]) -> None:
        if set(batch) != set(self.inputs):
            raise ValueError(
                f"cuda_graph: batch fields {sorted(batch)} differ from the captured "
                f"{sorted(self.inputs)}"
            )
        for key, static in self.inputs.items():
            value = batch[key]
            if tuple(value.shape) != tuple(static.shape):
                raise ValueError(
                    f"cuda_graph: batch field {key!r} has shape {tuple(value.shape)}, the "
                    f"captured update takes {tuple(static.shape)} (a fixed batch_size)"
                )
            static.copy_(to_tensor(value, static.device), non_blocking=True)

    def _capture(self, batch: Mapping[str, Any]) -> None:
        agent = self.agent
        device = agent.device
        self.inputs = {k: to_tensor(v, device).clone() for k, v in batch.items()}
        agent.graph_ema_weight = torch.zeros((), device=device)
        for group in agent.optimizer.param_groups:
            group["capturable"] = True  # fused AdamW already keeps its step counters on device
        step = agent.step
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(agent.generator)
        agent.optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        # thread_local: the prefetch thread keeps pinning batches (host allocations) meanwhile
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            stats = agent.update(self.inputs)
            outputs = [t.detach().float() for t in stats.tensors()]
        agent.step = step  # capture ran update()'s host code once; __call__ counts replays
        self.keys, self.outputs, self.graph = list(stats), outputs, graph
