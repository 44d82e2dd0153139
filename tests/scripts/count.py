"""Prints --n numbered lines and logs a metric with each, --sleep seconds apart."""
import argparse
import os
import time

from kernel_lib.tracking import Run

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=5)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--output", default="outputs/result.txt")
args = p.parse_args()
run = Run.get_context()
run.log("n", args.n)
for i in range(args.n):
    print(f"line {i}", flush=True)
    run.log("loss", 1.0 / (i + 1))
    time.sleep(args.sleep)
run.tag("finished", "yes")
os.makedirs(os.path.dirname(args.output), exist_ok=True)
with open(args.output, "w") as f:
    f.write(f"counted to {args.n}\n")
print("done", flush=True)
