"""Floods its output: --mode lines (--mb MiB of 100-byte lines), longline (--mb MiB of one UTF-8
line of 3-byte characters, no newline at all) or binary (--mb MiB of every byte value)."""
import argparse
import sys

p = argparse.ArgumentParser()
p.add_argument("--mode", choices=("lines", "longline", "binary"), default="lines")
p.add_argument("--mb", type=int, default=1)
args = p.parse_args()
blocks = {"lines": (b"x" * 99 + b"\n") * 10486,
          "longline": "\u2588".encode() * 349525,  # a progress bar that never ends its line
          "binary": bytes(range(256)) * 4096}
block = blocks[args.mode][: 1 << 20]
if args.mode == "longline":
    block = block[: len(block) - len(block) % 3]  # whole characters in every block
out = sys.stdout.buffer
for _ in range(args.mb):
    out.write(block)
out.flush()
