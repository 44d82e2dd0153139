"""An entry script in Azure ML's contract: init() loads the model's weights, run() scales the input.
run() also obeys test commands: "boom" raises, "die" ends the process (a crash), "env" answers
what init() saw."""
import json
import os
import sys

from azureml.core.model import Model

model = None
seen = {}


def init():
    global model
    path = Model.get_model_path("scaler")
    with open(path) as f:
        model = json.load(f)
    seen.update(model_dir=os.environ["AZUREML_MODEL_DIR"], path=path, pid=os.getpid(),
                threads=os.environ.get("OMP_NUM_THREADS"), python=sys.executable)
    print("init: loaded", path, flush=True)


def run(raw_data):
    data = json.loads(raw_data)["data"]
    if data == "boom":
        raise ValueError("boom, as asked")
    if data == "die":
        os._exit(9)
    if data == "env":
        return seen
    if data == "not json":
        return {1, 2}
    return {"result": [x * model["scale"] for x in data]}
