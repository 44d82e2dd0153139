"""Reads a dataset input: lists its files with their sha256 (outputs/seen.json), as given by
its argument (--data) and by run.input_datasets; --table: a tabular input's row count."""

import argparse
import hashlib
import json
import os

from kernel_lib.tracking import Run

p = argparse.ArgumentParser()
p.add_argument("--data")
p.add_argument("--input", default="fowl")
p.add_argument("--write", action="store_true", help="try to write into the input")
args = p.parse_args()
run = Run.get_context()
given = run.input_datasets[args.input]
seen = {"arg": args.data, "input": given if isinstance(given, str) else given.path, "files": {}}
if isinstance(given, str):
    for folder, _, names in os.walk(args.data):
        for n in names:
            full = os.path.join(folder, n)
            seen["files"][os.path.relpath(full, args.data)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
else:
    frame = given.to_pandas_dataframe()
    seen["rows"], seen["columns"] = len(frame), list(frame.columns)
    run.log("rows", len(frame))
if args.write:
    try:
        with open(os.path.join(args.data, "new.txt"), "w") as f:
            f.write("x")
        seen["wrote"] = True
    except OSError as exc:
        seen["wrote"] = str(exc)
os.makedirs("outputs", exist_ok=True)
with open("outputs/seen.json", "w") as f:
    json.dump(seen, f)
print("read", len(seen["files"]), "files from", args.data)
