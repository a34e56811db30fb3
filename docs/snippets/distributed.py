"""DA-STC blocks under DDP: torchrun --nproc_per_node 4 docs/snippets/distributed.py"""

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

import dastc
from dastc.data import SyntheticDrivingClips
from dastc.functional import weighted_cross_entropy
from tiny_net import TinyNet  # docs/snippets/tiny_net.py

K, STEPS, SIZE = SyntheticDrivingClips.NUM_CLASSES, 4, (32, 64)

dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")  # env set by torchrun
rank, world = dist.get_rank(), dist.get_world_size()
local_rank = int(os.environ.get("LOCAL_RANK", 0))
device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
if device.type == "cuda":
    torch.cuda.set_device(device)
torch.manual_seed(0)  # the same initial weights on every process

model = TinyNet(K).to(device)
student = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None)
teacher = dastc.EMATeacher(student, momentum=0.99, warmup=True)  # one per process, no comms
mix = dastc.BidirectionalClipMix(num_classes=K)
agg = dastc.SpatioTemporalPrototypeAggregator(K, feat_dim=16).to(device)  # syncs over the world
align = dastc.IntraInterClassAlignmentLoss()
opt = torch.optim.AdamW(student.parameters(), lr=2e-3)

src = SyntheticDrivingClips("source", "train", length=2 * world * STEPS, size=SIZE)
tgt = SyntheticDrivingClips("target", "train", length=2 * world * STEPS, size=SIZE)
src_loader = DataLoader(src, batch_size=2, sampler=DistributedSampler(src, seed=0))
tgt_loader = DataLoader(tgt, batch_size=2, sampler=DistributedSampler(tgt, seed=1))
g = torch.Generator(device).manual_seed(1000 + rank)  # a different class draw per process

for s, t in zip(src_loader, tgt_loader, strict=True):
    xs, ys, xt = s["clip"].to(device), s["label"].to(device), t["clip"].to(device)
    pl = teacher.pseudo_label(xt)
    out = mix(xs, ys, xt, pl.label, pl.weight, generator=g)
    deep_s, logits_s = student(xs, with_deep=True)  # every forward through DDP
    deep_t, _ = student(xt, with_deep=True)
    loss = weighted_cross_entropy(logits_s, ys)
    loss = loss + weighted_cross_entropy(student(out.s2t_clip), out.s2t_label, out.s2t_weight)
    loss = loss + weighted_cross_entropy(student(out.t2s_clip), out.t2s_label, out.t2s_weight)
    # Prototypes of the global batch: per-class sums and counts are all-reduced.
    loss = loss + 0.1 * align(agg(deep_s, ys), agg(deep_t, pl.label, pl.confidence))
    opt.zero_grad()
    loss.backward()  # DDP averages the gradients
    opt.step()
    teacher.update(student)  # students stay equal, so do the teachers

cm = dastc.ConfusionMatrix(K, device=device)
val = SyntheticDrivingClips("target", "val", length=4 * world, size=SIZE)
with torch.no_grad():
    for item in DataLoader(val, batch_size=2, sampler=DistributedSampler(val, shuffle=False)):
        cm.update(teacher(item["clip"].to(device)).argmax(2), item["label"].to(device))
cm.sync()  # sum the confusion matrices of all processes
if rank == 0:
    print(f"{world} processes: target mIoU {100 * float(cm.compute()[1]):.1f}")
dist.barrier()  # every process is done with the group before it is torn down
dist.destroy_process_group()
