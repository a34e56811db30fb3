"""Argument checks shared by every public entry point of dastc.

Each check raises ``ValueError`` (shape, value, device) or ``TypeError``
(dtype) with a message that names the argument, what was expected and what
was given, e.g.::

    ValueError: src_label: expected shape (B, T, H, W) or (B, H, W) long, got (2, 3, 64) int64

Shape, dtype and device checks read only tensor metadata and never touch the
device. *Value* checks (label range, finite values) must read the data, which
costs one device synchronisation; they run by default and can be switched off
for production loops with :func:`set_value_checks` (they are skipped
automatically while ``torch.compile`` traces).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

__all__ = [
    "set_value_checks",
    "value_checks",
    "value_checks_enabled",
    "describe",
    "check_tensor",
    "check_rank",
    "check_float",
    "check_long",
    "check_bool",
    "check_same_shape",
    "check_same_device",
    "check_dims",
    "check_labels",
    "check_finite",
    "check_num_classes",
    "check_ignore_index",
    "check_unit_interval",
    "check_probability",
    "check_positive",
    "check_nonempty",
]

_VALUE_CHECKS = True


def set_value_checks(enabled: bool) -> None:
    """Turn the data-reading checks (label range, finite values) on or off globally.

    Args:
        enabled: ``True`` (default at import) to check values, ``False`` to skip
            the checks and their device synchronisation.
    """
    global _VALUE_CHECKS
    _VALUE_CHECKS = bool(enabled)


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Context manager form of :func:`set_value_checks`, restoring the old setting."""
    global _VALUE_CHECKS
    old = _VALUE_CHECKS
    _VALUE_CHECKS = bool(enabled)
    try:
        yield
    finally:
        _VALUE_CHECKS = old


def value_checks_enabled() -> bool:
    """Whether value checks run now (off while ``torch.compile`` traces)."""
    if torch.compiler.is_compiling():
        return False
    return _VALUE_CHECKS


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype dastc computes in for a floating ``dtype``: float32 for float16 and
    bfloat16 (results go back to the input's dtype where an op says so), the dtype
    itself for float32 and float64."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def upcast(x: Tensor) -> Tensor:
    """``x`` in :func:`compute_dtype` (no copy for float32 / float64)."""
    return x.to(compute_dtype(x.dtype))


def check_size_pair(value: object, name: str, minimum: int = 1) -> tuple[int, int]:
    """``value`` as an ``(H, W)`` pair of ints, each ``>= minimum`` (a tuple, list or
    ``torch.Size``; bools refused), or a ``ValueError`` naming ``name``."""
    if (
        not isinstance(value, (tuple, list, torch.Size))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)
    ):
        raise ValueError(
            f"{name}: expected a pair of ints (H, W), each >= {minimum}, got {value!r}"
        )
    return int(value[0]), int(value[1])


def describe(x: object) -> str:
    """Short description of ``x`` for error messages: ``(2, 3, 64) float32 on cpu``."""
    if isinstance(x, Tensor):
        dtype = str(x.dtype).replace("torch.", "")
        return f"{tuple(x.shape)} {dtype} on {x.device}"
    return f"{type(x).__name__} {x!r}"[:200]


def _kind_name(kind: str | None) -> str:
    return {"float": " float", "long": " long", "bool": " bool", None: ""}[kind]


def check_tensor(
    x: object,
    name: str,
    layouts: Sequence[str],
    kind: str | None = None,
) -> Tensor:
    """Check that ``x`` is a tensor whose rank matches one of ``layouts``.

    Args:
        x: the argument.
        name: the argument's name, used in the message.
        layouts: allowed layouts, e.g. ``("B T C H W", "B C H W")``; the rank of
            each layout is its number of letters.
        kind: ``"float"`` (any floating dtype), ``"long"`` (``torch.long``),
            ``"bool"`` or ``None`` (any dtype).

    Returns:
        ``x``, typed as a tensor.

    Raises:
        TypeError: ``x`` is not a tensor, or has the wrong dtype.
        ValueError: the rank matches none of ``layouts``.
    """
    expected = " or ".join(f"({', '.join(lay.split())})" for lay in layouts) + _kind_name(kind)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor of shape {expected}, got {describe(x)}")
    ranks = [len(lay.split()) for lay in layouts]
    if x.dim() not in ranks:
        raise ValueError(f"{name}: expected shape {expected}, got {describe(x)}")
    if kind == "float" and not x.is_floating_point():
        raise TypeError(f"{name}: expected shape {expected}, got {describe(x)}")
    if kind == "long" and x.dtype != torch.long:
        raise TypeError(f"{name}: expected shape {expected}, got {describe(x)}")
    if kind == "bool" and x.dtype != torch.bool:
        raise TypeError(f"{name}: expected shape {expected}, got {describe(x)}")
    return x


def check_rank(x: object, name: str, layouts: Sequence[str]) -> Tensor:
    """:func:`check_tensor` with any dtype."""
    return check_tensor(x, name, layouts, None)


def check_float(x: object, name: str, layouts: Sequence[str]) -> Tensor:
    """:func:`check_tensor` for a floating-point tensor."""
    return check_tensor(x, name, layouts, "float")


