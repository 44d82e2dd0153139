"""A training script written for Azure ML SDK v1, unmodified: it logs through azureml.core."""
import os
import subprocess
import sys

from azureml.core import Run
from azureml.core.run import Run as SameRun

run = Run.get_context()
assert run is SameRun.get_context()
print("run id", run.id, "experiment", run.experiment.name, flush=True)
run.log("lr", 0.01)
for epoch in range(3):
    run.log("loss", 1.0 / (epoch + 1))
run.log_list("accuracies", [0.5, 0.75])
run.log_row("confusion", tp=5, fp=1)
run.tag("framework", "pytorch")
run.set_tags({"stage": "v1-script"})
os.makedirs("outputs", exist_ok=True)
with open("notes.txt", "w") as f:
    f.write("uploaded\n")
run.upload_file("notes.txt", "notes.txt")
print("has submit_child:", hasattr(run, "submit_child"), flush=True)
# a child process of the job sees the module too (PYTHONPATH), e.g. a DataLoader worker
child = subprocess.run([sys.executable, "-c", "import azureml.core; print('child ok')"],
                       capture_output=True, text=True)
print(child.stdout.strip() or child.stderr.strip(), flush=True)
run.complete()
