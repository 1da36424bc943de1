"""Data-parallel training with ``torch.distributed`` (DDP), started by ``torchrun``.

Every rank holds the graph and the embeddings; each epoch's triplets (identical on all ranks) are
cut so that rank ``r`` gets part ``r`` of every global batch; DDP averages the gradients. The loss
of a shard is its summed loss divided by ``global_batch / world_size``, so the averaged gradient
equals the single-process gradient of the same global batch exactly (also for a short last
batch). Rank 0 evaluates, writes checkpoints, TensorBoard and progress output, and broadcasts the
early-stopping decision.
"""

from __future__ import annotations

import gc
import os
from datetime import timedelta
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from lightgcn_pyg.data import InteractionSet
from lightgcn_pyg.training.config import TrainConfig
from lightgcn_pyg.training.trainer import Trainer, TrainResult

BACKENDS = ("auto", "nccl", "gloo")


def world_info() -> Tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the variables ``torchrun`` sets (``(0, 1, 0)`` without)."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def pick_backend(device: torch.device, backend: str = "auto") -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise, unless ``backend`` names one."""
    if backend not in BACKENDS:
        raise ValueError(f"'backend' must be one of {BACKENDS} (got {backend!r})")
    if backend != "auto":
        return backend
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(config_device: str, local_rank: int) -> str:
    """The device of this rank: ``cuda:<local_rank>`` when training on CUDA, else the given one."""
    if config_device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    if config_device == "auto":
        return "cpu"  # MPS has no multi-process backend
    return config_device


class DistributedTrainer(Trainer):
    r"""A :class:`~lightgcn_pyg.training.Trainer` for one rank of a DDP job.

    The process group must be initialised (see :func:`run_distributed_training`). The global batch
    size stays ``config.batch_size``; each rank processes ``batch_size // world_size`` triplets.
    """

    def __init__(
        self,
        data: InteractionSet,
        config: TrainConfig,
        out_dir: Optional[Union[str, Path]] = None,
        **kwargs,
    ) -> None:
        if not dist.is_initialized():
            raise ValueError(
                "'DistributedTrainer' needs an initialised torch.distributed process group"
            )
        rank, world_size = dist.get_rank(), dist.get_world_size()
        super().__init__(data, config, out_dir=out_dir, rank=rank, world_size=world_size, **kwargs)

    def fit(self, resume: bool = False) -> TrainResult:
        """Train under :class:`~torch.nn.parallel.DistributedDataParallel`; collective on all ranks.

        The DDP wrapper lives only while :meth:`fit` runs. Its reducer holds the process group,
        and a reducer that dies after ``destroy_process_group()`` can deadlock in
        ``ProcessGroupGloo``'s destructor (pytorch/pytorch#75097; seen here about once in 20
        runs), so it is freed before :meth:`fit` returns, whatever the caller does next.
        """
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # The graph buffer never changes: do not broadcast it at every forward.
        self.train_model = DistributedDataParallel(
            self.model, device_ids=device_ids, broadcast_buffers=False
        )
        try:
            return super().fit(resume=resume)
        finally:
            self.train_model = self.model
            gc.collect()  # the reducer sits in reference cycles: free it now, not at exit

    def _loss_denominator(self, batch_size: int) -> float:
        start = self.batch_in_epoch * self.config.batch_size
        global_size = min(self.config.batch_size, self.sampler.num_samples - start)
        return global_size / self.world_size

    def _reduce_epoch_stats(
        self, sums: Dict[str, float], n_done: int
    ) -> Tuple[Dict[str, float], int]:
        # Per-rank losses are shard sums scaled by world_size / global batch: their sum over
        # ranks, divided by world_size, is the single-process batch loss.
        keys = sorted(sums)
        t = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        t /= self.world_size
        return dict(zip(keys, t.tolist())), n_done

    def _agree_on_stop(self, should_stop: bool) -> bool:
        flag = torch.tensor([1 if should_stop else 0], device=self._comm_device())
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def run_distributed_training(
    data: InteractionSet,
    config: TrainConfig,
    out_dir: Optional[Union[str, Path]],
    resume: bool = False,
    backend: str = "auto",
    timeout_s: float = 1800.0,
) -> Optional[TrainResult]:
    """Initialise the process group from ``torchrun``'s environment, train, clean up.

    Returns the :class:`TrainResult` on rank 0 and ``None`` on the other ranks.
    """
    if not dist.is_initialized() and "MASTER_ADDR" not in os.environ:
        raise ValueError(
            "Distributed training must be started by torchrun, e.g. "
            "'torchrun --nproc_per_node=2 -m lightgcn_pyg train --distributed ...'"
        )
    rank, world_size, local_rank = world_info()
    device = rank_device(config.device, local_rank)
    config = TrainConfig.from_dict({**config.to_dict(), "device": device})
    if rank != 0:
        config = TrainConfig.from_dict({**config.to_dict(), "progress": False})
    created = False
    if not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(
            backend=pick_backend(torch.device(device), backend),
            timeout=timedelta(seconds=timeout_s),
        )
        created = True
    try:
        # fit() frees its DDP wrapper before it returns (see DistributedTrainer.fit).
        result = DistributedTrainer(data, config, out_dir=out_dir).fit(resume=resume)
        dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()
    return result if rank == 0 else None
