"""Export a PyTorch model to ONNX, checked by onnxruntime before it is kept.

    from kernel_lib.onnx import export
    result = export(model, torch.randn(1, 3, 224, 224), "outputs/model.onnx",
                    register_onnx=True, workspace=ws, model_name="birds-onnx")
    result.max_abs_diff      # largest |onnxruntime - PyTorch| over the sample's outputs

The export is written to a temporary file next to ``path``, the same sample input is run
through PyTorch and through onnxruntime (CPU), and only when every output agrees within the
tolerance is the file moved to ``path``: a refused export never replaces a file you had.

Tolerance: an element agrees when ``|ort - torch| <= atol + rtol * |torch|`` (numpy.allclose);
the defaults ``rtol=1e-3, atol=1e-5`` allow float32 reordering in convolutions and matmuls and
catch real divergence (a wrong op, a baked-in training-mode layer). Pass looser values for
models with large activations, or ``check=False`` to skip the check (not recommended).

Needs the ``onnx`` and ``onnxruntime`` packages (``pip install jupyter-train[onnx]``).
"""

from __future__ import annotations

import os
import secrets
import warnings
from dataclasses import dataclass, field

from .client import TrainError

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-5


class OnnxExportError(TrainError):
    """The exported model disagrees with PyTorch beyond the tolerance (nothing was written)."""

    def __init__(self, message: str, max_abs_diff: float | None = None):
        super().__init__(message, "onnx_mismatch")
        self.max_abs_diff = max_abs_diff


@dataclass
class ExportResult:
    path: str
    opset: int
    max_abs_diff: float
    max_rel_diff: float
    input_names: list[str]
    output_names: list[str]
    model: object = None  # the registered kernel_lib.Model when register_onnx=True
    checked: bool = True
    providers: list[str] = field(default_factory=list)

    def __repr__(self):
        reg = f", model={self.model.id!r}" if self.model is not None else ""
        return (f"ExportResult(path={self.path!r}, opset={self.opset}, "
                f"max_abs_diff={self.max_abs_diff:.3g}{reg})")


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise TrainError(f"ONNX export needs the '{module}' package: pip install "
                         "'jupyter-train[onnx]' (onnx and onnxruntime).", "missing_dependency") from None


def _load(model_or_path):
    import torch

    if isinstance(model_or_path, torch.nn.Module):
        return model_or_path
    path = os.fspath(model_or_path)
    if not os.path.isfile(path):
        raise TrainError(f"{path!r} is neither a torch.nn.Module nor a saved model file.", "invalid_request")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            return torch.jit.load(path, map_location="cpu")
    except (RuntimeError, ValueError):
        pass
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, torch.nn.Module):
        raise TrainError(f"{path!r} holds a {type(obj).__name__}, not a whole model (a state_dict "
                         "needs its model class: build the model, load_state_dict, pass the model).",
                         "invalid_request")
    return obj


def _as_tuple(sample):
    return sample if isinstance(sample, tuple) else (sample,)


def _flatten(out) -> list:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _flatten(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _flatten(v)]
    return []


def export(model_or_path, sample_input, path: str, opset: int | None = None, *,
           input_names: list[str] | None = None, output_names: list[str] | None = None,
           dynamic_batch: bool = True, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
           check: bool = True, register_onnx: bool = False, workspace=None,
           model_name: str | None = None, tags: dict | None = None,
           description: str | None = None) -> ExportResult:
    """Export ``model_or_path`` (a module, a torch.save'd whole model or a TorchScript file) with
    ``sample_input`` (a tensor or a tuple of tensors) to ``path``; check it with onnxruntime;
    with ``register_onnx`` register it in ``workspace`` as ``model_name`` (framework "Onnx")."""
    import numpy as np
    import torch

    _need("onnx")
    ort = _need("onnxruntime")
    if register_onnx and (workspace is None or not model_name):
        raise TrainError("register_onnx=True needs workspace= and model_name=.", "invalid_request")
    model = _load(model_or_path)
    was_training = getattr(model, "training", False)
    model.eval()  # dropout and batch norm as at inference
    args = _as_tuple(sample_input)
    if not all(isinstance(a, torch.Tensor) for a in args):
        raise TrainError("sample_input must be a tensor or a tuple of tensors shaped like one "
                         "batch of real input.", "invalid_request")
    args = tuple(a.detach().cpu() for a in args)
    model.cpu()
    with torch.no_grad():
        expected = [t.detach().cpu().numpy() for t in _flatten(model(*args))]
    in_names = list(input_names or ([f"input_{i}" for i in range(len(args))] if len(args) > 1 else ["input"]))
    out_names = list(output_names or ([f"output_{i}" for i in range(len(expected))] if len(expected) > 1 else ["output"]))
    dynamic_axes = {n: {0: "batch"} for n in in_names + out_names} if dynamic_batch else None

    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's
            kwargs = dict(input_names=in_names, output_names=out_names, dynamic_axes=dynamic_axes)
            if opset is not None:
                kwargs["opset_version"] = opset
            try:
                torch.onnx.export(model, args, tmp, dynamo=False, **kwargs)
            except TypeError:  # a torch without the dynamo switch
                torch.onnx.export(model, args, tmp, **kwargs)
        import onnx

        proto = onnx.load(tmp, load_external_data=False)
        onnx.checker.check_model(proto)
        used_opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
        providers = ["CPUExecutionProvider"]
        max_abs = max_rel = 0.0
        if check:
            session = ort.InferenceSession(tmp, providers=providers)
            feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
            got = session.run(None, feeds)
            if len(got) != len(expected):
                raise OnnxExportError(f"The ONNX model returns {len(got)} outputs, PyTorch {len(expected)}.")
            for e, g in zip(expected, got):
                if e.shape != g.shape:
                    raise OnnxExportError(f"Output shapes differ: PyTorch {e.shape}, ONNX {g.shape}.")
                diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
                if diff.size:
                    max_abs = max(max_abs, float(diff.max()))
                    max_rel = max(max_rel, float((diff / np.maximum(np.abs(e), 1e-12)).max()))
                    bad = diff > atol + rtol * np.abs(e)
                    if bad.any():
                        raise OnnxExportError(
                            f"The ONNX export disagrees with PyTorch on the sample input: largest "
                            f"difference {float(diff.max()):.3g} ({int(bad.sum())} of {diff.size} values "
                            f"beyond atol={atol:g} + rtol={rtol:g}*|value|). Nothing was written to "
                            f"{path}. Check for ops the exporter does not support, or pass looser "
                            "rtol/atol if the difference is acceptable.", float(diff.max()))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if was_training:
            model.train()
    result = ExportResult(path=path, opset=used_opset, max_abs_diff=max_abs, max_rel_diff=max_rel,
                          input_names=in_names, output_names=out_names, checked=check,
                          providers=providers if check else [])
    if register_onnx:
        from .model import Model

        result.model = Model.register(
            workspace, path, model_name, tags=tags, description=description,
            properties={"opset": used_opset, "max_abs_diff": max_abs, "checked_with": "onnxruntime",
                        "inputs": ",".join(in_names), "outputs": ",".join(out_names)},
            model_framework="Onnx", model_framework_version=str(used_opset))
    return result
