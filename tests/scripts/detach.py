"""Leaves processes behind the way real scripts do, for the process-boundary faults.

``detach.py --tag TAG --pids DIR [--then linger|exit|fail] [--ddp] [--fail_rank R]``

Each rank starts: a child that calls ``os.setsid()``; a daemon (double fork, own session, the
middle process exits); a child that ignores SIGTERM (and SIGINT, SIGHUP); a child that starts a
grandchild in a process group of its own. Every one of them, and the rank itself, writes
``DIR/<role>-<rank>-<pid>.pid`` and has TAG in its command line, so a test can count survivors in
/proc by TAG (pids inside a container are not this host's). Once all six files of the rank are
there it prints ``spawned 6`` and then lingers (prints "working" until stopped), exits 0, or
fails (``--then``; ``--fail_rank R``: only rank R fails, the others linger). ``--ddp``: the ranks
join a gloo process group first.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

ROLES_PER_RANK = 6  # the rank, setsid, daemon, stubborn, group parent, group grandchild

p = argparse.ArgumentParser()
p.add_argument("--tag", required=True)
p.add_argument("--pids", required=True)
p.add_argument("--then", choices=("linger", "exit", "fail"), default="linger")
p.add_argument("--role", default="rank")
p.add_argument("--ddp", action="store_true")
p.add_argument("--fail_rank", type=int, default=-1)
args = p.parse_args()
pids = os.path.abspath(args.pids)
rank = os.environ.get("RANK", "0")


def record(role: str) -> None:
    os.makedirs(pids, exist_ok=True)
    path = os.path.join(pids, f"{role}-{rank}-{os.getpid()}.pid")
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)


def sleep_forever() -> None:
    while True:
        time.sleep(1000)


def spawn(role: str, **popen) -> None:
    subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", role, "--tag", args.tag,
                      "--pids", pids], stdin=subprocess.DEVNULL, **popen)


if args.role == "setsid":
    os.setsid()
    record("setsid")
    sleep_forever()
elif args.role == "daemon":
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    record("daemon")
    sleep_forever()
elif args.role == "stubborn":
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    record("stubborn")
    sleep_forever()
elif args.role == "group":
    spawn("grandchild", process_group=0)
    record("group")
    sleep_forever()
elif args.role == "grandchild":
    record("grandchild")
    sleep_forever()

# the rank itself
dist = None
if args.ddp:
    import torch.distributed as dist

    dist.init_process_group(backend="gloo")
record("rank")
for role in ("setsid", "daemon", "stubborn", "group"):
    spawn(role)
deadline = time.monotonic() + 60
while len([n for n in os.listdir(pids) if n.endswith(".pid") and f"-{rank}-" in n]) < ROLES_PER_RANK:
    assert time.monotonic() < deadline, "the detachers did not start"
    time.sleep(0.02)
print(f"spawned {ROLES_PER_RANK}", flush=True)
fails = args.then == "fail" if args.fail_rank < 0 else int(rank) == args.fail_rank
if fails:
    raise RuntimeError(f"planted failure at rank {rank}, leaving its children behind")
if args.then == "exit" and args.fail_rank < 0:
    if dist is not None:
        dist.destroy_process_group()
    sys.exit(0)
while True:
    print("working", flush=True)
    time.sleep(0.2)
