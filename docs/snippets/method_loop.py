import torch
from torch.utils.data import DataLoader

from dastc.data import SyntheticDrivingClips
from dastc.methods import DASTC, MethodConfig
from two_stage_net import TwoStageNet  # docs/snippets/two_stage_net.py

K, STEPS, SIZE = SyntheticDrivingClips.NUM_CLASSES, 6, (32, 64)  # raise STEPS for real training
torch.manual_seed(0)
src = SyntheticDrivingClips("source", "train", length=2 * STEPS, size=SIZE)  # labelled
tgt = SyntheticDrivingClips("target", "train", length=2 * STEPS, size=SIZE)  # labels unused
src_loader, tgt_loader = DataLoader(src, batch_size=2), DataLoader(tgt, batch_size=2)

student = TwoStageNet(K, width=16)
method = DASTC(student, K, MethodConfig(adapt_start=2))  # 2 source-only steps, then adaptation
opt = torch.optim.AdamW(student.parameters(), lr=2e-3)  # the student's weights only

for s, t in zip(src_loader, tgt_loader, strict=True):  # dicts: clip, label, flow_prev, ...
    out = method(s, t)  # StepOutput(loss, logs); target labels are not read
    if not torch.isfinite(out.loss):  # a bad step: undo its statistics, keep the teacher
        method.skip_step()
        continue
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    method.after_step()  # the EMA teacher follows the student; iteration + 1

terms = ", ".join(f"{k} {float(v):.3f}" for k, v in out.logs.items() if v.dim() == 0)
print(f"iteration {method.iteration}: {terms}")
