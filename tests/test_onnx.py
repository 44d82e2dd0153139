"""ONNX export checked by onnxruntime (kernel_lib.onnx.export): a good export is kept and
registered; one that disagrees with PyTorch is refused and leaves an existing file alone."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
if os.environ.get("CI") == "true":  # CI installs them (the test extras): never skip there
    import onnx  # noqa: F401
    import onnxruntime as ort
else:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

from kernel_lib.client import TrainError  # noqa: E402
from kernel_lib.onnx import OnnxExportError, export  # noqa: E402


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Dropout(0.5), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.features(x))


class Drifting(torch.nn.Module):
    """Python state read in forward: the export bakes in a value PyTorch no longer computes."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls


def test_export_is_checked_by_onnxruntime_and_handles_any_batch(tmp_path):
    torch.manual_seed(0)
    net = SmallNet().train()  # left in training mode on purpose: export must use eval
    sample = torch.randn(1, 3, 16, 16)
    result = export(net, sample, str(tmp_path / "out" / "net.onnx"))
    assert os.path.isfile(result.path) and result.checked
    assert result.max_abs_diff < 1e-4 and result.opset >= 9
    assert net.training  # given back as it came
    # a batch of another size classifies the same as PyTorch (dynamic batch axis)
    batch = torch.randn(5, 3, 16, 16)
    session = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    [logits] = session.run(None, {"input": batch.numpy()})
    with torch.no_grad():
        expected = net.eval()(batch).numpy()
    assert logits.shape == (5, 2) and (logits.argmax(1) == expected.argmax(1)).all()


def test_a_disagreeing_export_is_refused_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous good export")
    with pytest.raises(OnnxExportError) as info:
        export(Drifting(), torch.ones(2, 3), str(target))
    assert info.value.max_abs_diff == pytest.approx(1.0)
    assert "disagrees with PyTorch" in str(info.value) and "Nothing was written" in str(info.value)
    assert target.read_bytes() == b"the previous good export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary left behind
    # the tolerance is the caller's to loosen, knowingly
    kept = export(Drifting(), torch.ones(2, 3), str(target), atol=1.5)
    assert kept.max_abs_diff == pytest.approx(1.0) and target.read_bytes() != b"the previous good export"


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(TrainError, match="tensor or a tuple of tensors"):
        export(SmallNet(), [[1.0]], str(tmp_path / "x.onnx"))
    torch.save(SmallNet().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(TrainError, match="state_dict needs its model class"):
        export(str(tmp_path / "weights.pt"), torch.randn(1, 3, 8, 8), str(tmp_path / "x.onnx"))
    with pytest.raises(TrainError, match="needs workspace= and model_name="):
        export(SmallNet(), torch.randn(1, 3, 8, 8), str(tmp_path / "x.onnx"), register_onnx=True)
    assert not (tmp_path / "x.onnx").exists()


def test_export_from_a_saved_model_and_register_it(headless, workspace_dir, tmp_path):
    from kernel_lib import Model, Workspace

    headless(workspace_dir)
    ws = Workspace(workspace_dir)
    torch.save(SmallNet(), tmp_path / "whole.pt")
    result = export(str(tmp_path / "whole.pt"), torch.randn(2, 3, 16, 16), str(tmp_path / "whole.onnx"),
                    opset=17, register_onnx=True, workspace=ws, model_name="small-onnx",
                    tags={"source": "test"})
    assert result.opset == 17
    model = result.model
    assert (model.name, model.version, model.model_framework) == ("small-onnx", 1, "Onnx")
    assert model.model_framework_version == "17" and model.tags == {"source": "test"}
    assert float(model.properties["max_abs_diff"]) == result.max_abs_diff
    path = Model(ws, "small-onnx").download(str(tmp_path / "dl"))
    assert open(path, "rb").read() == open(result.path, "rb").read()
