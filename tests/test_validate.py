"""The shared argument checks: messages name the argument, the expectation and the input."""

from __future__ import annotations

import pytest
import torch

from dastc import _validate as V
from dastc import set_value_checks, value_checks


def test_check_tensor_messages():
    with pytest.raises(
        ValueError, match=r"clip: expected shape \(B, T, C, H, W\) float, got \(2, 3\)"
    ):
        V.check_float(torch.zeros(2, 3), "clip", ("B T C H W",))
    with pytest.raises(
        TypeError, match=r"label: expected shape \(B, H, W\) long, got \(1, 2, 2\) float32"
    ):
        V.check_long(torch.zeros(1, 2, 2), "label", ("B H W",))
    with pytest.raises(TypeError, match="mask"):
        V.check_bool(torch.zeros(1, 2, 2), "mask", ("B H W",))
    with pytest.raises(TypeError, match="x: expected a tensor"):
        V.check_rank([1, 2], "x", ("B",))
    assert V.check_long(torch.zeros(1, 2, 2, dtype=torch.long), "label", ("B H W",)).shape == (
        1,
        2,
        2,
    )


def test_check_labels_and_switch():
    y = torch.tensor([[0, 1, 255, 3]])
    V.check_labels(y, "y", 4, 255)
    with pytest.raises(ValueError, match=r"y: expected values in \[0, 3\) .*got \[3\]"):
        V.check_labels(y, "y", 3, 255)
    with value_checks(False):
        V.check_labels(y, "y", 3, 255)  # skipped
    assert V.value_checks_enabled()
    set_value_checks(False)
    try:
        V.check_finite(torch.tensor([float("nan")]), "x")
    finally:
        set_value_checks(True)
    with pytest.raises(ValueError, match="x: expected finite"):
        V.check_finite(torch.tensor([1.0, float("inf")]), "x")


def test_scalar_checks():
    with pytest.raises(ValueError, match=r"p: expected a value in \(0, 1\]"):
        V.check_unit_interval(0.0, "p", low_open=True)
    with pytest.raises(TypeError, match="p"):
        V.check_unit_interval("0.5", "p")
    with pytest.raises(ValueError, match="tau"):
        V.check_positive(float("inf"), "tau")
    with pytest.raises(ValueError, match="ignore_index"):
        V.check_ignore_index(3, 5)
    with pytest.raises(ValueError, match="num_classes"):
        V.check_num_classes(True)


def test_shape_agreement_checks():
    a, b = torch.zeros(2, 3, 4, 5), torch.zeros(2, 3, 4, 6)
    with pytest.raises(ValueError, match=r"b: expected the same shape as a \(2, 3, 4, 5\)"):
        V.check_same_shape(a, "a", b, "b")
    with pytest.raises(ValueError, match=r"b: expected \(B, T\) = \(2, 3\)"):
        V.check_dims(a, "a", [0, 1], torch.zeros(2, 2), "b", [0, 1], "(B, T)")
    with pytest.raises(ValueError, match="c: expected a tensor on"):
        V.check_same_device(("a", a), ("c", torch.zeros(1, device="meta")))
    with pytest.raises(ValueError, match="x: expected a non-empty"):
        V.check_nonempty(torch.zeros(0, 3), "x")


@pytest.mark.parametrize("ignore", [255, -1, 4, 0])
def test_check_labels_matches_a_plain_membership_test(ignore):
    """The min/max and histogram fast paths accept exactly what the set test
    {0..K-1} ∪ {ignore} accepts, with values around K, around ignore and far above."""
    g = torch.Generator().manual_seed(ignore + 7)
    pool = torch.tensor(sorted({*range(-3, 9), ignore - 1, ignore, ignore + 1, 1 << 21}))
    for _ in range(400):
        n = int(torch.randint(1, 6, (1,), generator=g))
        y = pool[torch.randint(0, len(pool), (n,), generator=g)]
        if int(torch.randint(0, 2, (1,), generator=g)):  # mostly valid, ignored pixels present
            y = torch.cat([y, torch.full((3,), ignore), torch.arange(4)])
        ok = all(0 <= v < 4 or v == ignore for v in y.tolist())
        if ok:
            V.check_labels(y, "y", 4, ignore)
        else:
            with pytest.raises(ValueError, match="y: expected values"):
                V.check_labels(y, "y", 4, ignore)
