"""EMATeacher: an exponential moving average of the student that makes pseudo-labels."""

from __future__ import annotations

import copy
import sys
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dastc._validate import (
    check_float,
    check_nonempty,
    check_size_pair,
    check_unit_interval,
    describe,
)
from dastc.functional.pseudo_label import PseudoLabel, pseudo_label

__all__ = ["EMATeacher"]

# (dict holding the tensor, key): a slot of module._parameters or module._buffers.
_Slot = tuple[dict[str, Any], str]


def _unwrap(module: nn.Module) -> nn.Module:
    """Strip DistributedDataParallel / DataParallel (``.module``) and compile (``._orig_mod``)."""
    compiled: tuple[type, ...] = ()
    if "torch._dynamo" in sys.modules:  # a compiled module exists only once dynamo is loaded
        from torch._dynamo.eval_frame import OptimizedModule

        compiled = (OptimizedModule,)
    parallel = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while True:
        if compiled and isinstance(module, compiled):
            module = module._orig_mod  # type: ignore[assignment]
        elif isinstance(module, parallel):
            module = module.module
        else:
            return module


def _slots(module: nn.Module) -> dict[str, _Slot]:
    """Name -> slot of every parameter and buffer (``named_parameters``, then ``named_buffers``)."""
    out: dict[str, _Slot] = {}
    for prefix, sub in module.named_modules(remove_duplicate=False):
        for kind in (sub._parameters, sub._buffers):
            for key, t in kind.items():
                if t is None:
                    continue
                name = f"{prefix}.{key}" if prefix else key
                out.setdefault(name, (kind, key))
    # Keep only the canonical names (shared tensors are visited once, as in named_parameters).
    names = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    return {n: out[n] for n in names}


