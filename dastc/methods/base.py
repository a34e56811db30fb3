"""Method: what every method shares (student pass, teacher, generator, iteration, state)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dastc._validate import check_num_classes
from dastc.methods.config import MethodConfig
from dastc.methods.contract import LastMix, StepOutput, check_batch
from dastc.teacher import EMATeacher

__all__ = ["Method", "StudentPass"]


class StudentPass(nn.Module):
    """The student's whole training forward in one call, so that DDP sees every use of the weights.

    ``forward(clips, flows)`` is the model's own forward. With ``between`` it
    runs ``model.shallow(clips)``, passes the shallow features through
    ``between`` (the feature mix) and returns ``model.deep(between(shallow), flows)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clips: Tensor, flows: Tensor | None = None, between: Any = None) -> Any:
        if between is None:
            return self.model(clips, flows)
        model: Any = self.model
        return model.deep(between(model.shallow(clips)), flows)


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


class Method(nn.Module):
    """Base of the methods in :mod:`dastc.methods`; see :class:`~dastc.methods.DASTC`.

    Holds the student (not as a submodule: its weights are the user's, outside
    :meth:`state_dict`), the EMA teacher, the mixing generator and the iteration.
    Subclasses implement :meth:`loss`.

    Build the method after the student is on its device: the teacher is a copy
    of the student and the mixing generator (seeded with ``config.seed``) lives
    on the student's device; ``.to()`` does not move the generator. The keys of
    :meth:`state_dict` follow the config (the prototype memories ``agg_src`` /
    ``agg_tgt`` exist only when the method aligns), so a state loads into a
    method built with the same config.
    """

    name: ClassVar[str] = "method"
    #: whether the method self-trains on the target (uses the teacher's pseudo-labels)
    adapts: ClassVar[bool] = False
    #: whether the method feeds the flow to a temporal student
    temporal_model: ClassVar[bool] = True
    #: whether the step reads ``target['label']``
    needs_target_labels: ClassVar[bool] = False

    student: nn.Module
    net: nn.Module

    def __init__(
        self, student: nn.Module, num_classes: int, config: MethodConfig | None = None
    ) -> None:
        super().__init__()
        if not isinstance(student, nn.Module):
            raise TypeError(f"student: expected an nn.Module, got {type(student).__name__}")
        if config is None:
            config = MethodConfig()
        if not isinstance(config, MethodConfig):
            raise TypeError(f"config: expected a MethodConfig, got {type(config).__name__}")
        self.config = config
        self.num_classes = check_num_classes(num_classes)
        self.ignore_index = config.ignore_index
        # plain attributes, not submodules: the student's weights are not the method's state
        object.__setattr__(self, "student", student)
        object.__setattr__(self, "net", StudentPass(student))
        self.teacher = EMATeacher(student, momentum=config.ema, warmup=True)
        self.generator = torch.Generator(device=_device_of(student)).manual_seed(config.seed)
        self.iteration = 0
        #: the last adaptation step's clip mix (inputs and output), for pictures
        self.last_mix: LastMix | None = None
        self._undo: list[tuple[Tensor, Tensor]] = []

    @property
    def draw_generator(self) -> torch.Generator | None:
        """The generator the step's random draws come from: :attr:`generator`, or None
        (torch's global generator) with ``config.draws == "global"``."""
        return None if self.config.draws == "global" else self.generator

    # -- the contract -----------------------------------------------------------
    def _needs_two_stages(self, why: str) -> None:
        missing = [a for a in ("shallow", "deep") if not callable(getattr(self.student, a, None))]
        if missing:
            raise ValueError(
                f"student: {why} needs a TwoStageSegmenter with shallow(clip) and "
                f"deep(shallow_feats, flow_prev) (missing: {', '.join(missing)}); "
                f"pass a config with {why.split()[0]}=False, or give the model these methods"
            )

    @property
    def uses_temporal(self) -> bool:
        """Whether the student is given the backward flow (``config.temporal``, a video method)."""
        return self.temporal_model and self.config.temporal

    def flow_for(self, batch: dict[str, Tensor]) -> Tensor | None:
        """The flow to give the student for ``batch`` (evaluation, pictures), or ``None``."""
        clip = batch["clip"]
        if self.uses_temporal and clip.dim() == 5 and clip.shape[1] > 1:
            return batch.get("flow_prev")
        return None

    def _flows(
        self, source: dict[str, Tensor], target: dict[str, Tensor]
    ) -> tuple[Tensor | None, Tensor | None]:
        """Both domains' flows (:meth:`flow_for`), when both batches carry flow."""
        fs, ft = self.flow_for(source), self.flow_for(target)
        if fs is None or ft is None:
            return None, None
        return fs, ft

    def _check_logits(self, logits: Tensor) -> Tensor:
        if logits.dim() != 5 or logits.shape[2] != self.num_classes:
            raise ValueError(
                f"student: expected logits (B, T, {self.num_classes}, H, W) "
                f"(num_classes={self.num_classes}), got shape {tuple(logits.shape)}"
            )
        return logits

    def _ce(self, logits: Tensor, label: Tensor) -> Tensor:
        return F.cross_entropy(
            self._check_logits(logits).flatten(0, 1),
            label.flatten(0, 1),
            ignore_index=self.ignore_index,
        )

    # -- one step ---------------------------------------------------------------
    def forward(self, source: dict[str, Tensor], target: dict[str, Tensor]) -> StepOutput:
        """One training step's loss (then backward, ``optimizer.step()``, :meth:`after_step`).

        Args:
            source: ``clip`` float ``(B, T, 3, H, W)``, ``label`` long ``(B, T, H, W)``,
                optional ``flow_prev`` float ``(B, T, 2, H, W)`` (the batches dastc's
                datasets give, on the student's device).
            target: the same; ``label`` only where the method reads it
                (:class:`~dastc.methods.Oracle`).

        Returns:
            :class:`~dastc.methods.StepOutput`: the loss and detached logs
            (no host sync).

        Raises:
            TypeError, ValueError: a batch without ``clip``/``label``, wrong
                dtypes or shapes, source and target clips of different shapes,
                a student whose logits do not have ``num_classes`` classes.
        """
        check_batch(source, "source", need_label=True)
        check_batch(target, "target", need_label=self.needs_target_labels)
        if source["clip"].shape != target["clip"].shape:
            raise ValueError(
                f"target['clip']: expected the shape of source['clip'] "
                f"{tuple(source['clip'].shape)} (same B, T, H, W), "
                f"got {tuple(target['clip'].shape)}"
            )
        self._undo = []
        self.student.train()
        logs: dict[str, Tensor] = {}
        loss = self.loss(source, target, logs)
        logs["loss"] = loss.detach()
        return StepOutput(loss, logs)

    def loss(
        self, source: dict[str, Tensor], target: dict[str, Tensor], logs: dict[str, Tensor]
    ) -> Tensor:
        """The step's loss; fills ``logs`` (subclasses implement it)."""
        raise NotImplementedError

    def _remember(self, *modules: nn.Module) -> None:
        """Snapshot the buffers a step is about to change, for :meth:`skip_step`."""
        for m in modules:
            for b in m.buffers():
                self._undo.append((b, b.clone()))

    @torch.no_grad()
    def after_step(self) -> None:
        """After the user's ``optimizer.step()``: the EMA teacher follows the student,
        and the iteration (which the warm start ``adapt_start`` reads) advances."""
        self.teacher.update(self.student)
        self.iteration += 1
        self._undo = []

    @torch.no_grad()
    def skip_step(self) -> None:
        """Instead of :meth:`after_step` for a step whose loss was not used (not finite):
        restore the running statistics the step changed (prototype memories,
        class-balance confidences, distribution priors) and advance the iteration;
        the teacher stays as it was. Under DDP, decide to skip on every process
        alike (all-reduce a non-finite flag first): the statistics are synced."""
        for buf, saved in self._undo:
            buf.copy_(saved)
        self._undo = []
        self.iteration += 1

    # -- DDP --------------------------------------------------------------------
    def distribute(self, **ddp_kwargs: Any) -> Method:
        """Run the student's training forward through ``DistributedDataParallel``.

        Call once, after ``torch.distributed.init_process_group``, with DDP's
        arguments (``device_ids=[local_rank]`` on GPU; ``find_unused_parameters=True``
        when some weights take no part in the loss, such as a temporal fusion
        trained without flow). Every step's student pass is one DDP call, so the
        gradients are all-reduced once; the prototype, class-balance and
        distribution statistics are summed over the processes by their modules.
        Returns ``self``.
        """
        object.__setattr__(
            self,
            "net",
            nn.parallel.DistributedDataParallel(StudentPass(self.student), **ddp_kwargs),
        )
        return self

    # -- state ------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "generator": self.generator.get_state()}

    def set_extra_state(self, state: Any) -> None:
        self.iteration = int(state["iteration"])
        try:
            self.generator.set_state(state["generator"].cpu())
        except RuntimeError as e:  # a generator of another device type
            warnings.warn(
                f"mixing generator not restored ({e}); reseeded with seed + iteration",
                stacklevel=2,
            )
            self.generator.manual_seed(self.config.seed + self.iteration)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, iteration={self.iteration}"