def check_long(x: object, name: str, layouts: Sequence[str]) -> Tensor:
    """:func:`check_tensor` for a ``torch.long`` tensor (label maps)."""
    return check_tensor(x, name, layouts, "long")


def check_bool(x: object, name: str, layouts: Sequence[str]) -> Tensor:
    """:func:`check_tensor` for a ``torch.bool`` tensor (masks)."""
    return check_tensor(x, name, layouts, "bool")


def check_same_shape(a: Tensor, a_name: str, b: Tensor, b_name: str) -> None:
    """Raise ``ValueError`` unless ``a.shape == b.shape`` (no broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{b_name}: expected the same shape as {a_name} {tuple(a.shape)}, got {describe(b)}"
        )


def check_dims(
    a: Tensor,
    a_name: str,
    a_dims: Sequence[int],
    b: Tensor,
    b_name: str,
    b_dims: Sequence[int],
    what: str,
) -> None:
    """Raise ``ValueError`` unless ``a.shape[a_dims] == b.shape[b_dims]``.

    ``what`` names the dimensions compared (e.g. ``"(B, T, H, W)"``).
    """
    sa = tuple(a.shape[d] for d in a_dims)
    sb = tuple(b.shape[d] for d in b_dims)
    if sa != sb:
        raise ValueError(
            f"{b_name}: expected {what} = {sa} to match {a_name} {tuple(a.shape)}, "
            f"got {describe(b)}"
        )


def check_same_device(*named: tuple[str, Tensor | None]) -> None:
    """Raise ``ValueError`` unless every given tensor is on the first one's device."""
    ref: tuple[str, Tensor] | None = None
    for name, t in named:
        if t is None:
            continue
        if ref is None:
            ref = (name, t)
        elif t.device != ref[1].device:
            raise ValueError(
                f"{name}: expected a tensor on {ref[1].device} (the device of {ref[0]}), "
                f"got {describe(t)}"
            )


def check_num_classes(num_classes: object, name: str = "num_classes") -> int:
    """Check a class count: an ``int`` ≥ 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {num_classes!r}")
    return num_classes


def check_ignore_index(ignore_index: object, num_classes: int, name: str = "ignore_index") -> int:
    """Check ``ignore_index``: an ``int`` outside ``[0, num_classes)``."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"{name}: expected an int, got {ignore_index!r}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"{name}: expected a value outside [0, {num_classes}) (a real class id), "
            f"got {ignore_index}"
        )
    return ignore_index


def check_unit_interval(
    value: object, name: str, *, low_open: bool = False, high_open: bool = False
) -> float:
    """Check a float in ``[0, 1]`` (ends open as requested)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float, got {value!r}")
    v = float(value)
    lo_ok = v > 0 if low_open else v >= 0
    hi_ok = v < 1 if high_open else v <= 1
    if not (lo_ok and hi_ok):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a value in {lo}0, 1{hi}, got {value!r}")
    return v


def check_probability(value: object, name: str) -> float:
    """Check a float in ``[0, 1]``."""
    return check_unit_interval(value, name)


def check_positive(value: object, name: str) -> float:
    """Check a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float > 0, got {value!r}")
    v = float(value)
    if not (v > 0 and v < float("inf")):
        raise ValueError(f"{name}: expected a finite value > 0, got {value!r}")
    return v


def check_labels(labels: Tensor, name: str, num_classes: int, ignore_index: int) -> None:
    """Raise ``ValueError`` if any label is outside ``[0, num_classes)`` and not ``ignore_index``.

    Reads the data (one min/max pass, and a histogram pass when ignored pixels are
    present; a device synchronisation each); skipped when value checks are off.
    """
    if not value_checks_enabled() or labels.numel() == 0:
        return
    # Fast path: one min/max read pass. With ignored pixels present (the max is then
    # usually ignore_index), one histogram pass over the values 0..max says whether any
    # value besides ignore_index lies outside [0, K) (cheaper than masking the ignored
    # pixels first).
    lo, hi = torch.aminmax(labels)
    if bool((lo >= 0) & (hi < num_classes)):
        return
    top = int(hi)
    if int(lo) >= 0 and top <= max(num_classes, ignore_index, 0) and top < 1 << 20:
        counts = torch.bincount(labels.reshape(-1), minlength=top + 1)
        outside = counts[num_classes:].sum()
        if num_classes <= ignore_index < counts.numel():
            outside = outside - counts[ignore_index]
        if not bool(outside > 0):
            return
    bad = ((labels < 0) | (labels >= num_classes)) & (labels != ignore_index)
    if bool(bad.any()):
        values = torch.unique(labels[bad])[:8].tolist()
        raise ValueError(
            f"{name}: expected values in [0, {num_classes}) or ignore_index={ignore_index}, "
            f"got {values} (shape {tuple(labels.shape)})"
        )


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or inf (one device synchronisation)."""
    if not value_checks_enabled() or x.numel() == 0 or not x.is_floating_point():
        return
    lo, hi = torch.aminmax(x.detach())  # one read pass; NaN and +-inf reach min or max
    if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
        raise ValueError(f"{name}: expected finite values, got NaN or inf in {describe(x)}")


def check_nonempty(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` for a tensor with a zero-size dimension (an empty batch)."""
    if x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got {describe(x)}")
