"""WarmStartGuard: keep self-training from starting while a class is missing from the teacher."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dastc._dist import sum_over_processes
from dastc._label_counts import label_counts
from dastc._validate import check_num_classes, check_unit_interval, describe
from dastc.functional.vanished_classes import vanished_classes

__all__ = ["WarmStartGuard"]

_ACTIONS = ("extend", "warn")


def _check_labels(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dtype != torch.long:
        raise TypeError(f"{name}: expected a long tensor of any shape, got {describe(x)}")
    return x


class WarmStartGuard(nn.Module):
    """Checks, without target labels, that no class vanished from the teacher before adapting.

    A self-training run starts from a teacher trained on source labels only (the
    warm start). When that teacher has stopped predicting a class on the target
    (every person called something else, say), its pseudo-labels never show the
    class and self-training teaches the student to forget it. The guard compares
    the teacher's pseudo-label class shares with the source's class shares (the
    prior) through :func:`~dastc.functional.vanished_classes`, and decides:

    - ``action="extend"``: while a class has vanished, the warm start goes on
      (source-only steps), checked every ``every`` iterations, for at most
      ``max_extension`` more iterations; then adaptation starts anyway, with a
      warning naming the classes still missing.
    - ``action="warn"``: adaptation starts on time; a warning names the
      vanished classes.

    Each check judges the teacher's pseudo-labels of the ``every`` target
    batches before it (the last ``every`` warm-start steps, then each window of
    the extension), so a class that one small batch happens not to show is not
    reported. The prior is the source labels seen during the warm start
    (:meth:`observe_source`), or the dataset's own totals (:meth:`set_prior`,
    which a run that samples its source batches unevenly, such as rare class
    sampling, should use).

    Drive it with :meth:`step` on every iteration; the check is its one host
    sync, every ``every`` iterations while it is deciding; once adaptation has
    started the guard does nothing. Under ``torch.distributed`` (``sync=True``)
    every count is summed over the processes as it is taken, so every process
    holds the same state and decides alike.

    Args:
        num_classes: ``K``.
        floor: a class has vanished when its pseudo-label share is below
            ``floor`` × its source share.
        min_prior: classes with a smaller source share are not judged.
        action: ``"extend"`` or ``"warn"``.
        max_extension: at most this many extra warm-start iterations (``extend``).
        every: iterations per check window (at least 1).
        process_group: the group to sum the counts over (default: the world).
        sync: sum over processes when a process group is initialised.

    State (``state_dict``): the source and windowed target class counts,
    float64 ``(K,)`` each, and as extra state the iterations added so far,
    whether it is extending, whether adaptation has started, whether the prior
    is fixed and the last vanished classes.

    Example:
        >>> import torch
        >>> guard = WarmStartGuard(3, floor=0.2, every=1)
        >>> guard.set_prior(torch.tensor([50, 30, 20]))
        >>> teacher_labels = torch.tensor([[0, 0, 0, 2, 2, 2]])  # class 1 is gone
        >>> guard.step(-1, lambda: teacher_labels)  # the last warm-start step: observed
        True
        >>> guard.step(0, lambda: teacher_labels)   # planned end: extend the warm start
        True
        >>> guard.vanished
        [1]
        >>> back = torch.tensor([[0, 1, 1, 2, 2, 0]])
        >>> guard.step(1, lambda: back)  # judges step 0's labels: class 1 still gone
        True
        >>> guard.step(2, lambda: back)  # judges step 1's labels: adapt
        False
    """

    source_counts: Tensor
    target_counts: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        floor: float = 0.1,
        min_prior: float = 0.005,
        action: Literal["extend", "warn"] = "extend",
        max_extension: int = 300,
        every: int = 25,
        process_group: Any = None,
        sync: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.floor = check_unit_interval(floor, "floor")
        self.min_prior = check_unit_interval(min_prior, "min_prior")
        if action not in _ACTIONS:
            raise ValueError(f"action: expected one of {_ACTIONS}, got {action!r}")
        self.action = action
        for name, v, lo in (("max_extension", max_extension, 0), ("every", every, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
        self.max_extension, self.every = max_extension, every
        self.process_group, self.sync = process_group, bool(sync)
        for name in ("source_counts", "target_counts"):
            self.register_buffer(name, torch.zeros(self.num_classes, dtype=torch.float64))
        #: extra warm-start iterations so far
        self.extended = 0
        #: whether the last check found a vanished class (and the warm start goes on)
        self.extending = False
        #: whether adaptation has started (the guard is done)
        self.done = False
        #: whether the prior was set by :meth:`set_prior` (then source batches are not counted)
        self.fixed_prior = False
        #: the classes the last check found vanished
        self.vanished: list[int] = []

    def _count(self, labels: Tensor, name: str) -> Tensor:
        _check_labels(labels, name)
        counts = label_counts(labels.to(self.source_counts.device), self.num_classes)
        return sum_over_processes(counts, self.sync, self.process_group)

    @torch.no_grad()
    def observe_source(self, labels: Tensor) -> None:
        """Add a source batch's labels (long, any shape; values outside ``[0, K)`` such as
        ``ignore_index`` left out) to the prior; nothing after :meth:`set_prior`.

        No host sync and no value check: call it on every warm-start step.
        """
        if not self.fixed_prior:
            self.source_counts += self._count(labels, "labels")

    @torch.no_grad()
    def set_prior(self, counts: Tensor) -> None:
        """Fix the prior to ``counts`` ``(K,)`` (the source dataset's pixels per class, e.g.
        ``class_pixel_counts(...).sum(0)``); :meth:`observe_source` then adds nothing."""
        if not isinstance(counts, Tensor) or counts.shape != (self.num_classes,):
            raise ValueError(
                f"counts: expected a tensor of shape ({self.num_classes},), got {describe(counts)}"
            )
        if bool((counts < 0).any()) or not bool(counts.sum() > 0):
            raise ValueError("counts: expected non-negative counts with a positive sum")
        self.source_counts.copy_(counts.to(self.source_counts))
        self.fixed_prior = True

    @torch.no_grad()
    def observe_target(self, pseudo_labels: Tensor) -> None:
        """Add the teacher's pseudo-labels of a target batch (long, any shape) to the
        current check window. No host sync."""
        self.target_counts += self._count(pseudo_labels, "pseudo_labels")

    def prior(self) -> Tensor:
        """float64 ``(K,)``: the source class shares (zeros before any source label)."""
        return self.source_counts / self.source_counts.sum().clamp(min=1)

    @torch.no_grad()
    def check(self) -> Tensor:
        """bool ``(K,)``: the classes that vanished from the current window's pseudo-labels,
        against :meth:`prior`; empties the window."""
        share = self.target_counts / self.target_counts.sum().clamp(min=1)
        found = vanished_classes(share, self.prior(), self.floor, self.min_prior)
        self.target_counts.zero_()
        return found

    def step(self, since: int, pseudo_labels: Callable[[], Tensor]) -> bool:
        """Whether the step ``since`` iterations after the planned warm-start end is
        source-only (True: the warm start goes on) or adapts (False).

        Call it on every iteration with ``since = iteration - adapt_start``
        (negative during the warm start). ``pseudo_labels`` returns the teacher's
        pseudo-labels of this step's target batch; it is called only while
        they are counted: the last ``every`` warm-start steps and the steps of an
        extension. The decision is taken at ``since`` 0, ``every``, ``2·every``,
        ... (and when the extension is used up). Returns False at once when the
        guard is done.
        """
        if self.done:
            return False
        if since < 0:
            if since >= -self.every:
                self.observe_target(pseudo_labels())
            return True
        used_up = self.extending and self.extended >= self.max_extension
        if since % self.every == 0 or used_up:
            if not bool(self.target_counts.sum() > 0):  # no window yet (a short warm start)
                self.observe_target(pseudo_labels())
            self.vanished = self.check().nonzero().flatten().tolist()  # the one host sync
            budget = self.action == "extend" and self.extended < self.max_extension
            if self.vanished and budget:
                if not self.extending:
                    warnings.warn(
                        f"WarmStartGuard: classes {self.vanished} vanished from the teacher's "
                        f"pseudo-labels (share < {self.floor} x source share); extending the "
                        f"warm start by up to {self.max_extension - self.extended} iterations",
                        stacklevel=2,
                    )
                self.extending = True
            else:
                if self.vanished:
                    why = "after the longest extension" if self.action == "extend" else "now"
                    warnings.warn(
                        f"WarmStartGuard: classes {self.vanished} vanished from the teacher's "
                        f"pseudo-labels; adapting {why} anyway (extended by {self.extended} "
                        f"iterations)",
                        stacklevel=2,
                    )
                self.extending, self.done = False, True
        if self.extending:
            self.observe_target(pseudo_labels())
            self.extended += 1
        return self.extending

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "extended": self.extended,
            "extending": self.extending,
            "done": self.done,
            "fixed_prior": self.fixed_prior,
            "vanished": list(self.vanished),
        }

    def set_extra_state(self, state: Any) -> None:
        self.extended = int(state["extended"])
        self.extending = bool(state["extending"])
        self.done = bool(state["done"])
        self.fixed_prior = bool(state["fixed_prior"])
        self.vanished = [int(k) for k in state["vanished"]]

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, floor={self.floor}, min_prior={self.min_prior}, "
            f"action={self.action!r}, max_extension={self.max_extension}, every={self.every}"
        )
