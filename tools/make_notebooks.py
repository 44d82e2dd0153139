"""Write the tutorial notebooks (no outputs) from the cell lists below.

    python tools/make_notebooks.py

Kept as code so a change to a tutorial is a reviewable diff; CI executes the notebooks."""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent / "notebooks"


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text):
    return nbformat.v4.new_code_cell(text.strip())


BIRDS = [
    md("""
# Train PyTorch models at scale: the pytorch-birds tutorial

This follows Azure Machine Learning's *"Train PyTorch models at scale"* article (SDK v1) step by step,
on your own machine with **jupyter-train**: nothing to rent, nothing downloaded. The calls are the
article's; only the imports change (`azureml.core` → `kernel_lib`).

You will: connect to a workspace, make the data, create a compute cluster, pick an environment,
configure and submit a training run, watch it live, register the model, download it, export it to
ONNX and classify a validation image with onnxruntime, then deploy the model as a web service and
classify an image over HTTP.
"""),
    code("""
import os

from kernel_lib import (AmlCompute, ComputeTarget, ComputeTargetException, Dataset, Environment,
                        Experiment, Model, RunDetails, ScriptRunConfig, Workspace)
"""),
    md("""
## Connect to the workspace

A workspace holds experiments, runs, models, environments and compute targets. `Workspace.from_config()`
reads `config.json` from this folder or a parent; the first cell writes one pointing at your default
workspace (`$JUPYTER_TRAIN_WORKSPACE`, else `~/.jupyter-train/workspace`) if there is none.
"""),
    code("""
if not os.path.exists("config.json"):
    Workspace.default().write_config(".")
ws = Workspace.from_config()
print("Workspace:", ws.name, ws.path)
"""),
    md("""
## Get the data

The article downloads a small set of chicken and turkey photos. Offline, `make_data.py` draws a
comparable two-class image folder (`train/` and `val/`, one folder per class). To train on real
images, point `data_dir` at any folder laid out the same way.
"""),
    code("""
from make_data import make_imagefolder

data_dir = os.path.abspath(make_imagefolder("data/fowl", seed=0))
classes = sorted(os.listdir(os.path.join(data_dir, "train")))
print(data_dir, classes)
"""),
    md("""
## Register the data as a dataset

As the article advises, the script reads its data through a dataset rather than the source folder.
The files go to the workspace's default datastore, and a dataset version names them by content: a
later change makes a new version, never a silent change of this one. A run gets it with
`as_mount()` (the nodes read the datastore's folder as it is, where they can see it) or
`as_download()` (copied to each node before the script starts, cached there by content).
"""),
    code("""
datastore = ws.get_default_datastore()
datastore.upload(src_dir=data_dir, target_path="fowl", overwrite=True, show_progress=True)
dataset = Dataset.File.from_files(path=(datastore, "fowl/**")).register(ws, "fowl", create_new_version=True)
print(dataset)
"""),
    md("""
## Create a compute cluster

A cluster's nodes are slots of this machine (`vm_size` is `cpu:N` or `gpu:N`, or a shape you name in
`c.TrainApp.node_shapes`). It scales from `min_nodes` to `max_nodes` as runs need nodes.
"""),
    code("""
cluster_name = "cpu-cluster"
try:
    compute_target = ComputeTarget(workspace=ws, name=cluster_name)
    print("Found existing compute target")
except ComputeTargetException:
    print("Creating a new compute target...")
    compute_config = AmlCompute.provisioning_configuration(vm_size="cpu:1", max_nodes=2)
    compute_target = ComputeTarget.create(ws, cluster_name, compute_config)
    compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)

print(compute_target.get_status().serialize())
"""),
    md("""
## Define the environment

A curated environment runs on an interpreter that is already there (no build):
"""),
    code("""
curated_env = Environment.get(workspace=ws, name="Curated-PyTorch")
curated_env
"""),
    md("""
Or define your own from a conda specification, as the article does. It is built once (a virtual
environment made with uv; conda packages mapped to their pip names), cached by its contents and reused
by every run that asks for it. The build's progress shows in the run's `logs/prepare.txt`.
"""),
    code("""
print(open("conda_dependencies.yml").read())
pytorch_env = Environment.from_conda_specification(name="pytorch-birds", file_path="conda_dependencies.yml")
pytorch_env = pytorch_env.register(ws)
pytorch_env
"""),
    md("""
## Configure and submit the training run

`pytorch_train.py` is the article's training script (transfer learning on ResNet-18, here from random
weights). The source directory is snapshotted (`.amlignore` keeps `data/`, `outputs/` and notebooks
out); whatever the script writes under `./outputs` is kept with the run.
"""),
    code("""
src = ScriptRunConfig(source_directory=".",
                      script="pytorch_train.py",
                      arguments=["--num_epochs", 2, "--output_dir", "./outputs",
                                 "--data_dir", dataset.as_named_input("fowl").as_mount(),
                                 "--image_size", 64, "--batch_size", 16, "--learning_rate", 0.01],
                      compute_target=compute_target,
                      environment=pytorch_env)

run = Experiment(ws, name="Tutorial-pytorch-birds").submit(src)
RunDetails(run).show()
"""),
    code("""
run.wait_for_completion(show_output=True)
"""),
    code("""
metrics = run.get_metrics()
for name in ("train_loss", "val_loss", "val_acc"):
    print(f"{name:10s}", [round(v, 4) for v in metrics[name]])
print("best_val_acc", metrics["best_val_acc"])
"""),
    md("""
## Register the model

A model version keeps its lineage (the run and its experiment) and a checksum; registering the same
file again makes a new version without storing the bytes twice.
"""),
    code("""
model = run.register_model(model_name="pytorch-birds", model_path="outputs/model.pt",
                           model_framework="PyTorch", tags={"best_val_acc": f"{metrics['best_val_acc']:.4f}"})
print(model.id, "from run", model.run_id, "of", model.experiment_name, model.checksum)
"""),
    md("""
## Download the model

As in the article: every file of the run whose name starts with `outputs/model`.
"""),
    code("""
os.makedirs("./model", exist_ok=True)

for f in run.get_file_names():
    if f.startswith("outputs/model"):
        output_file_path = os.path.join("./model", f.split("/")[-1])
        print("Downloading from {} to {} ...".format(f, output_file_path))
        run.download_file(name=f, output_file_path=output_file_path)
"""),
    md("""
## Export to ONNX and classify with onnxruntime

`kernel_lib.onnx.export` writes the ONNX file, runs the same input through PyTorch and onnxruntime, and
keeps the file only if they agree (within `atol + rtol*|value|`); with `register_onnx=True` it is
registered too, with framework "Onnx".
"""),
    code("""
import torch
from kernel_lib.onnx import export

net = torch.load("model/model.pt", weights_only=False, map_location="cpu")
result = export(net, torch.randn(1, 3, 64, 64), "model/model.onnx",
                register_onnx=True, workspace=ws, model_name="pytorch-birds-onnx")
print(result)
"""),
    code("""
import glob

import numpy as np
import onnxruntime as ort
from PIL import Image
from torchvision import transforms

# the validation transform of pytorch_train.py, at the size the model was trained on
val_transform = transforms.Compose([transforms.Resize(int(round(64 * 256 / 224))), transforms.CenterCrop(64),
                                    transforms.ToTensor(),
                                    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
session = ort.InferenceSession("model/model.onnx", providers=["CPUExecutionProvider"])

def classify(path):
    x = val_transform(Image.open(path).convert("RGB")).unsqueeze(0).numpy()
    scores = session.run(None, {"input": x})[0][0]
    return classes[int(np.argmax(scores))]

image = sorted(glob.glob(os.path.join(data_dir, "val", "turkeys", "*")))[0]
print(f"{os.path.basename(image)} is a turkey; onnxruntime says: {classify(image)}")

val_images = [(p, c) for c in classes for p in sorted(glob.glob(os.path.join(data_dir, "val", c, "*")))]
correct = sum(classify(p) == c for p, c in val_images)
print(f"onnxruntime val accuracy: {correct / len(val_images):.3f} on {len(val_images)} images")
"""),
    md("""
## Deploy the model as a web service

As in the article's notebook: an entry script whose `init()` loads the model once and whose `run()`
classifies one image per request, deployed with `Model.deploy`. The service runs on this machine as
a long-running run of the experiment `services` (it keeps serving through kernel and server restarts,
and is started again if it crashes); `AciWebservice.deploy_configuration` is accepted as is
(`cpu_cores` becomes the model's thread count). The Training panel's **Endpoints** section shows it.
"""),
    code("""
%%writefile pytorch_score.py
import json
import os

import torch
import torch.nn as nn


def init():
    global model
    # AZUREML_MODEL_DIR is an environment variable created during deployment.
    # It is the path to the model folder (./azureml-models/$MODEL_NAME/$VERSION)
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pt")
    model = torch.load(model_path, map_location=lambda storage, loc: storage, weights_only=False)
    model.eval()


def run(input_data):
    input_data = torch.tensor(json.loads(input_data)["data"])

    # get prediction
    with torch.no_grad():
        output = model(input_data)
        classes = ["chickens", "turkeys"]
        softmax = nn.Softmax(dim=1)
        pred_probs = softmax(output).numpy()[0]
        index = torch.argmax(output, 1)

    result = {"label": classes[index], "probability": str(pred_probs[index])}
    return result
"""),
    code("""
from kernel_lib.webservice import AciWebservice, InferenceConfig

inference_config = InferenceConfig(entry_script="pytorch_score.py", environment=curated_env)

aciconfig = AciWebservice.deploy_configuration(cpu_cores=1,
                                               memory_gb=1,
                                               tags={"data": "birds", "method": "transfer learning", "framework": "pytorch"},
                                               description="Classify turkey/chickens using transfer learning with PyTorch")

service = Model.deploy(workspace=ws,
                       name="aci-birds",
                       models=[model],
                       inference_config=inference_config,
                       deployment_config=aciconfig,
                       overwrite=True)
service.wait_for_deployment(True)
print(service.state)
"""),
    code("""
print(service.get_logs())
print(service.scoring_uri)
"""),
    md("""
## Test the web service

The image goes through the validation transform of `pytorch_train.py` (at the 64 px the model was
trained on) and is sent as JSON; `service.run` posts it through the server, which also works when
JupyterLab runs on another machine than the service.
"""),
    code("""
import json

def preprocess(image_file):
    \"\"\"Preprocess the input image.\"\"\"
    image = Image.open(image_file).convert("RGB")
    return val_transform(image).float().unsqueeze(0).numpy()

test_img = sorted(glob.glob(os.path.join(data_dir, "val", "turkeys", "*")))[0]
input_data = preprocess(test_img)
result = service.run(input_data=json.dumps({"data": input_data.tolist()}))
print(result)
"""),
    md("""
## Delete the web service

`delete()` stops the service; when it returns, nothing it started is left running.
"""),
    code("""
service.delete()
"""),
    md("""
## Clean up

The cluster scales down to `min_nodes` by itself after `idle_seconds_before_scaledown`; delete it when
you no longer need it with `compute_target.delete()`. Runs, models and environments stay in the
workspace; see them in JupyterLab's **Training** panel.
"""),
]

