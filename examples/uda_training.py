"""The training program around a :mod:`dastc.methods` method: data order, optimisation,
checkpoints, evaluation, logs and pictures.

The method itself (teacher, pseudo-labels, clip and feature mix, prototype
alignment, losses) is one object, ``dastc.methods.METHODS[cfg.method]``; this
loop calls it once per iteration::

    out = method(source_batch, target_batch)
    opt.zero_grad(); out.loss.backward(); opt.step(); sched.step()
    method.after_step()
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import uda_checkpoint
import uda_dist
from torch import Tensor
from uda_augment import augment_batch
from uda_config import Config, build_model
from uda_data import CachedDataset, EpochOrder, RareClassOrder, build_datasets, rare_classes
from uda_eval import evaluate, predict_last_frames
from uda_loader import default_workers, loader
from uda_optim import autocast, build_optimizer, build_schedule, grad_scaler

from dastc.data.rare_class_sampling import RareClassSampler, class_pixel_counts
from dastc.methods import METHODS, Method


class Run:
    """The stateful pieces of a run: data, student, method, optimiser, order, history."""

    def __init__(
        self,
        cfg: Config,
        device: torch.device,
        init_weights: bool = True,
        stats_dir: Path | None = None,
    ) -> None:
        self.cfg, self.device = cfg, device
        self.world = uda_dist.world()
        self.rank = dist.get_rank() if self.world > 1 else 0
        torch.manual_seed(cfg.seed)
        data = build_datasets(cfg.data)
        self.src_ds, self.tgt_ds, self.val_ds = data.source, data.target, data.val
        self.K, self.class_names, self.mean_excludes = (
            data.num_classes,
            data.class_names,
            data.mean_excludes,
        )
        self.extra_means = data.extra_means  # further published means (SYNTHIA: over 13)
        for ds, name in ((self.src_ds, "source"), (self.tgt_ds, "target"), (self.val_ds, "val")):
            if isinstance(ds, CachedDataset) and cfg.render_workers > 0:
                ds.fill(cfg.render_workers, desc=f"render {name} clips")
        self.student = build_model(cfg, self.K, init_weights).to(device)
        self.opt = build_optimizer(
            self.student, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.head_lr_mult
        )
        self.sched = build_schedule(self.opt, cfg.iters, cfg.warmup)
        self.scaler = grad_scaler(device, cfg.amp)
        rare = list(cfg.method_config.rare_classes)  # --preset official: the public tail
        if not rare and cfg.adapts:
            rare = rare_classes(self.src_ds, self.K, cfg.rare_below)
        self.gen_seed = cfg.seed + 17 + 7919 * self.rank  # each process draws its own classes
        mcfg = replace(cfg.method_config, seed=self.gen_seed, rare_classes=tuple(rare))
        self.method: Method = METHODS[cfg.method](self.student, self.K, mcfg)
        if self.world > 1:
            # temporal fusion takes part only when both domains have flow
            has_flow = (
                self.method.uses_temporal
                and cfg.data.clip_len > 1
                and all("flow_prev" in ds[0] for ds in (self.src_ds, self.tgt_ds))
            )
            ids = [device.index] if device.type == "cuda" else None
            self.method.distribute(device_ids=ids, find_unused_parameters=not has_flow)
        n_s, n_t = len(self.src_ds), len(self.tgt_ds)  # type: ignore[arg-type]
        self.order_src: EpochOrder | RareClassOrder = EpochOrder(
            n_s, cfg.batch, cfg.seed * 2 + 1, self.rank, self.world
        )
        if cfg.rcs > 0:  # rare class sampling of the source clips (DAFormer's RCS)
            counts = self._class_counts(stats_dir)
            min_pixels = cfg.rcs_min_pixels
            if min_pixels is None:  # DAFormer: 3000 pixels of a 1914x1052 GTA5 label map
                min_pixels = round(self.src_ds[0]["label"].numel() * 3000 / (1914 * 1052))
            sampler = RareClassSampler(counts, temperature=cfg.rcs, min_pixels=min_pixels)
            self.order_src = RareClassOrder(
                sampler, cfg.batch, cfg.seed * 2 + 1, self.rank, self.world
            )
            guard = getattr(self.method, "guard", None)
            if guard is not None:  # the batches over-show rare classes: the dataset's shares
                guard.set_prior(counts.sum(0))
        self.order_tgt = EpochOrder(n_t, cfg.batch, cfg.seed * 2 + 2, self.rank, self.world)
        self.history: dict[str, list[list[Any]]] = {}  # name -> [[iteration, value], ...]
        self.evals: list[dict[str, Any]] = []

    def _class_counts(self, stats_dir: Path | None) -> Tensor:
        """The source clips' class pixel counts ``(N, K)``, computed once (progress bar)
        and cached in ``stats_dir``: under DDP rank 0 computes and writes the file, the
        others read it after a barrier."""
        cache = None
        if stats_dir is not None:  # named by the data it counts
            spec = json.dumps(asdict(self.cfg.data), sort_keys=True, default=str)
            digest = hashlib.sha1(spec.encode()).hexdigest()[:10]
            cache = stats_dir / f"rcs_class_stats_{digest}.json"
        counts = None
        if self.rank == 0:
            counts = class_pixel_counts(self.src_ds, self.K, cache=cache)
        if self.world > 1:
            dist.barrier()
        if counts is None:
            counts = class_pixel_counts(self.src_ds, self.K, cache=cache, progress=False)
        return counts

    def evaluate(
        self, teacher: bool = False, max_batches: int | None = None
    ) -> tuple[Tensor, float]:
        model = self.method.teacher.model if teacher else self.student
        return evaluate(
            model, self.val_ds, self.K, self.method.flow_for, self.device, self.cfg.batch * 2,
            self.rank, self.world, max_batches, self.mean_excludes,
            window=self.cfg.data.eval_window, stride=self.cfg.data.eval_stride,
        )  # fmt: skip

    def record(self, logs: dict[str, Tensor]) -> None:
        """Append ``[iteration, value]`` to the history of every logged quantity."""
        for k, v in logs.items():
            value = v.tolist() if k == "pl_hist" else float(v)
            self.history.setdefault(k, []).append([self.method.iteration, value])


class Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked between iterations (then checkpoint, exit)."""

    def __init__(self) -> None:
        self.hit: int | None = None
        self._at = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Interrupt:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        # A second signal more than 2 s after the first gives up at once; one within
        # 2 s is the same request arriving twice (a launcher signalling the process
        # and its group) and waits for the checkpoint like the first.
        if self.hit is not None and time.monotonic() - self._at > 2.0:
            raise KeyboardInterrupt
        if self.hit is None:
            self.hit, self._at = signum, time.monotonic()

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def train(
    cfg: Config,
    out: Path,
    resume: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Run (or resume) a training; write checkpoints, pictures, results.json; return the results.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1), it joins the process group and
    trains with DDP; see ``uda_dist``. Only rank 0 writes files.
    """
    rank, _, dev, initialised = uda_dist.setup(str(device or cfg.device))
    try:
        result = _train(cfg, out, resume, progress and rank == 0, stop_after, dev)
        if initialised:
            # every process leaves together: a process that tears its gloo pairs down
            # while another still writes its files can abort (std::terminate) at exit
            dist.barrier()
        return result
    finally:
        if initialised:
            dist.destroy_process_group()


def _train(
    cfg: Config, out: Path, resume: Path | None, progress: bool, stop_after: int | None,
    device: torch.device,
) -> dict[str, Any]:  # fmt: skip
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(cfg, device, init_weights=resume is None, stats_dir=out)
    method = run.method
    lead = run.rank == 0
    ckpt = out / "checkpoint.pt"
    if resume is not None:
        uda_checkpoint.load(run, resume / "checkpoint.pt" if resume.is_dir() else resume)
    log = open(out / "log.txt" if lead else os.devnull, "a", encoding="utf-8")
    log.write(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')} start at iteration {method.iteration}: "
        f"{json.dumps(asdict(cfg))}\n"
    )
    bar = _progress(cfg.iters, method.iteration, progress)
    t0 = time.time()
    pin = device.type == "cuda"
    it_s, it_t = (
        loader(ds, order, method.iteration, default_workers(ds) if cfg.workers is None
               else cfg.workers, pin)
        for ds, order in ((run.src_ds, run.order_src), (run.tgt_ds, run.order_tgt))
    )  # fmt: skip
    last_good = method.iteration
    with Interrupt() as intr:
        while method.iteration < cfg.iters:
            bs = {k: v.to(device, non_blocking=True) for k, v in next(it_s).items()}
            bt = {k: v.to(device, non_blocking=True) for k, v in next(it_t).items()}
            if cfg.data.crop is not None:  # one draw per clip, a function of the iteration
                d, it0 = cfg.data, method.iteration
                bs = augment_batch(bs, d.crop, d.crop_scale, d.flip, cfg.seed, it0, 0)
                if d.crop_target:
                    bt = augment_batch(bt, d.crop, d.crop_scale, d.flip, cfg.seed, it0, 1)
            with autocast(device, cfg.amp):
                loss, logs = method(bs, bt)
            run.opt.zero_grad(set_to_none=True)
            (loss if run.scaler is None else run.scaler.scale(loss)).backward()
            # one flag vector: non-finite loss, signal; any process's flag counts for all
            flags = uda_dist.any_true(
                torch.stack(
                    [(~torch.isfinite(loss)).float(), loss.new_tensor(float(intr.hit is not None))]
                )
            ).tolist()
            signalled = flags[1] > 0  # decided here, the same on every process
            if flags[0]:
                msg = (
                    f"non-finite loss at iteration {method.iteration} "
                    f"(this process: {float(loss.detach())}; any process's counts)"
                )
                log.write(msg + "\n")
                if cfg.on_nan == "skip":
                    method.skip_step()
                    run.opt.zero_grad(set_to_none=True)
                    run.sched.step()
                    continue
                log.close()
                raise FloatingPointError(
                    f"{msg}; the last good checkpoint (iteration {last_good}) is {ckpt}. "
                    "Lower --lr, or pass --on-nan skip to skip such steps."
                )
            if run.scaler is None:
                run.opt.step()
            else:  # fp16: skips the step when the scaled gradients overflowed
                run.scaler.step(run.opt)
                run.scaler.update()
            run.sched.step()
            method.after_step()
            it = method.iteration
            if it % cfg.log_every == 0 or it == cfg.iters:
                logs = uda_dist.mean_logs(logs)
                run.record(logs)
                line = " ".join(f"{k}={float(v):.3f}" for k, v in logs.items() if k != "pl_hist")
                log.write(f"it {it} {line}\n")
                log.flush()
                if bar is not None:
                    bar.set_postfix_str(line[:90])
            if it % cfg.eval_every == 0 and it < cfg.iters:
                _eval_record(run, log, max_batches=4)
            if it % cfg.ckpt_every == 0:
                uda_checkpoint.save(run, ckpt)
                last_good = it
            if bar is not None:
                bar.update(1)
            if signalled or (stop_after is not None and it >= stop_after):
                uda_checkpoint.save(run, ckpt)
                hit = (intr.hit or signal.SIGTERM) if signalled else None
                log.write(f"stopped at iteration {it} (signal {hit}); resume with --resume {out}\n")
                log.close()
                if bar is not None:
                    bar.close()
                it_s.close()
                it_t.close()
                if hit is not None:
                    raise SystemExit(128 + int(hit))
                return {"stopped_at": it}
    if bar is not None:
        bar.close()
    it_s.close()
    it_t.close()
    uda_checkpoint.save(run, ckpt)
    seconds = time.time() - t0
    iou_s, miou_s = run.evaluate()
    iou_t, miou_t = run.evaluate(teacher=True)
    if not lead:
        log.close()
        return {"method": cfg.method, "miou": miou_s, "miou_teacher": miou_t, "rank": run.rank}
    hist = run.history
    results = {
        "method": cfg.method,
        "miou": miou_s,
        "miou_teacher": miou_t,
        "evaluated": "student (miou) and EMA teacher (miou_teacher) on target val, "
        "last frame of each clip",
        "scoring": {
            "classes_trained": run.K,
            "mean_over": [n for i, n in enumerate(run.class_names) if i not in run.mean_excludes],
            "left_out_of_mean": [run.class_names[i] for i in run.mean_excludes],
        },
        **_extra_scorings(run, iou_s, iou_t),
        "per_class_iou": dict(zip(run.class_names, _nan_none(iou_s), strict=False)),
        "per_class_iou_teacher": dict(zip(run.class_names, _nan_none(iou_t), strict=False)),
        "iters": cfg.iters,
        "seconds": round(seconds, 1),
        "pseudo_label_hist": hist["pl_hist"][-1][1] if "pl_hist" in hist else None,
        "pseudo_label_confident_fraction": hist["pl_conf"][-1][1] if "pl_conf" in hist else None,
        **_guard_result(run),
        "config": asdict(cfg),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    log.write(f"final miou student={miou_s:.2f} teacher={miou_t:.2f} seconds={seconds:.0f}\n")
    log.close()
    torch.save(run.student.state_dict(), out / "student.pt")
    _pictures(run, out, iou_s, iou_t)
    return results


def _guard_result(run: Run) -> dict[str, Any]:
    """``"warm_guard"``: what the warm-start guard found and did (when it is on)."""
    guard = getattr(run.method, "guard", None)
    if guard is None:
        return {}
    names = [run.class_names[k] for k in guard.vanished]
    return {"warm_guard": {"extended": guard.extended, "last_vanished": names}}


def _extra_scorings(run: Run, iou_s: Tensor, iou_t: Tensor) -> dict[str, dict[str, Any]]:
    """``"scoring_<name>"`` entries: further means over the same confusion matrix's IoUs
    (SYNTHIA -> Cityscapes: ``"scoring_13"``), classes without an IoU skipped."""
    out: dict[str, dict[str, Any]] = {}
    for name, excluded in run.extra_means.items():
        keep = [i for i in range(run.K) if i not in excluded]
        out[f"scoring_{name}"] = {
            "mean_over": [run.class_names[i] for i in keep],
            "left_out_of_mean": [run.class_names[i] for i in sorted(excluded)],
            "miou": float(iou_s[keep].nanmean()),
            "miou_teacher": float(iou_t[keep].nanmean()),
        }
    return out


def _pictures(run: Run, out: Path, iou_s: Tensor, iou_t: Tensor) -> None:
    try:
        from uda_pictures import save_all_pictures
    except ImportError as e:  # matplotlib is in the examples extra
        print(f"pictures skipped ({e}); pip install 'dastc[examples]'")
        return
    models = {"student": run.student, "teacher": run.method.teacher.model}
    batch, preds = predict_last_frames(
        models, run.val_ds, run.method.flow_for, run.device, num_classes=run.K,
        window=run.cfg.data.eval_window, stride=run.cfg.data.eval_stride,
    )  # fmt: skip
    save_all_pictures(
        out, method=run.cfg.method, class_names=run.class_names, last_mix=run.method.last_mix,
        val_batch=batch, predictions=preds, iou_s=iou_s, iou_t=iou_t,
        history=run.history, evals=run.evals,
    )  # fmt: skip


def _eval_record(run: Run, log: Any, max_batches: int | None) -> None:
    _, ms = run.evaluate(max_batches=max_batches)
    _, mt = run.evaluate(teacher=True, max_batches=max_batches)
    run.evals.append({"iter": run.method.iteration, "student": ms, "teacher": mt})
    log.write(f"eval it {run.method.iteration} miou student={ms:.2f} teacher={mt:.2f}\n")


def _nan_none(x: Tensor) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 2) for v in x.tolist()]


def _progress(total: int, start: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=start, desc="train", dynamic_ncols=True, mininterval=1.0)
