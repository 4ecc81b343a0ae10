"""Training in several processes: PyTorch DistributedDataParallel, launched by ``torchrun``.

``torchrun`` starts one process per GPU (or several on a CPU) and sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`start` joins their process group, with NCCL on GPUs
and gloo on CPUs. Rank 0 is the main process: it extracts features first, writes checkpoints,
prints progress and decides early stopping. Without ``torchrun`` (or with one process) every
helper here does nothing, so training runs exactly as it does alone.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def launched() -> bool:
    """Whether ``torchrun`` (or the like) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether this process is in a process group of several."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the process that writes files and prints."""
    return rank() == 0


def start(device: torch.device) -> torch.device:
    """Join ``torchrun``'s process group (once) if launched; the device this rank trains on:
    its own GPU (``LOCAL_RANK``) on CUDA, else ``device``."""
    if not launched():
        return device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def stop() -> None:
    """Leave the process group, if joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def others_wait() -> None:
    """Ranks other than 0 wait here until rank 0 reaches :func:`main_done`: rank 0 runs what
    lies between first (extracting features into the cache), then the others (reading it)."""
    if not is_main():
        barrier()


def main_done() -> None:
    """Rank 0 lets the ranks waiting in :func:`others_wait` go on."""
    if is_main():
        barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(values: Sequence[float], device: torch.device) -> list[float]:
    """Each value summed over the ranks (float64)."""
    if not active():
        return list(values)
    where = device if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.tensor(list(values), dtype=torch.float64, device=where)
    dist.all_reduce(total)
    return total.tolist()


def shard(order: torch.Tensor) -> torch.Tensor:
    """This rank's share of an epoch's order: every ``world_size``-th item from its rank, the
    last ``len % world_size`` items left out so every rank takes as many steps. Batch ``k`` of
    ``B / world_size`` items on each rank then holds, over the ranks, exactly the items of
    batch ``k`` of ``B`` in one process."""
    n = world_size()
    if n == 1:
        return order
    return order[rank():len(order) - len(order) % n:n]


def per_rank_batch(batch_size: int) -> int:
    """Each rank's batch for a global ``batch_size`` (which the ranks must divide)."""
    n = world_size()
    if batch_size % n:
        raise ValueError(f"batch size {batch_size} does not split over {n} processes; give a "
                         "multiple of the process count")
    return batch_size // n


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm with the statistics of the global batch, on CPUs (gloo).

    torch's SyncBatchNorm runs only on GPUs. This does the same with two autograd-aware
    all-reduces (the sums, then the squared deviations): every rank normalises with the whole
    batch's mean and variance, and gradients flow through them to every rank's examples, as
    in one process. Outside training, or alone, it is plain batch norm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = _all_reduce(torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype))
        mean = _all_reduce(x.sum(dims)) / count
        var = _all_reduce(((x - mean.view(shape)) ** 2).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else (
                    1.0 / float(self.num_batches_tracked))
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / (count - 1), momentum)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over the ranks, which gradients flow back through."""
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():  # deprecated for a private successor (_functional_collectives)
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(tensor)


def global_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every batch norm layer a :class:`GlobalBatchNorm` (same weights)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum,
                                    module.affine, module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        return converted.to(next(module.buffers(), torch.empty(0)).device)
    for name, child in module.named_children():
        setattr(module, name, global_batchnorm(child))
    return module


def prepare(model: nn.Module, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """``(model, net)``: the model with synchronised batch norm (SyncBatchNorm on GPUs,
    :class:`GlobalBatchNorm` on CPUs) and the DDP wrapper to train through, which averages
    gradients over the ranks. Alone: ``(model, model)``. Make optimisers of ``model``."""
    if not active():
        return model, model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, _ddp(model, device_ids=[device.index])
    model = global_batchnorm(model)
    return model, _ddp(model)


def _ddp(model: nn.Module, **options: Any) -> DistributedDataParallel:
    """DDP without broadcasting buffers at each forward: synchronised batch norm keeps the
    running statistics equal (torch now warns that ``broadcast_buffers`` is to be renamed, but
    its successor still syncs them at start, which is also fine here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return DistributedDataParallel(model, broadcast_buffers=False, **options)
