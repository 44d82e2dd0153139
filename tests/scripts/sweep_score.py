"""A deterministic sweep child: its metric depends only on its hyperparameters and the epoch.

val_acc at epoch e (0-based) = quality * (e + 1) / epochs, quality = 1 - (x - 0.5) ** 2 - y / 10,
so a child with x far from 0.5 (or a large y) is poor from its first report on. With
--fail_above, a child whose x exceeds it fails after its first report."""
import argparse
import time

from kernel_lib.tracking import Run

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.5)
p.add_argument("--y", type=float, default=0.0)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--fail_above", type=float, default=None)
p.add_argument("--metric", default="val_acc")
a = p.parse_args()
run = Run.get_context()
quality = 1 - (a.x - 0.5) ** 2 - a.y / 10
for e in range(a.epochs):
    run.log(a.metric, quality * (e + 1) / a.epochs)
    run.flush()
    if a.fail_above is not None and a.x > a.fail_above:
        raise SystemExit(f"x={a.x} is above {a.fail_above}")
    time.sleep(a.sleep)
print(f"x={a.x} y={a.y} quality={quality:.4f}")