class EMATeacher(nn.Module):
    """A frozen exponential moving average of a student network (mean teacher).

    .. math::

        \\theta_t \\leftarrow m_t \\, \\theta_t + (1 - m_t) \\, \\theta_s, \\qquad
        m_t = \\begin{cases} \\min(1 - 1/(t + 1), m) & \\text{warmup} \\\\
        m & \\text{otherwise} \\end{cases}

    for every floating parameter and buffer, where ``t`` counts the calls of
    :meth:`update` from 0 (the DACS/DAFormer warm-up: the first update copies the
    student). Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) are
    copied. One update is a single fused multi-tensor ``torch._foreach_lerp_``
    (and one ``torch._foreach_copy_``), with the momentum a Python float computed
    from a host-side step counter: no Python loop over parameters and no device
    synchronisation. The student's parameter/buffer slots are looked up once per
    student object and reused (tensors reassigned to a slot are picked up; if you
    replace a *submodule* of the student, call :meth:`update` with
    ``refresh=True`` once).

    The teacher, :attr:`model`, is a deep copy of the student in eval mode with
    ``requires_grad=False``; it stays in eval mode even if :meth:`train` is called.
    Calling the teacher calls :attr:`model`.

    Args:
        student: the network to follow. ``DistributedDataParallel``/``DataParallel``
            wrappers and ``torch.compile`` wrappers are unwrapped (here and in
            :meth:`update`).
        momentum: the EMA momentum ``m`` in ``[0, 1]`` (1 freezes the teacher).
        warmup: use ``min(1 - 1/(t + 1), momentum)`` at update ``t``.
        foreach: use the fused multi-tensor path. ``None`` (default) uses it when the
            teacher sits on one device and the student on the same one, and falls
            back to a per-tensor loop otherwise (e.g. a teacher kept on the CPU).

    Raises:
        ValueError: ``momentum`` is outside ``[0, 1]``.
        TypeError: ``student`` is not an ``nn.Module``.

    Examples:
        >>> student = torch.nn.Conv2d(3, 5, 1)
        >>> teacher = EMATeacher(student, momentum=0.99, warmup=True)
        >>> teacher.update(student)
        >>> teacher.pseudo_label(torch.randn(2, 3, 8, 8)).label.shape
        torch.Size([2, 8, 8])
    """

    def __init__(
        self,
        student: nn.Module,
        momentum: float = 0.999,
        warmup: bool = False,
        *,
        foreach: bool | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(student, nn.Module):
            raise TypeError(f"student: expected an nn.Module, got {describe(student)}")
        self.momentum = check_unit_interval(momentum, "momentum")
        self.warmup = bool(warmup)
        self.foreach = foreach
        self.step = 0
        self.model: nn.Module = copy.deepcopy(_unwrap(student))
        """The EMA copy of the student: eval mode, no gradients."""
        for p in self.model.parameters():
            p.requires_grad_(False)
            p.grad = None
        self.model.eval()
        # Slots (dict, key) of the teacher's and the student's tensors, split into
        # floating (EMA) and other (copied); reading a slot is a dict lookup, so
        # tensors replaced by .to() or load_state_dict(assign=True) are picked up.
        self._teacher_slots: tuple[list[_Slot], list[_Slot]] | None = None
        self._student_ref: weakref.ref[nn.Module] | None = None
        self._student_slots: tuple[list[_Slot], list[_Slot]] = ([], [])

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        """The step counter, stored in :meth:`state_dict` under ``"_extra_state"``."""
        return {"step": self.step}

    def set_extra_state(self, state: Any) -> None:
        """Restore the step counter from :meth:`state_dict`."""
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError(f"state_dict: expected the EMATeacher extra state, got {state!r}")
        self.step = int(state["step"])

    def train(self, mode: bool = True) -> EMATeacher:
        """Set ``self.training``; the EMA copy :attr:`model` always stays in eval mode."""
        super().train(mode)
        self.model.eval()
        return self

    # ------------------------------------------------------------------ update
    def current_momentum(self) -> float:
        """The momentum the next :meth:`update` uses (a Python float)."""
        if self.warmup:
            return min(1.0 - 1.0 / (self.step + 1), self.momentum)
        return self.momentum

    def _teacher_named(self) -> dict[str, Tensor]:
        named: dict[str, Tensor] = dict(self.model.named_parameters())
        named.update(self.model.named_buffers())
        return named

    def _split(self, slots: dict[str, _Slot]) -> tuple[list[_Slot], list[_Slot]]:
        """Slots in the teacher's order, split into floating and other tensors."""
        named = self._teacher_named()
        floats = [slots[n] for n, t in named.items() if t.is_floating_point()]
        others = [slots[n] for n, t in named.items() if not t.is_floating_point()]
        return floats, others

    def _teacher_lists(self) -> tuple[list[Tensor], list[Tensor]]:
        if self._teacher_slots is None:
            self._teacher_slots = self._split(_slots(self.model))
        floats, others = self._teacher_slots
        return [d[k] for d, k in floats], [d[k] for d, k in others]

    def _check_student(self, student: nn.Module) -> dict[str, _Slot]:
        """Name -> slot of the student; ValueError naming the first mismatching tensor."""
        slots = _slots(student)
        t_named = self._teacher_named()
        for name, t in t_named.items():
            if name not in slots:
                raise ValueError(
                    f"student: has no parameter or buffer {name!r} (the teacher has "
                    f"{tuple(t.shape)} {t.dtype}); the student no longer matches the teacher"
                )
            d, k = slots[name]
            s = d[k]
            if not isinstance(s, Tensor) or s.shape != t.shape or s.dtype != t.dtype:
                raise ValueError(
                    f"student: parameter {name!r} is {describe(s)}, the teacher's is "
                    f"{tuple(t.shape)} {t.dtype}; the student no longer matches the teacher"
                )
        extra = [n for n in slots if n not in t_named]
        if extra:
            raise ValueError(
                f"student: has parameters/buffers the teacher lacks, e.g. {extra[0]!r}; "
                "the student no longer matches the teacher"
            )
        return slots

    def _student_lists(
        self, student: nn.Module, refresh: bool
    ) -> tuple[list[Tensor], list[Tensor]]:
        if refresh or self._student_ref is None or self._student_ref() is not student:
            self._student_slots = self._split(self._check_student(student))
            self._student_ref = weakref.ref(student)
        float_slots, other_slots = self._student_slots
        return [d[k] for d, k in float_slots], [d[k] for d, k in other_slots]

    @torch.no_grad()
    def update(self, student: nn.Module, *, refresh: bool = False) -> None:
        """One EMA step towards ``student``, then advance the step counter.

        .. math::

            \\theta_t \\leftarrow \\theta_t + (1 - m_t)(\\theta_s - \\theta_t)

        for floating parameters and buffers (``torch._foreach_lerp_``); other
        buffers are copied.

        Args:
            student: the student network (possibly DDP-wrapped or compiled), with
                the teacher's parameter and buffer names, shapes and dtypes.
            refresh: re-read the student's module structure (needed only after
                replacing one of its submodules).

        Raises:
            ValueError: the student's parameters/buffers no longer match the
                teacher's (the message names the first mismatching one).
        """
        student = _unwrap(student)
        t_float, t_other = self._teacher_lists()
        try:
            s_float, s_other = self._student_lists(student, refresh)
            self._apply_update(t_float, t_other, s_float, s_other)
        except (RuntimeError, TypeError, KeyError, AttributeError):
            # A slot may have been reassigned to an incompatible tensor: name it.
            self._student_ref = None
            self._check_student(student)
            raise
        self.step += 1

    def _apply_update(
        self,
        t_float: list[Tensor],
        t_other: list[Tensor],
        s_float: list[Tensor],
        s_other: list[Tensor],
    ) -> None:
        weight = 1.0 - self.current_momentum()
        foreach = self.foreach
        if foreach is None:  # fused when the (first) tensors share a device
            t_all, s_all = t_float or t_other, s_float or s_other
            foreach = not t_all or t_all[0].device == s_all[0].device
        if foreach:
            if t_float:
                torch._foreach_lerp_(t_float, s_float, weight)
            if t_other:
                torch._foreach_copy_(t_other, s_other)
        else:
            for t, s in zip(t_float, s_float, strict=True):
                t.lerp_(s.to(t.device), weight)
            for t, s in zip(t_other, s_other, strict=True):
                t.copy_(s)

    # ------------------------------------------------------------------ inference
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the EMA model (:attr:`model`) on the arguments."""
        return self.model(*args, **kwargs)

    @torch.no_grad()
    def pseudo_label(
        self,
        x: Tensor,
        threshold: float = 0.968,
        *,
        size: tuple[int, int] | None = None,
    ) -> PseudoLabel:
        """Run the teacher without gradients and turn its logits into pseudo-labels.

        The model must map an image batch ``(B, 3, H, W)`` to logits ``(B, K, h, w)``
        and a clip ``(B, T, 3, H, W)`` to ``(B, T, K, h, w)``. Logits at a lower
        resolution are upsampled bilinearly (in float32) to ``size`` (default: the
        input's ``H, W``) before :func:`dastc.functional.pseudo_label`.

        Args:
            x: float ``(B, C, H, W)`` images or ``(B, T, C, H, W)`` clips.
            threshold: confidence threshold for the quality weight, in ``[0, 1]``.
            size: ``(H, W)`` of the pseudo-labels; default ``x``'s.

        Returns:
            :class:`PseudoLabel`, each field ``(B[, T], H, W)`` (rank of ``x``).

        Raises:
            TypeError: ``x`` or the model output is not a float tensor.
            ValueError: ``x`` has the wrong rank, or the model output's shape does
                not fit ``x``.

        Examples:
            >>> teacher = EMATeacher(torch.nn.Conv2d(3, 4, 2, stride=2))
            >>> teacher.pseudo_label(torch.randn(1, 3, 8, 8)).label.shape
            torch.Size([1, 8, 8])
        """
        x = check_float(x, "x", ("B T C H W", "B C H W"))
        check_nonempty(x, "x")
        out = self.model(x)
        if not isinstance(out, Tensor) or not out.is_floating_point():
            raise TypeError(
                f"teacher.model(x): expected float logits, got {describe(out)} "
                "(wrap the model so that it returns the logits tensor)"
            )
        expected = "(B, T, K, h, w)" if x.dim() == 5 else "(B, K, h, w)"
        if out.dim() != x.dim() or out.shape[: x.dim() - 3] != x.shape[: x.dim() - 3]:
            raise ValueError(
                f"teacher.model(x): expected logits of shape {expected} for x {tuple(x.shape)}, "
                f"got {describe(out)}"
            )
        if size is None:
            size = (int(x.shape[-2]), int(x.shape[-1]))
        else:
            size = check_size_pair(size, "size")
        if tuple(out.shape[-2:]) != tuple(size):
            lead = out.shape[:-3]
            flat = out.reshape(-1, *out.shape[-3:]).float()
            flat = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False)
            out = flat.reshape(*lead, *flat.shape[-3:])
        return pseudo_label(out, threshold)
