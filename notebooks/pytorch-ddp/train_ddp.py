"""Distributed data-parallel training of a small classifier on scikit-learn's digits.

Runs the same under torchrun (PyTorchConfiguration) and mpirun (MpiConfiguration): the
launcher sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT either way, so
``init_process_group`` reads them from the environment.
"""

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.nn.parallel import DistributedDataParallel as DDP

from kernel_lib.tracking import Run


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch_size", type=int, default=25)
    p.add_argument("--backend", default="gloo", help="gloo (CPU) or nccl (GPUs)")
    p.add_argument("--output_dir", default="./outputs")
    args = p.parse_args()

    dist.init_process_group(backend=args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    use_cuda = args.backend == "nccl" and torch.cuda.is_available()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")
    run = Run.get_context()
    if rank == 0:
        print(f"world size {world}, backend {args.backend}, device {device}", flush=True)

    torch.manual_seed(0)  # same initial weights on every rank (DDP broadcasts rank 0's anyway)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32, device=device)
    y = torch.tensor(y, device=device)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0)).to(device)
    train, val = perm[:1500], perm[1500:]
    shard = train[rank::world]  # each rank sees its own slice of the training set

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    ddp = DDP(model, device_ids=[device.index] if use_cuda else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        for batch in shard.split(args.batch_size):
            loss = loss_fn(ddp(X[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (model(X[val]).argmax(1) == y[val]).float().mean().item()
        run.log("train_loss", loss.item())
        run.log("val_acc", acc)
        run.log("epoch", epoch)
        if rank == 0:
            print(f"epoch {epoch}: loss {loss.item():.4f} val_acc {acc:.4f}", flush=True)

    # DDP keeps replicas in step: check it, and say so in the metrics
    flat = torch.cat([q.detach().flatten() for q in model.parameters()])
    replicas = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(replicas, flat)
    run.log("replicas_identical", int(all(torch.equal(r, replicas[0]) for r in replicas)))
    if rank == 0:
        os.makedirs(args.output_dir, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(args.output_dir, "model.pt"))
        print(f"final val_acc {acc:.4f}; saved {args.output_dir}/model.pt", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
