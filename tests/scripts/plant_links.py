"""Plants links that lead out of the run (and one that stays inside), for the containment tests.

--secret FILE and --secret-dir DIR are outside the run. Links go into the run's logs/ and
outputs/ directly (through JUPYTER_TRAIN_RUN_DIR) and into the working copy's outputs/ and logs/,
which finalize moves into the run's history."""
import argparse
import os

p = argparse.ArgumentParser()
p.add_argument("--secret", required=True)
p.add_argument("--secret-dir", required=True)
args = p.parse_args()
run_dir = os.environ["JUPYTER_TRAIN_RUN_DIR"]


def link(target, name):
    os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
    os.symlink(target, name)


for d in ("outputs/model", "logs"):
    os.makedirs(d, exist_ok=True)
with open("outputs/real.txt", "w") as f:
    f.write("real\n")
with open("outputs/model/weights.bin", "wb") as f:
    f.write(b"\x00weights\x01" * 100)
link("real.txt", "outputs/alias.txt")  # stays inside: followed
link(args.secret, "outputs/moved.txt")  # moved into outputs/ by finalize
link(args.secret_dir, "outputs/moveddir")
link(args.secret, "outputs/model/stolen.bin")  # registered with the model folder
link("../" * (run_dir.count("/") + 4) + args.secret.lstrip("/"), "outputs/model/relative.bin")
link(args.secret, "logs/user_secret.txt")  # into logs/user/ by finalize
# straight into the run's history, while the run goes on
link("/etc/passwd", os.path.join(run_dir, "logs", "x.txt"))
link(args.secret, os.path.join(run_dir, "logs", "secret.txt"))
link(args.secret_dir, os.path.join(run_dir, "logs", "dir"))
link(args.secret, os.path.join(run_dir, "outputs", "leak.txt"))
link(args.secret_dir, os.path.join(run_dir, "outputs", "leakdir"))
link("../spec.json", os.path.join(run_dir, "outputs", "spec.json"))  # inside the run, not history
os.mkfifo(os.path.join(run_dir, "logs", "pipe.txt"))
print("planted", flush=True)
