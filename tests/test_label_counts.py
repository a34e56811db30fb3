"""Tests for dastc._label_counts.label_counts against a plain loop."""

from __future__ import annotations

import torch

from dastc._label_counts import label_counts


def _ref(label: torch.Tensor, k: int) -> list[float]:
    counts = [0.0] * k
    for v in label.flatten().tolist():
        if 0 <= v < k:
            counts[v] += 1
    return counts


def test_value_label_counts_leaves_out_ignored_and_out_of_range() -> None:
    g = torch.Generator().manual_seed(0)
    label = torch.randint(-3, 9, (2, 3, 7, 5), generator=g)
    label[0, 0, 0] = 255
    label[1, 2, 3, 4] = 2**40
    got = label_counts(label, 6)
    assert got.dtype == torch.float64 and got.shape == (6,)
    assert got.tolist() == _ref(label, 6)


def test_value_label_counts_empty_and_absent_classes() -> None:
    assert label_counts(torch.zeros(0, dtype=torch.long), 3).tolist() == [0.0, 0.0, 0.0]
    assert label_counts(torch.full((4, 4), 2), 5).tolist() == [0.0, 0.0, 16.0, 0.0, 0.0]
