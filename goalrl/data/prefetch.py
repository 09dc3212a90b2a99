"""Read batches ahead of training in background threads, keeping the batch order.

Index sampling (cheap, owns the RNG) runs in one producer thread in stream order; the reads
(``sampler.gather``, mostly ``os.preadv`` system calls that release the GIL) run on that
thread or on a pool. Batches come out in the order their indices were drawn, so the
sequence equals that of calling ``sampler.sample()`` repeatedly, for any thread count.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np


def tensor_batch(batch: dict[str, Any], pin: bool) -> dict[str, Any]:
    """numpy fields -> torch tensors sharing their memory, or copied into page-locked memory
    with ``pin``. From pinned memory a GPU copy runs without the host waiting for it, so the
    trainer can queue the next update while the device still works on this one; a copy from
    ordinary memory makes the host wait for everything queued before it. Other fields pass."""
    import torch

    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            t = torch.from_numpy(value if value.flags.writeable else value.copy())
            out[key] = t.pin_memory() if pin else t
        else:
            out[key] = value
    return out


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class BatchPrefetcher:
    """Iterator over a GoalBatchSampler's batches, ``depth`` batches ahead.

    While it runs, do not call the sampler directly (it shares the RNG). ``state_dict()``
    gives the sampler position after the last batch *consumed* (not the last prepared).
    """

    def __init__(
        self,
        sampler: Any,
        depth: int = 4,
        num_threads: int = 1,
        transform: Callable[[dict], dict] | None = None,
    ) -> None:
        """``transform`` runs on each batch in the reading thread (e.g. ``tensor_batch``)."""
        if depth < 1 or num_threads < 1:
            raise ValueError("depth and num_threads must be >= 1")
        self.sampler = sampler
        self._transform = transform
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(num_threads, "goalrl-gather") if num_threads > 1 else None
        self._state = sampler.state_dict()
        self._closed = False
        self._thread = threading.Thread(target=self._produce, name="goalrl-prefetch",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                idx = self.sampler.sample_indices()
                state = self.sampler.state_dict()
                if self._pool is not None:
                    job: Any = self._pool.submit(self._read, idx)
                else:
                    job = self._read(idx)
                if not self._put((job, state)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put((_Failed(e), None))

    def _read(self, idx: Any) -> dict:
        batch = self.sampler.gather(idx)
        return batch if self._transform is None else self._transform(batch)

    def __iter__(self) -> BatchPrefetcher:
        return self

    def __next__(self) -> dict:
        if self._closed:
            raise StopIteration
        job, state = self._queue.get()
        if isinstance(job, _Failed):
            self.close()
            raise job.error
        batch = job.result() if isinstance(job, Future) else job
        self._state = state
        return batch

    def state_dict(self) -> dict:
        """Sampler state right after the last batch returned by ``next``."""
        return self._state

    def close(self) -> None:
        """Stop the threads (batches read ahead are dropped)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass
