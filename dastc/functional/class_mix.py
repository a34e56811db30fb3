"""Bidirectional class mixing of clips (ClassMix over time), the functional core.

For each clip a set of whole classes is drawn once, from the valid classes
present in its label map, and its pixels in *every* frame are pasted onto the
other domain's clip, so a pasted object stays pasted as it moves.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from dastc import _opaque
from dastc import _validate as V
from dastc._rank import as_clip, as_input_rank

__all__ = ["ClipMixOutput", "bidirectional_clip_mix", "sample_class_masks"]

_CLIP = ("B T C H W", "B C H W")
_LABEL = ("B T H W", "B H W")


class ClipMixOutput(NamedTuple):
    """Result of :func:`bidirectional_clip_mix` / :class:`dastc.BidirectionalClipMix`.

    Every field has the rank of the input (clip ``(B, T, ...)`` or image ``(B, ...)``).

    Attributes:
        s2t_clip: float ``(B, T, C, H, W)``, source classes pasted on the target clip.
        s2t_label: long ``(B, T, H, W)``, source label inside the mask, target label outside.
        s2t_weight: float ``(B, T, H, W)``, 1 inside the mask, ``tgt_weight`` outside.
        s2t_mask: bool ``(B, T, H, W)``, True where the pixel comes from the source clip.
        t2s_clip: float ``(B, T, C, H, W)``, target classes pasted on the source clip.
        t2s_label: long ``(B, T, H, W)``, target label inside the mask, source label outside.
        t2s_weight: float ``(B, T, H, W)``, ``tgt_weight`` inside the mask, 1 outside.
        t2s_mask: bool ``(B, T, H, W)``, True where the pixel comes from the target clip.
        s2t_flow: float ``(B, T, 2, H, W)`` mixed like ``s2t_clip``, or None without flows.
        t2s_flow: float ``(B, T, 2, H, W)`` mixed like ``t2s_clip``, or None without flows.
    """

    s2t_clip: Tensor
    s2t_label: Tensor
    s2t_weight: Tensor
    s2t_mask: Tensor
    t2s_clip: Tensor
    t2s_label: Tensor
    t2s_weight: Tensor
    t2s_mask: Tensor
    s2t_flow: Tensor | None = None
    t2s_flow: Tensor | None = None


# Widest per-clip class table indexed by the raw labels; a farther ignore_index is mapped.
_MAX_TABLE_EXTRA = 1 << 16


class _LabelTable(NamedTuple):
    """Each pixel's column in a per-clip class table: class ``k`` is column ``first + k``."""

    columns: Tensor  # (B, N) long
    width: int
    first: int


def _label_table(labels: Tensor, num_classes: int, ignore_index: int) -> _LabelTable:
    """Columns of the per-clip class table, read from the labels without a mapping pass.

    With ``K <= ignore_index`` (the usual 255) the labels are the columns
    themselves (a view); with a negative ``ignore_index`` one subtraction puts it
    in column 0. Only an ``ignore_index`` more than ``2**16`` away from the
    classes falls back to mapping every non-class value to column ``K``.
    """
    B = labels.shape[0]
    flat = labels.reshape(B, -1)
    if num_classes <= ignore_index < num_classes + _MAX_TABLE_EXTRA:
        return _LabelTable(flat, ignore_index + 1, 0)
    if -_MAX_TABLE_EXTRA < ignore_index < 0:
        return _LabelTable(flat - ignore_index, num_classes - ignore_index, -ignore_index)
    valid = (flat >= 0) & (flat < num_classes)
    return _LabelTable(torch.where(valid, flat, num_classes), num_classes + 1, 0)


def _present_classes(table: _LabelTable, num_classes: int) -> Tensor:
    """``(B, K)`` bool: class k occurs in clip b, from one ``scatter_add_`` count.

    The counts are float32: adding ones never brings a positive count back to 0,
    so ``count > 0`` is exact however many pixels a clip has.
    """
    return _table_counts(table)[:, table.first : table.first + num_classes] > 0


def _table_counts(table: _LabelTable) -> Tensor:
    """float32 ``(B, width)``: pixels per column of the per-clip class table (the eager
    scatter, also inside compiled graphs)."""
    return _opaque.class_counts(table.columns, table.width)


def _checked_present_classes(
    labels: Tensor, name: str, num_classes: int, ignore_index: int
) -> tuple[_LabelTable, Tensor]:
    """``(table, present)`` of :func:`_class_masks`, with the label check of
    :func:`dastc._validate.check_labels` read from the class table instead of the labels.

    CPU only, for an ``ignore_index`` whose table holds the raw labels: a value
    beyond the table makes ``scatter_add_`` raise, a value inside it but neither a
    class nor ``ignore_index`` leaves a count in a column that must stay empty.
    Either raises :class:`_BadLabels`; the caller then runs the plain check, which
    raises its usual message.
    """
    table = _label_table(labels, num_classes, ignore_index)
    try:
        counts = _table_counts(table)
    except RuntimeError:  # index out of the table: a value below or above it
        counts = None
    if counts is not None:
        present = counts[:, table.first : table.first + num_classes] > 0
        stray = counts > 0  # exact: a count of ones never rounds back to 0
        stray[:, table.first : table.first + num_classes] = False
        stray[:, table.first + ignore_index] = False  # the ignore column
        if not bool(stray.any()):
            return table, present
    raise _BadLabels(name)


class _BadLabels(Exception):
    """A label map failed the check of :func:`_checked_present_classes` (its name in args)."""


def _fused_label_check(labels: Tensor, num_classes: int, ignore_index: int) -> bool:
    """Whether :func:`_checked_present_classes` can check ``labels`` (value checks on, CPU,
    an ``ignore_index`` whose table holds the raw labels)."""
    return (
        V.value_checks_enabled()
        and labels.device.type == "cpu"
        and -_MAX_TABLE_EXTRA < ignore_index < num_classes + _MAX_TABLE_EXTRA
    )


def _draw(
    present: Tensor,
    class_fraction: float,
    generator: torch.Generator | None,
    class_count: int | None = None,
) -> Tensor:
    """Choose ``round_half_up(class_fraction * n_present)`` present classes per row, at random
    (``min(class_count, n_present)`` with a ``class_count``).

    Random scores over the present classes, then the top-k by rank: no loop, no sync.
    """
    B, K = present.shape
    n = present.sum(1, dtype=torch.float64 if present.device.type != "mps" else torch.float32)
    if class_count is None:
        k = torch.floor(n * class_fraction + 0.5)
    else:
        k = n.clamp_max(class_count)
    scores = torch.rand(B, K, generator=generator, device=present.device)
    scores = torch.where(present, scores, -1.0)
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
    return present & (rank < k.unsqueeze(1))


