"""DASTC in a LightningModule (needs `pip install lightning`)."""

from dataclasses import replace

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from dastc.data import SyntheticDrivingClips
from dastc.methods import DASTC, MethodConfig
from two_stage_net import TwoStageNet  # docs/snippets/two_stage_net.py


class UDAModule(L.LightningModule):
    def __init__(self, num_classes: int, config: MethodConfig) -> None:
        super().__init__()
        self.num_classes, self.config = num_classes, config

    def configure_model(self) -> None:  # on the training device; rank known
        if hasattr(self, "method"):
            return
        self.student = TwoStageNet(self.num_classes)
        config = replace(self.config, seed=self.config.seed + self.global_rank)  # own class draws
        self.method = DASTC(self.student, self.num_classes, config)  # teacher, statistics, RNG

    def training_step(self, batch: dict[str, dict[str, Tensor]], batch_idx: int) -> Tensor:
        out = self.method(batch["source"], batch["target"])
        self.log_dict({k: v for k, v in out.logs.items() if v.dim() == 0})  # pl_hist is (K,)
        return out.loss

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        self.method.after_step()  # after the optimiser step: EMA teacher, iteration + 1

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.student.parameters(), lr=2e-3)  # the student's only


if __name__ == "__main__":
    K, STEPS, SIZE = SyntheticDrivingClips.NUM_CLASSES, 4, (32, 64)
    torch.manual_seed(0)
    src = SyntheticDrivingClips("source", "train", length=2 * STEPS, size=SIZE)
    tgt = SyntheticDrivingClips("target", "train", length=2 * STEPS, size=SIZE)
    train = {"source": DataLoader(src, batch_size=2), "target": DataLoader(tgt, batch_size=2)}
    module = UDAModule(K, MethodConfig(adapt_start=2))
    trainer = L.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train)
    step, loss = trainer.global_step, float(trainer.callback_metrics["loss"])
    print(f"lightning: step {step}, iteration {module.method.iteration}, loss {loss:.3f}")
