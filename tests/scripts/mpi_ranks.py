"""Under mpirun: report the rank variables and do a gloo all-reduce through MASTER_ADDR/PORT."""
import os

import torch
import torch.distributed as dist

from kernel_lib.tracking import Run

keys = ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK"]
print("env", " ".join(f"{k}={os.environ.get(k)}" for k in keys), flush=True)
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank())])
dist.all_reduce(t)
Run.get_context().log("rank", dist.get_rank())
Run.get_context().log("rank_sum", t.item())
dist.destroy_process_group()
