"""torch on the CPU's cores: a thread count for a block, and a batch spread over worker threads.

On the 2-core development CPU, batches of many short tensor operations ran faster as one
chunk per worker thread, each on one torch thread, than as one batch on torch's intra-op
threads: log-mel extraction (:mod:`~emogan_utils.features`) and Griffin-Lim
(:mod:`~emogan_utils.inversion`) both work that way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (unchanged when None), then restore the setting."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def map_batch(fn: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor,
              workers: int | None = None) -> torch.Tensor:
    """``fn(batch)`` for an ``fn`` that treats the rows (first axis) of ``batch`` independently.

    On a CPU with ``workers`` > 1 (default: torch's thread count) and more than one row, the
    rows are cut into chunks of ``ceil(rows / (2 * workers))``, which ``workers`` threads compute,
    each on one torch thread and in the caller's grad mode; the results are concatenated in
    order: ``fn(batch)``'s up to the float rounding of kernels that block by batch size.
    Elsewhere (a GPU, one row, one thread) it is ``fn(batch)``.
    """
    workers = workers or torch.get_num_threads()
    if batch.device.type != "cpu" or workers < 2 or len(batch) < 2:
        return fn(batch)
    grad = torch.is_grad_enabled()

    def run(chunk: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(grad):
            return fn(chunk)

    with torch_threads(1), ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(run, batch.split(-(-len(batch) // (2 * workers))))))
