"""A LightningModule built from dastc's blocks (needs `pip install lightning`)."""

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

import dastc
from dastc.data import SyntheticDrivingClips
from dastc.functional import weighted_cross_entropy
from tiny_net import TinyNet  # docs/snippets/tiny_net.py


class DASTC(L.LightningModule):
    def __init__(self, model: TinyNet, num_classes: int, feat_dim: int, align_weight: float = 0.1):
        super().__init__()
        self.model = model
        self.teacher = dastc.EMATeacher(model, momentum=0.99, warmup=True)  # saved in checkpoints
        self.mix = dastc.BidirectionalClipMix(num_classes)
        self.agg = dastc.SpatioTemporalPrototypeAggregator(num_classes, feat_dim)
        self.align = dastc.IntraInterClassAlignmentLoss()
        self.align_weight = align_weight
        self.cm = dastc.ConfusionMatrix(num_classes)

    def training_step(self, batch: dict[str, dict[str, Tensor]], batch_idx: int) -> Tensor:
        xs, ys, xt = batch["source"]["clip"], batch["source"]["label"], batch["target"]["clip"]
        pl = self.teacher.pseudo_label(xt)
        out = self.mix(xs, ys, xt, pl.label, pl.weight)
        deep_s, logits_s = self.model(xs, with_deep=True)
        deep_t, _ = self.model(xt, with_deep=True)
        loss = weighted_cross_entropy(logits_s, ys)
        loss += weighted_cross_entropy(self.model(out.s2t_clip), out.s2t_label, out.s2t_weight)
        loss += weighted_cross_entropy(self.model(out.t2s_clip), out.t2s_label, out.t2s_weight)
        align = self.align(self.agg(deep_s, ys), self.agg(deep_t, pl.label, pl.confidence))
        self.log_dict({"align": align, "loss": loss}, prog_bar=True)
        return loss + self.align_weight * align

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        self.teacher.update(self.model)  # after the optimiser step

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.cm.update(self.teacher(batch["clip"]).argmax(2), batch["label"])

    def on_validation_epoch_end(self) -> None:
        self.cm.sync()  # sums over processes under DDP; a no-op otherwise
        self.log("val_miou", 100 * float(self.cm.compute()[1]))
        self.cm.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=2e-3)


if __name__ == "__main__":
    K, STEPS, SIZE = SyntheticDrivingClips.NUM_CLASSES, 4, (32, 64)
    src = SyntheticDrivingClips("source", "train", length=2 * STEPS, size=SIZE)
    tgt = SyntheticDrivingClips("target", "train", length=2 * STEPS, size=SIZE)
    val = SyntheticDrivingClips("target", "val", length=4, size=SIZE)
    train = {"source": DataLoader(src, batch_size=2), "target": DataLoader(tgt, batch_size=2)}
    trainer = L.Trainer(
        max_steps=STEPS,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(DASTC(TinyNet(K), K, feat_dim=16), train, DataLoader(val, batch_size=4))
    print(f"val mIoU: {trainer.callback_metrics['val_miou']:.1f}")
