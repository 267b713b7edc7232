"""The training batch stream: seeded epoch orders, sharded by rank, resumable from (epoch, position).

The order of epoch ``e`` is a permutation drawn from a generator seeded by ``(seed, "data", e)``, padded to
a multiple of the world size by wrapping around and dealt to ranks as ``order[rank::world]`` (the layout of
torch's DistributedSampler). Incomplete last batches are dropped. Because the order is a pure function of
(seed, epoch), a checkpoint only needs the epoch and the number of batches already consumed in it.

Accepted data: a tensor (batch = ``data[idx]``), a tuple/list or dict of equally long tensors (batch of the
same structure; no per-item Python loop), or any map-style dataset (``len`` + ``__getitem__``), collated
with ``collate_fn`` (torch's default_collate if None), optionally in DataLoader worker processes.
Random augmentation inside ``__getitem__`` resumes bit-exactly with ``num_workers=0`` (it then draws from the
checkpointed global RNG) or when it is seeded from the item index; in worker processes it does not.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, default_collate

from bench.distributed import derive_seed
from bench.registry import BenchError


def _length(data: Any) -> int:
    if isinstance(data, torch.Tensor):
        return data.shape[0]
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        lengths = {t.shape[0] for t in data}
    elif isinstance(data, dict) and data and all(isinstance(t, torch.Tensor) for t in data.values()):
        lengths = {t.shape[0] for t in data.values()}
    else:
        try:
            return len(data)
        except TypeError:
            raise BenchError(f"training data of type {type(data).__name__} has no length; pass a tensor, a "
                             "tuple/dict of tensors or a map-style dataset") from None
    if len(lengths) != 1:
        raise BenchError(f"training tensors have different lengths: {sorted(lengths)}")
    return lengths.pop()


def _is_tensor_data(data: Any) -> bool:
    if isinstance(data, torch.Tensor):
        return True
    if isinstance(data, (tuple, list)):
        return bool(data) and all(isinstance(t, torch.Tensor) for t in data)
    if isinstance(data, dict):
        return bool(data) and all(isinstance(t, torch.Tensor) for t in data.values())
    return False


def _take(data: Any, idx: torch.Tensor) -> Any:
    if isinstance(data, torch.Tensor):
        return data[idx]
    if isinstance(data, dict):
        return {k: v[idx] for k, v in data.items()}
    return type(data)(t[idx] for t in data)


class BatchStream:
    """Endless iterator of per-rank micro-batches with a checkpointable position."""

    def __init__(self, data: Any, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, collate_fn: Callable[[list[Any]], Any] | None = None, num_workers: int = 0):
        self.data = data
        self.n = _length(data)
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shuffle = shuffle
        self.collate_fn = collate_fn or default_collate
        self.tensor_data = _is_tensor_data(data)
        self.num_workers = 0 if self.tensor_data else num_workers
        per_rank = -(-self.n // world_size)
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch == 0:
            raise BenchError(f"training data has {self.n} items: too few for {world_size} process(es) x "
                             f"micro-batch {batch_size}")
        self.epoch = 0
        self.position = 0  # batches of `epoch` already handed out
        self._order: torch.Tensor | None = None
        self._loader_iter: Iterator[Any] | None = None

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's item indices for ``epoch`` (only whole batches)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "data", epoch))
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        padded = -(-self.n // self.world_size) * self.world_size
        if padded > self.n:
            order = torch.cat([order, order[: padded - self.n]])
        mine = order[self.rank :: self.world_size]
        return mine[: self.batches_per_epoch * self.batch_size]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order, self._loader_iter = None, None

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Any:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
            self._order, self._loader_iter = None, None
        if self._order is None:
            self._order = self.epoch_order(self.epoch)
        start = self.position * self.batch_size
        self.position += 1
        if self.tensor_data:
            return _take(self.data, self._order[start : start + self.batch_size])
        if self.num_workers == 0:
            idx = self._order[start : start + self.batch_size].tolist()
            return self.collate_fn([self.data[i] for i in idx])
        if self._loader_iter is None:  # workers prefetch the rest of this epoch, starting where we are
            rest = self._order[start:].view(-1, self.batch_size).tolist()
            # Its own generator: a DataLoader otherwise draws its worker seed from the global torch RNG,
            # which would shift the loss function's random stream. (Random transforms inside workers are
            # still reproducible only for an uninterrupted run: a resume deals batches to workers anew.)
            workers_rng = torch.Generator().manual_seed(derive_seed(self.seed, "workers", self.rank, self.epoch))
            loader = DataLoader(self.data, batch_sampler=rest, num_workers=self.num_workers,
                                collate_fn=self.collate_fn, generator=workers_rng)
            self._loader_iter = iter(loader)
        return next(self._loader_iter)