ENVIRONMENTS = [
    md("""
# Environments: curated, from pip or conda specs, built once and cached

A run's environment decides which Python and packages its script sees. Without one, a run uses the
notebook server's interpreter. This tutorial registers an environment, runs a script that needs a
package the server does not have, and shows the build being reused.
"""),
    code("""
import os
import tempfile

from kernel_lib import CondaDependencies, Environment, Experiment, ScriptRunConfig, Workspace

ws = Workspace.default()
[e.name for e in Environment.list(ws).values()]
"""),
    md("""
## A curated environment

Curated environments need no build: `Curated-PyTorch` is the server's own interpreter (with torch).
"""),
    code("""
curated = Environment.get(ws, "Curated-PyTorch")
print(curated.name, curated.version)
"""),
    md("""
## Your own, from pip packages

`toolz` is a small pure-Python package the server's interpreter does not have.
"""),
    code("""
env = Environment("tutorial-toolz")
env.python.conda_dependencies = CondaDependencies.create(pip_packages=["toolz"])
env = env.register(ws)
print(env.name, "version", env.version)
"""),
    code("""
src_dir = tempfile.mkdtemp()
with open(os.path.join(src_dir, "uses_toolz.py"), "w") as f:
    f.write("import toolz, sys\\nprint('toolz', toolz.__version__, 'from', sys.prefix)\\n")

config = ScriptRunConfig(source_directory=src_dir, script="uses_toolz.py", environment=env)
first = Experiment(ws, "environments").submit(config)
first.wait_for_completion(show_output=True)
print(first.get_log("prepare.txt"))
"""),
    md("""
The second run with the same environment skips the build: the environment is cached by what
determines it (interpreter and requirements), not by its name.
"""),
    code("""
second = Experiment(ws, "environments").submit(config)
second.wait_for_completion(show_output=True)
print(second.get_log("prepare.txt"))
"""),
    md("""
## From a conda specification

`Environment.from_conda_specification` reads an Azure ML style `conda_dependencies.yml`; conda packages
are mapped to their pip names (`pytorch` → `torch`) and installed with uv. `jupyter train env list`
shows the cache; `jupyter train env prune` removes what no queued or running run uses.
"""),
    code("""
spec = os.path.join(src_dir, "conda_dependencies.yml")
with open(spec, "w") as f:
    f.write("name: tutorial-conda\\ndependencies:\\n  - python=3.11\\n  - pip\\n  - pip:\\n      - toolz\\n")
conda_env = Environment.from_conda_specification("tutorial-conda", spec).register(ws)
print(conda_env.name, conda_env.version, conda_env.python.conda_dependencies.pip_packages)
"""),
]


