"""The article's training script, cut to what a test needs: Azure ML SDK v1 logging, and the
imports its conda spec is for (torch, torchvision, future, pillow)."""
import future  # noqa: F401  (the spec's `future`)
import PIL
import torch
import torchvision
from azureml.core.run import Run

run = Run.get_context()
print("torch from", torch.__file__, flush=True)
print("versions", torch.__version__, torchvision.__version__, PIL.__version__, flush=True)
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
for epoch in range(3):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    run.log("loss", float(loss))
run.log("best_val_acc", 0.5)
