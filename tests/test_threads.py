"""map_batch and torch_threads: the same result as one call, in order, on one torch thread each."""

from __future__ import annotations

import threading

import pytest
import torch

from emogan_utils.threads import map_batch, torch_threads


def test_map_batch_spreads_chunks_over_threads_and_keeps_order():
    seen: list[tuple[int, int, int]] = []

    def fn(chunk: torch.Tensor) -> torch.Tensor:
        seen.append((len(chunk), torch.get_num_threads(), threading.get_ident()))
        return chunk * 2 + chunk.sum(dim=1, keepdim=True)

    batch = torch.arange(30.0).reshape(10, 3)
    with torch_threads(2):
        out = map_batch(fn, batch)
        assert torch.get_num_threads() == 2  # restored
    assert torch.equal(out, batch * 2 + batch.sum(dim=1, keepdim=True))
    assert sorted(n for n, _, _ in seen) == [1, 3, 3, 3]  # 2 * workers chunks of ceil(10 / 4)
    assert {threads for _, threads, _ in seen} == {1}
    assert threading.get_ident() not in {ident for _, _, ident in seen}


@pytest.mark.parametrize("batch, workers", [(torch.ones(1, 4), 2), (torch.ones(6, 4), 1)])
def test_map_batch_calls_fn_once_where_there_is_nothing_to_spread(batch, workers):
    calls = []
    assert torch.equal(map_batch(lambda b: calls.append(len(b)) or b + 1, batch, workers), batch + 1)
    assert calls == [len(batch)]


def test_map_batch_keeps_the_callers_grad_mode():
    weight = torch.ones(3, requires_grad=True)
    batch = torch.ones(4, 3)
    with torch.no_grad():
        assert not map_batch(lambda b: b * weight, batch, workers=2).requires_grad
    out = map_batch(lambda b: b * weight, batch, workers=2)
    out.sum().backward()
    assert torch.equal(weight.grad, torch.full((3,), 4.0))