HYPERDRIVE = [
    md("""
# Tune the pytorch-birds model: hyperparameter sweeps with early termination

After one run, the article's notebook (*train-hyperparameter-tune-deploy-with-pytorch*) tunes the
learning rate and momentum with HyperDrive. The cells below are its cells; only the imports
(`azureml.train.hyperdrive` → `kernel_lib.hyperdrive`) and the CPU-sized values change (4 children,
2 at once, 2 epochs at 64 px). The sweep runs on the server: it samples with Optuna, applies the
policy as each child's metrics arrive, and goes on if the kernel or the server restarts.
"""),
    code("""
import os

from kernel_lib import (AmlCompute, ComputeTarget, ComputeTargetException, Environment, Experiment,
                        RunDetails, ScriptRunConfig, Workspace)
from kernel_lib.hyperdrive import (BanditPolicy, HyperDriveConfig, PrimaryMetricGoal,
                                   RandomParameterSampling, uniform)

if not os.path.exists("config.json"):
    Workspace.default().write_config(".")
ws = Workspace.from_config()

from make_data import make_imagefolder

data_dir = os.path.abspath(make_imagefolder("data/fowl", seed=0))

cluster_name = "cpu-cluster"
try:
    compute_target = ComputeTarget(workspace=ws, name=cluster_name)
    print("Found existing compute target")
except ComputeTargetException:
    print("Creating a new compute target...")
    compute_config = AmlCompute.provisioning_configuration(vm_size="cpu:1", max_nodes=2)
    compute_target = ComputeTarget.create(ws, cluster_name, compute_config)
    compute_target.wait_for_completion(show_output=True)

pytorch_env = Environment.get(workspace=ws, name="Curated-PyTorch")
src = ScriptRunConfig(source_directory=".",
                      script="pytorch_train.py",
                      arguments=["--num_epochs", 2, "--output_dir", "./outputs", "--data_dir", data_dir,
                                 "--image_size", 64, "--batch_size", 16],
                      compute_target=compute_target,
                      environment=pytorch_env)
"""),
    md("""
## Define the search space and the early termination policy

Each child gets `--learning_rate` and `--momentum` drawn at random (a name without dashes is passed
as `--name`). The Bandit policy stops a child whose `best_val_acc` falls more than 15% below the best
child's at the same interval, from the tenth report on (the script reports `best_val_acc` once, at
its end, so with 2 epochs no child is judged: raise `--num_epochs` and log it each epoch to see it
stop children). The README's "Hyperparameter sweeps" section gives each policy's rule.
"""),
    code("""
param_sampling = RandomParameterSampling({
    "learning_rate": uniform(0.0005, 0.005),
    "momentum": uniform(0.9, 0.99),
}, seed=1)

early_termination_policy = BanditPolicy(slack_factor=0.15, evaluation_interval=1, delay_evaluation=10)

hyperdrive_config = HyperDriveConfig(run_config=src,
                                     hyperparameter_sampling=param_sampling,
                                     policy=early_termination_policy,
                                     primary_metric_name="best_val_acc",
                                     primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                                     max_total_runs=4,
                                     max_concurrent_runs=2)
"""),
    md("""
## Submit the sweep and watch it

The monitor shows the children live: a table sorted by `best_val_acc` with each hyperparameter as a
column, a parallel-coordinates chart, and `best_val_acc` of every child over time.
"""),
    code("""
hyperdrive_run = Experiment(ws, "pytorch-birds-hd").submit(hyperdrive_config)
RunDetails(hyperdrive_run).show()
"""),
    code("""
hyperdrive_run.wait_for_completion(show_output=True)
"""),
    md("""
## Find and register the best model
"""),
    code("""
best_run = hyperdrive_run.get_best_run_by_primary_metric()
print(best_run.get_details()["runDefinition"]["arguments"])
print(best_run.get_file_names())
for row in hyperdrive_run.get_children_sorted_by_primary_metric():
    print(row["run_id"], row["status"], row["best_primary_metric"], row["hyperparameters"])
"""),
    code("""
model = best_run.register_model(model_name="pytorch-birds-hd", model_path="outputs/model.pt")
print(model.name, model.version, "from run", model.run_id)
"""),
]


def write(path: Path, cells) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    print("wrote", path.relative_to(ROOT.parent))


if __name__ == "__main__":
    write(ROOT / "pytorch-birds" / "train-pytorch-birds.ipynb", BIRDS)
    write(ROOT / "environments" / "environments.ipynb", ENVIRONMENTS)
    write(ROOT / "pytorch-birds" / "hyperdrive-pytorch-birds.ipynb", HYPERDRIVE)
