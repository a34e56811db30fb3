"""WarmStartGuard: keep self-training from starting while a class is missing from the teacher."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dastc._dist import sum_over_processes
from dastc._validate import check_num_classes, check_unit_interval, describe
from dastc.functional.vanished_classes import vanished_classes

__all__ = ["WarmStartGuard"]

_ACTIONS = ("extend", "warn")


def _check_labels(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dtype != torch.long:
        raise TypeError(f"{name}: expected a long tensor of any shape, got {describe(x)}")
    return x


def _counts(label: Tensor, num_classes: int) -> Tensor:
    """float64 ``(K,)`` pixel counts of the classes in ``label`` (values outside ``[0, K)``,
    such as the ignore index, left out)."""
    flat = label.flatten()
    valid = (flat >= 0) & (flat < num_classes)
    idx = torch.where(valid, flat, torch.zeros_like(flat))
    out = torch.zeros(num_classes, dtype=torch.float64, device=label.device)
    return out.scatter_add_(0, idx, valid.to(torch.float64))


class WarmStartGuard(nn.Module):
    """Checks, without target labels, that no class vanished from the teacher before adapting.

    A self-training run starts from a teacher trained on source labels only (the
    warm start). When that teacher has confused a class with another (every
    sidewalk pixel of the target called road, say), its pseudo-labels never show
    the class and self-training locks the confusion in. The guard compares the
    teacher's pseudo-label class shares with the source's class shares (the
    prior, gathered from the source labels of the warm start) through
    :func:`~dastc.functional.vanished_classes`, and decides what to do:

    - ``action="extend"``: while a class has vanished, the warm start goes on
      (source-only steps), checked every ``every`` iterations, for at most
      ``max_extension`` more iterations; then adaptation starts anyway, with a
      warning naming the classes still missing.
    - ``action="warn"``: adaptation starts on time; a warning names the
      vanished classes.

    Each check is one host sync (the decision); between checks there is none.
    Once adaptation has started the guard does nothing. Under
    ``torch.distributed`` (``sync=True``) the counts are summed over the
    processes, so every process decides alike.

    Args:
        num_classes: ``K``.
        floor: a class has vanished when its pseudo-label share is below
            ``floor`` × its source share.
        min_prior: classes with a smaller source share are not judged.
        action: ``"extend"`` or ``"warn"``.
        max_extension: at most this many extra warm-start iterations (``extend``).
        every: iterations between checks while extending.
        process_group, sync: as :class:`~dastc.ClassBalance`.

    State (``state_dict``): the source class counts ``source_counts`` float64
    ``(K,)``, and as extra state the iterations added so far, whether it is
    extending, whether adaptation has started and the last vanished classes.

    Example:
        >>> import torch
        >>> guard = WarmStartGuard(3, floor=0.2, every=1)
        >>> guard.observe_source(torch.tensor([[0, 0, 1, 2, 2, 255]]))
        >>> teacher_labels = torch.tensor([[0, 0, 0, 2, 2, 2]])  # class 1 is gone
        >>> guard.step(0, lambda: teacher_labels)   # extend the warm start
        True
        >>> guard.vanished
        [1]
        >>> guard.step(1, lambda: torch.tensor([[0, 1, 1, 2, 2, 0]]))
        False
    """

    source_counts: Tensor

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
        self.register_buffer("source_counts", torch.zeros(self.num_classes, dtype=torch.float64))
        #: extra warm-start iterations so far
        self.extended = 0
        #: whether the last check found a vanished class (and the warm start goes on)
        self.extending = False
        #: whether adaptation has started (the guard is done)
        self.done = False
        #: the classes the last check found vanished
        self.vanished: list[int] = []

    @torch.no_grad()
    def observe_source(self, labels: Tensor) -> None:
        """Add a source batch's labels (long, any shape; values outside ``[0, K)`` such as
        ``ignore_index`` left out) to the prior.

        No host sync and no value check: call it on every warm-start step.
        """
        _check_labels(labels, "labels")
        self.source_counts += _counts(labels.to(self.source_counts.device), self.num_classes)

    def prior(self) -> Tensor:
        """float64 ``(K,)``: the source class shares seen so far (summed over processes
        at each check), zeros before any source label."""
        total = self.source_counts.sum()
        return self.source_counts / total.clamp(min=1)

    @torch.no_grad()
    def check(self, pseudo_labels: Tensor) -> Tensor:
        """bool ``(K,)``: the classes that vanished from ``pseudo_labels`` (long, any shape,
        values in ``[0, K)``), against :meth:`prior`. Sums both counts over processes."""
        _check_labels(pseudo_labels, "pseudo_labels")
        counts = sum_over_processes(
            _counts(pseudo_labels.to(self.source_counts.device), self.num_classes),
            self.sync,
            self.process_group,
        )
        share = counts / counts.sum().clamp(min=1)
        prior = sum_over_processes(self.source_counts.clone(), self.sync, self.process_group)
        prior = prior / prior.sum().clamp(min=1)
        return vanished_classes(share, prior, self.floor, self.min_prior)

    def step(self, since: int, pseudo_labels: Callable[[], Tensor]) -> bool:
        """Whether the step ``since`` iterations after the planned warm-start end is
        source-only (True: the warm start goes on) or adapts (False).

        ``pseudo_labels`` is called only on checks (``since`` a multiple of
        ``every``, or the extension used up, while not done) and returns the
        teacher's pseudo-labels of a target batch. Returns False at once when the
        guard is done.
        """
        if self.done:
            return False
        if since % self.every == 0 or (self.extending and self.extended >= self.max_extension):
            found = self.check(pseudo_labels())
            self.vanished = found.nonzero().flatten().tolist()  # the check's one host sync
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
            self.extended += 1
        return self.extending

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "extended": self.extended,
            "extending": self.extending,
            "done": self.done,
            "vanished": list(self.vanished),
        }

    def set_extra_state(self, state: Any) -> None:
        self.extended = int(state["extended"])
        self.extending = bool(state["extending"])
        self.done = bool(state["done"])
        self.vanished = [int(k) for k in state["vanished"]]

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, floor={self.floor}, min_prior={self.min_prior}, "
            f"action={self.action!r}, max_extension={self.max_extension}, every={self.every}"
        )