def sample_class_masks(
    labels: Tensor,
    num_classes: int,
    class_fraction: float = 0.5,
    *,
    ignore_index: int = 255,
    generator: torch.Generator | None = None,
    always: Tensor | None = None,
    exclude: Tensor | None = None,
    class_count: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw whole classes per clip and return the mask of their pixels in every frame.

    For each clip ``b``: ``chosen_b`` is a uniformly random subset of the valid
    classes present in ``labels[b]`` (``ignore_index`` is never drawn) of size
    ``round_half_up(class_fraction * n_present)``, or ``min(class_count, n_present)``
    with a ``class_count``; ``mask[b] = isin(labels[b], chosen_b)``.

    Args:
        labels: long ``(B, T, H, W)`` or ``(B, H, W)``, values in ``[0, K)`` or ``ignore_index``.
        num_classes: ``K``.
        class_fraction: fraction of the present classes to draw, in ``[0, 1]``.
        ignore_index: label value that is never drawn.
        generator: optional ``torch.Generator`` on ``labels.device``.
        always: optional bool ``(K,)``; these classes are added whenever present
            (e.g. rare classes), on top of the random draw.
        exclude: optional bool ``(B, K)``; these classes are never drawn for clip b.
        class_count: optional int ``>= 1``: draw this many classes (all when fewer are
            present) instead of a fraction, as the public DA-STC code does (2).

    Returns:
        ``(mask, chosen)``: bool mask with the shape of ``labels`` and bool
        ``(B, K)`` of the classes drawn per clip.

    Raises:
        ValueError: bad shape, value or fraction.
        TypeError: ``labels`` is not long.
        RuntimeError: with value checks off (:func:`dastc.set_value_checks`), a label
            below ``min(0, ignore_index)`` or above ``max(K - 1, ignore_index)``
            indexes past the per-clip class table (a device-side assert on CUDA).

    Examples:
        >>> labels = torch.tensor([[[0, 1], [2, 255]]])
        >>> g = torch.Generator().manual_seed(0)
        >>> mask, chosen = sample_class_masks(labels, 3, 0.5, generator=g)
        >>> mask.shape, int(chosen.sum())
        (torch.Size([1, 2, 2]), 2)
    """
    K = V.check_num_classes(num_classes)
    V.check_ignore_index(ignore_index, K)
    V.check_long(labels, "labels", _LABEL)
    V.check_nonempty(labels, "labels")
    V.check_labels(labels, "labels", K, ignore_index)
    cf = V.check_unit_interval(class_fraction, "class_fraction")
    always_m = _check_class_set(always, "always", K, None, labels.device)
    exclude_m = _check_class_set(exclude, "exclude", K, labels.shape[0], labels.device)
    count = _check_class_count(class_count)
    mask, chosen, _ = _class_masks(
        labels, K, ignore_index, cf, generator, always_m, exclude_m, count
    )
    return mask, chosen


def _check_class_count(class_count: int | None) -> int | None:
    if class_count is None:
        return None
    if isinstance(class_count, bool) or not isinstance(class_count, int) or class_count < 1:
        raise ValueError(f"class_count: expected None or an int >= 1, got {class_count!r}")
    return class_count


def _check_class_set(
    x: Tensor | None, name: str, num_classes: int, batch: int | None, device: torch.device
) -> Tensor | None:
    if x is None:
        return None
    layout = ("K",) if batch is None else ("B K",)
    V.check_bool(x, name, layout)
    want = (num_classes,) if batch is None else (batch, num_classes)
    if tuple(x.shape) != want:
        raise ValueError(f"{name}: expected shape {want} bool, got {V.describe(x)}")
    if x.device != device:
        raise ValueError(f"{name}: expected a tensor on {device}, got {V.describe(x)}")
    return x


def _class_masks(
    labels: Tensor,
    num_classes: int,
    ignore_index: int,
    class_fraction: float,
    generator: torch.Generator | None,
    always: Tensor | None,
    exclude: Tensor | None,
    class_count: int | None = None,
    presence: tuple[_LabelTable, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(mask, chosen, drawn)``: ``drawn`` the random draw, ``chosen`` it plus ``always``.

    ``presence`` is the ``(table, present)`` pair when already computed (and checked).
    """
    if presence is None:
        table = _label_table(labels, num_classes, ignore_index)
        present = _present_classes(table, num_classes)
    else:
        table, present = presence
    if exclude is not None:
        present = present & ~exclude
    drawn = _draw(present, class_fraction, generator, class_count)
    chosen = drawn if always is None else drawn | (present & always)
    # Every column but the classes' (ignore_index, unused values) stays False.
    lookup = chosen.new_zeros(labels.shape[0], table.width)
    lookup[:, table.first : table.first + num_classes] = chosen
    mask = _opaque.lookup_columns(lookup, table.columns).reshape(labels.shape)
    return mask, chosen, drawn


def bidirectional_clip_mix(
    src_clip: Tensor,
    src_label: Tensor,
    tgt_clip: Tensor,
    tgt_label: Tensor,
    tgt_weight: Tensor | None = None,
    *,
    num_classes: int,
    ignore_index: int = 255,
    class_fraction: float = 0.5,
    generator: torch.Generator | None = None,
    src_flow: Tensor | None = None,
    tgt_flow: Tensor | None = None,
    tgt_confidence: Tensor | None = None,
    paste_threshold: float | None = None,
    rare_classes: Tensor | None = None,
    exclude_s2t_classes: bool = False,
    class_count: int | None = None,
    rare_t2s: bool = True,
) -> ClipMixOutput:
    """Paste source classes on the target clip and target classes on the source clip.

    With ``s2t_mask[b] = isin(src_label[b], chosen_b)`` for a class set drawn once
    per clip (see :func:`sample_class_masks`)::

        s2t_clip   = where(s2t_mask, src_clip, tgt_clip)     # s2t_label, s2t_flow likewise
        s2t_weight = where(s2t_mask, 1, tgt_weight)
        t2s_clip   = where(t2s_mask, tgt_clip, src_clip)     # classes drawn from tgt_label
        t2s_weight = where(t2s_mask, tgt_weight, 1)

    The source draw comes first from ``generator``, then the target draw.

    Args:
        src_clip: float ``(B, T, C, H, W)`` or ``(B, C, H, W)`` labelled source clips.
        src_label: long ``(B, T, H, W)`` / ``(B, H, W)`` source labels.
        tgt_clip: float, same shape as ``src_clip``: unlabelled target clips.
        tgt_label: long, same shape as ``src_label``: target pseudo-labels.
        tgt_weight: optional float, same shape as ``tgt_label``: pseudo-label weights in
            ``[0, 1]``; None means all ones.
        num_classes: ``K``.
        ignore_index: label value never drawn (default 255).
        class_fraction: fraction of present classes drawn per clip (default 0.5).
        generator: optional ``torch.Generator`` on the inputs' device.
        src_flow: optional float ``(B, T, 2, H, W)`` / ``(B, 2, H, W)`` flow of the source clip.
        tgt_flow: optional float flow of the target clip (give both or neither).
        tgt_confidence: optional float like ``tgt_label``: the per-pixel confidence
            that ``paste_threshold`` reads (required with it).
        paste_threshold: optional; only target pixels whose ``tgt_confidence``
            exceeds it are pasted on the source clip (the public code uses 0.9).
            Off by default.
        rare_classes: optional bool ``(K,)``: classes always pasted when present.
        exclude_s2t_classes: if True, the target draw skips the classes drawn at
            random on the source side (not the ``rare_classes`` added to them), as
            the public code does. Off by default.
        class_count: optional int ``>= 1``: each side draws this many classes (all
            when fewer are present) instead of ``class_fraction`` of them; the
            public DA-STC code draws 2. ``rare_classes`` come on top.
        rare_t2s: whether ``rare_classes`` are also always pasted target → source
            (default); the public code adds its tail classes on the source side only.

    Returns:
        :class:`ClipMixOutput` with the rank of the input.

    Raises:
        ValueError: mismatched shapes or devices, out-of-range labels or arguments,
            ``paste_threshold`` without ``tgt_confidence`` (``tgt_weight`` is a
            per-clip quality weight: thresholding it would paste all or nothing).
        TypeError: float labels, integer clips, a non-bool ``rare_classes``.
        RuntimeError: with value checks off (:func:`dastc.set_value_checks`), a label
            below ``min(0, ignore_index)`` or above ``max(K - 1, ignore_index)``
            indexes past the per-clip class table (a device-side assert on CUDA).

    Examples:
        >>> src, tgt = torch.rand(2, 3, 3, 8, 8), torch.rand(2, 3, 3, 8, 8)
        >>> ys, yt = torch.randint(0, 4, (2, 3, 8, 8)), torch.randint(0, 4, (2, 3, 8, 8))
        >>> out = bidirectional_clip_mix(src, ys, tgt, yt, num_classes=4)
        >>> out.s2t_clip.shape, out.s2t_mask.dtype
        (torch.Size([2, 3, 3, 8, 8]), torch.bool)
    """
    K = V.check_num_classes(num_classes)
    V.check_ignore_index(ignore_index, K)
    cf = V.check_unit_interval(class_fraction, "class_fraction")
    _check_mix_inputs(src_clip, src_label, tgt_clip, tgt_label, tgt_weight, src_flow, tgt_flow)
    if tgt_confidence is not None:
        V.check_float(tgt_confidence, "tgt_confidence", _LABEL)
        V.check_same_shape(tgt_label, "tgt_label", tgt_confidence, "tgt_confidence")
        V.check_same_device(("tgt_label", tgt_label), ("tgt_confidence", tgt_confidence))
    thr = (
        None
        if paste_threshold is None
        else V.check_unit_interval(paste_threshold, "paste_threshold")
    )
    if thr is not None and tgt_confidence is None:
        raise ValueError(
            "tgt_confidence: paste_threshold needs the per-pixel confidence (B, T, H, W) "
            "(e.g. PseudoLabel.confidence), got None; tgt_weight is not used for it"
        )
    rare = _check_class_set(rare_classes, "rare_classes", K, None, src_label.device)
    count = _check_class_count(class_count)
    # On CPU the label check reads the per-clip class tables the mix counts anyway.
    fused = _fused_label_check(src_label, K, ignore_index)
    if not fused:
        V.check_labels(src_label, "src_label", K, ignore_index)
        V.check_labels(tgt_label, "tgt_label", K, ignore_index)

    was_image = src_clip.dim() == 4
    xs, xt = as_clip(src_clip, 5), as_clip(tgt_clip, 5)
    ys, yt = as_clip(src_label, 4), as_clip(tgt_label, 4)
    w = None if tgt_weight is None else as_clip(tgt_weight, 4)
    conf = None if tgt_confidence is None else as_clip(tgt_confidence, 4)
    fs = None if src_flow is None else as_clip(src_flow, 5)
    ft = None if tgt_flow is None else as_clip(tgt_flow, 5)

    bad_labels = False
    try:
        out = _mix(
            xs,
            ys,
            xt,
            yt,
            w,
            K,
            ignore_index,
            cf,
            generator,
            fs,
            ft,
            conf,
            thr,
            rare,
            exclude_s2t_classes,
            count,
            rare_t2s,
            fused,
        )
    except _BadLabels:
        bad_labels = True
    if bad_labels:  # the plain checks, outside the handler: their message, no chained error
        V.check_labels(src_label, "src_label", K, ignore_index)
        V.check_labels(tgt_label, "tgt_label", K, ignore_index)
        raise AssertionError("unreachable: a bad label passed the plain check")
    if not was_image:
        return out
    return ClipMixOutput(
        *(None if t is None else as_input_rank(t, True) for t in out)  # type: ignore[arg-type]
    )


def _check_mix_inputs(
    src_clip: Tensor,
    src_label: Tensor,
    tgt_clip: Tensor,
    tgt_label: Tensor,
    tgt_weight: Tensor | None,
    src_flow: Tensor | None,
    tgt_flow: Tensor | None,
) -> None:
    V.check_float(src_clip, "src_clip", _CLIP)
    V.check_nonempty(src_clip, "src_clip")
    V.check_float(tgt_clip, "tgt_clip", _CLIP)
    V.check_same_shape(src_clip, "src_clip", tgt_clip, "tgt_clip")
    label_layout = _LABEL[0] if src_clip.dim() == 5 else _LABEL[1]
    V.check_long(src_label, "src_label", (label_layout,))
    V.check_long(tgt_label, "tgt_label", (label_layout,))
    clip_dims = [d for d in range(src_clip.dim()) if d != src_clip.dim() - 3]
    what = "(B, T, H, W)" if src_clip.dim() == 5 else "(B, H, W)"
    V.check_dims(
        src_clip, "src_clip", clip_dims, src_label, "src_label", range(src_label.dim()), what
    )
    V.check_same_shape(src_label, "src_label", tgt_label, "tgt_label")
    if tgt_weight is not None:
        V.check_float(tgt_weight, "tgt_weight", (label_layout,))
        V.check_same_shape(tgt_label, "tgt_label", tgt_weight, "tgt_weight")
    if (src_flow is None) != (tgt_flow is None):
        missing = "tgt_flow" if tgt_flow is None else "src_flow"
        raise ValueError(
            f"{missing}: expected a flow when the other domain's flow is given, got None"
        )
    if src_flow is not None and tgt_flow is not None:
        flow_layout = "B T 2 H W" if src_clip.dim() == 5 else "B 2 H W"
        V.check_float(src_flow, "src_flow", (flow_layout,))
        V.check_float(tgt_flow, "tgt_flow", (flow_layout,))
        ch = src_clip.dim() - 3
        if src_flow.shape[ch] != 2:
            raise ValueError(
                f"src_flow: expected shape ({flow_layout.replace(' ', ', ')}), "
                f"got {V.describe(src_flow)}"
            )
        V.check_dims(src_clip, "src_clip", clip_dims, src_flow, "src_flow", clip_dims, what)
        V.check_same_shape(src_flow, "src_flow", tgt_flow, "tgt_flow")
    V.check_same_device(
        ("src_clip", src_clip),
        ("src_label", src_label),
        ("tgt_clip", tgt_clip),
        ("tgt_label", tgt_label),
        ("tgt_weight", tgt_weight),
        ("src_flow", src_flow),
        ("tgt_flow", tgt_flow),
    )


def _mix(
    xs: Tensor,
    ys: Tensor,
    xt: Tensor,
    yt: Tensor,
    w: Tensor | None,
    num_classes: int,
    ignore_index: int,
    class_fraction: float,
    generator: torch.Generator | None,
    fs: Tensor | None,
    ft: Tensor | None,
    conf: Tensor | None,
    paste_threshold: float | None,
    rare: Tensor | None,
    exclude_s2t: bool,
    class_count: int | None = None,
    rare_t2s: bool = True,
    check_labels: bool = False,
) -> ClipMixOutput:
    """Mixing on clip-rank tensors with validated arguments (the compiled core).

    ``check_labels`` checks both label maps from their class tables before any
    draw (:func:`_checked_present_classes`; a host sync each).
    """
    src_presence = tgt_presence = None
    if check_labels:
        src_presence = _checked_present_classes(ys, "src_label", num_classes, ignore_index)
        tgt_presence = _checked_present_classes(yt, "tgt_label", num_classes, ignore_index)
    s2t_mask, _, s2t_drawn = _class_masks(
        ys, num_classes, ignore_index, class_fraction, generator, rare, None, class_count,
        src_presence,
    )  # fmt: skip
    t2s_mask, _, _ = _class_masks(
        yt,
        num_classes,
        ignore_index,
        class_fraction,
        generator,
        rare if rare_t2s else None,
        s2t_drawn if exclude_s2t else None,
        class_count,
        tgt_presence,
    )
    if paste_threshold is not None and conf is not None:
        t2s_mask = t2s_mask & (conf > paste_threshold)
    if w is None:
        w = torch.ones(yt.shape, dtype=torch.float32, device=yt.device)
    one = torch.ones((), dtype=w.dtype, device=w.device)
    m5s, m5t = s2t_mask.unsqueeze(2), t2s_mask.unsqueeze(2)
    return ClipMixOutput(
        s2t_clip=torch.where(m5s, xs, xt),
        s2t_label=torch.where(s2t_mask, ys, yt),
        s2t_weight=torch.where(s2t_mask, one, w),
        s2t_mask=s2t_mask,
        t2s_clip=torch.where(m5t, xt, xs),
        t2s_label=torch.where(t2s_mask, yt, ys),
        t2s_weight=torch.where(t2s_mask, w, one),
        t2s_mask=t2s_mask,
        s2t_flow=None if fs is None or ft is None else torch.where(m5s, fs, ft),
        t2s_flow=None if fs is None or ft is None else torch.where(m5t, ft, fs),
    )
