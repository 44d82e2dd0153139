"""DDP on scikit-learn's digits: every rank trains on its shard; checks that parameters agree."""
import argparse
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.nn.parallel import DistributedDataParallel as DDP

from kernel_lib.tracking import Run

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=8)
p.add_argument("--fail_rank", type=int, default=-1)
p.add_argument("--tag", default="")
args = p.parse_args()

dist.init_process_group(backend=os.environ.get("JUPYTER_TRAIN_BACKEND") or "gloo")
rank, world = dist.get_rank(), dist.get_world_size()
run = Run.get_context()
names = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
         "AZ_BATCHAI_PYTORCH_INIT_METHOD", "AZ_BATCHAI_TASK_INDEX"]
print("env", " ".join(f"{n}={os.environ.get(n)}" for n in names), f"tag={args.tag}", f"cwd={os.getcwd()}",
      flush=True)

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = torch.tensor(X / 16.0, dtype=torch.float32)
y = torch.tensor(y)
perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
train, val = perm[:1500], perm[1500:]
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
ddp = DDP(model)
opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
shard = train[rank::world]
for epoch in range(args.epochs):
    if epoch == 1 and rank == args.fail_rank:
        raise RuntimeError(f"planted failure at rank {rank}")
    for batch in shard.split(25):
        loss = loss_fn(ddp(X[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (model(X[val]).argmax(1) == y[val]).float().mean().item()
    run.log("loss", loss.item())
    run.log("val_acc", acc)
    run.log("epoch", epoch)
flat = torch.cat([q.detach().flatten() for q in model.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
run.log("params_identical", int(all(torch.equal(g, gathered[0]) for g in gathered)))
print(f"rank {rank} done val_acc={acc:.4f}", flush=True)
if rank == 0:
    os.makedirs("outputs", exist_ok=True)
    torch.save(model.state_dict(), "outputs/model.pt")
dist.destroy_process_group()
