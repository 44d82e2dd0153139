"""Logs --n points of "loss" (steps 0..n-1) as fast as it can, for the metrics fault tests.

--via log: n calls of run.log() in a tight loop (what a user's per-step logging does).
--via file: the same records written straight to this rank's metrics file in big appends, in
  the format kernel_lib.tracking writes (a million in about a second, to test the server).
--garbage: bad lines between the good ones, and a last good record without its newline.
Values: a pseudo-random walk in [0, 1), with the series' minimum -5.0 at step n//3 and its
maximum 7.0 at step 2n//3 (the downsampled view must show both). Prints "logged N" at the end.
"""
import argparse
import os
import time

from kernel_lib.tracking import Run, _encode

GARBAGE = [b"not json at all\n", b'{"k":"m","n":"loss","v":\n', b"\xff\xfe\x00binary\n",
           b'{"k":"m","n":"loss","v":[1,2],"s":-1}\n', b"\n", b"[1, 2, 3]\n",
           b'{"k":"m","n":"","v":1}\n', b'{"k":"m","n":"loss","v":{"a":1},"s":-2}\n']


def value(i: int, n: int) -> float:
    if i == n // 3:
        return -5.0
    if i == 2 * n // 3:
        return 7.0
    return (i * 7919 % 1000003) / 1000003


def via_log(run: Run, count: int, n: int) -> None:
    log = run.log
    for i in range(count):
        log("loss", value(i, n))


def via_file(path: str, count: int, n: int, garbage: bool, chunk: int = 50_000) -> None:
    t = time.time()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for start in range(0, count, chunk):
            lines = [_encode(("m", "loss", value(i, n), i, t)) for i in range(start, min(count, start + chunk))]
            data = ("\n".join(lines) + "\n").encode()
            if garbage:
                data += GARBAGE[(start // chunk) % len(GARBAGE)]
            os.write(fd, data)
    finally:
        os.close(fd)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--via", choices=["log", "file"], default="log")
    p.add_argument("--garbage", action="store_true")
    p.add_argument("--sleep_after", type=float, default=0.0)
    args = p.parse_args()
    run = Run.get_context()
    path = os.path.join(os.environ["JUPYTER_TRAIN_METRICS_DIR"], f"rank_{run.rank}.jsonl")
    count = args.n - 1 if args.garbage else args.n  # the last one goes without its newline
    if args.via == "log":
        via_log(run, count, args.n)
        run.flush()
    else:
        via_file(path, count, args.n, args.garbage)
    if args.garbage:
        tail = _encode(("m", "loss", value(count, args.n), count, time.time())).encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, tail)  # no newline: the run ends with a partial last line
        os.close(fd)
    print(f"logged {args.n}", flush=True)
    time.sleep(args.sleep_after)


if __name__ == "__main__":
    main()
