"""Fails after replacing its own log with a link to --secret (the run's error quotes the last
line of the log) and leaving an error file that is a link to --secret-json."""
import argparse
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("--secret", required=True)
p.add_argument("--secret-json", required=True)
args = p.parse_args()
run_dir = os.environ["JUPYTER_TRAIN_RUN_DIR"]
log = os.path.join(run_dir, "logs", "rank_0.txt")
print("replacing my log", flush=True)
os.replace(log, log + ".old")
os.symlink(args.secret, log)
os.makedirs(os.path.join(run_dir, "errors"), exist_ok=True)
os.symlink(args.secret_json, os.path.join(run_dir, "errors", "rank_0.json"))
sys.exit(3)
