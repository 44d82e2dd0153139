"""The entry script of a model registered with framework ONNX and deployed without one.

``init()`` opens the model's ``.onnx`` file with onnxruntime (CPU). ``run(raw_data)`` takes
``{"data": [...]}`` (one array: the model's first input; or ``{"data": {"input_name": [...]}}``
for several inputs), casts each array to the type the model declares, and answers
``{"result": <first output>, "outputs": {name: output, ...}}``.
"""

from __future__ import annotations

import json
import os

session = None

_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
          "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(bool)": "bool",
          "tensor(float16)": "float16", "tensor(int8)": "int8"}


def _model_file() -> str:
    root = os.environ["AZUREML_MODEL_DIR"]
    found = []
    for folder, _dirs, files in os.walk(root):
        found += [os.path.join(folder, f) for f in files if f.endswith(".onnx")]
    if len(found) != 1:
        raise FileNotFoundError(f"An ONNX model deployed without an entry script needs exactly one "
                                f".onnx file; {root} has {len(found)}: {sorted(found)}. Give an "
                                "entry_script to say which.")
    return found[0]


def init():
    global session
    import onnxruntime

    session = onnxruntime.InferenceSession(_model_file(), providers=["CPUExecutionProvider"])


def run(raw_data: str):
    import numpy as np

    body = json.loads(raw_data)
    if not isinstance(body, dict) or "data" not in body:
        raise ValueError('Send {"data": [...]} (the model\'s input as nested lists).')
    inputs = session.get_inputs()
    data = body["data"] if isinstance(body["data"], dict) else {inputs[0].name: body["data"]}
    feed = {}
    for i in inputs:
        if i.name not in data:
            raise ValueError(f"The model's input {i.name!r} is missing; it takes {[x.name for x in inputs]}.")
        feed[i.name] = np.asarray(data[i.name], dtype=_TYPES.get(i.type, "float32"))
    outputs = session.run(None, feed)
    names = [o.name for o in session.get_outputs()]
    as_lists = {n: o.tolist() for n, o in zip(names, outputs)}
    return {"result": as_lists[names[0]], "outputs": as_lists}
