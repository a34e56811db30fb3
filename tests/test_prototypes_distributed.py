"""SpatioTemporalPrototypeAggregator under torch.distributed: 2 gloo processes == 1 process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import free_port

from dastc import SpatioTemporalPrototypeAggregator
from dastc.functional import class_prototypes

K, C = 5, 6
WORLD = 2

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs the gloo backend"
)


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The global batch: 2 clips per process, with ignored pixels and a class only on rank 1."""
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2 * WORLD, 3, C, 4, 5, generator=g)
    labels = torch.randint(0, K - 1, (2 * WORLD, 3, 8, 10), generator=g)
    labels[torch.rand(labels.shape, generator=g) < 0.2] = 255
    labels[2:, 1, :2, :2] = K - 1  # class K-1 appears only in rank 1's half
    weights = torch.rand(labels.shape, generator=g)
    return features, labels, weights


def _loss(vectors: torch.Tensor) -> torch.Tensor:
    return (vectors * torch.linspace(-1, 1, C)).sum() + vectors.pow(2).sum()


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        features, labels, weights = _batch()
        mine = slice(2 * rank, 2 * rank + 2)
        f = features[mine].clone().requires_grad_()
        agg = SpatioTemporalPrototypeAggregator(K, C, momentum=0.5)
        protos = agg(f, labels[mine], weights[mine])
        _loss(protos.vectors).backward()
        agg.update(protos)
        agg.update(agg(features[mine], labels[mine]))
        group = dist.new_group(list(range(WORLD)))
        grouped = SpatioTemporalPrototypeAggregator(K, C, process_group=group)(
            features[mine], labels[mine], weights[mine]
        )
        local = SpatioTemporalPrototypeAggregator(K, C, sync=False)(
            features[mine], labels[mine], weights[mine]
        )
        torch.save(
            {
                "protos": tuple(protos),
                "grad": f.grad,
                "memory": agg.memory,
                "initialized": agg.initialized,
                "grouped": tuple(grouped),
                "local": tuple(local),
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_distributed_equals_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    features, labels, weights = _batch()
    f = features.clone().requires_grad_()
    ref = class_prototypes(f, labels, K, weights)
    _loss(ref.vectors).backward()
    assert f.grad is not None
    agg = SpatioTemporalPrototypeAggregator(K, C, momentum=0.5)
    agg.update(ref)
    agg.update(agg(features, labels))
    assert bool(ref.present[K - 1])

    for rank, res in enumerate(results):
        mine = slice(2 * rank, 2 * rank + 2)
        for got, want in zip(res["protos"], ref, strict=True):
            torch.testing.assert_close(got.detach(), want.detach())
        for got, want in zip(res["grouped"], ref, strict=True):
            torch.testing.assert_close(got, want.detach())
        # Every process sees the global prototypes; the all-reduce backward sums the
        # (identical) per-process losses' gradients: WORLD x the full-batch gradient,
        # which DDP's averaging turns back into the full-batch gradient.
        torch.testing.assert_close(res["grad"], WORLD * f.grad[mine])
        torch.testing.assert_close(res["memory"], agg.memory)
        assert torch.equal(res["initialized"], agg.initialized)
        local = class_prototypes(features[mine], labels[mine], K, weights[mine])
        for got, want in zip(res["local"], local, strict=True):
            torch.testing.assert_close(got, want)
    assert not bool(results[0]["local"][2][K - 1]) and bool(results[1]["local"][2][K - 1])
