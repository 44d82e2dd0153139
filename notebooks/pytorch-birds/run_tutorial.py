"""Train PyTorch models at scale, the jupyter-train way: the Azure ML "pytorch-birds" tutorial
end to end on local compute, offline.

    python notebooks/pytorch-birds/run_tutorial.py [--epochs 2] [--workspace DIR]

1. generates a small two-class ImageFolder (no download),
2. uploads it to the workspace's default datastore and registers it as the dataset "fowl",
3. submits pytorch_train.py (unmodified Azure ML sample logic) as a run of the experiment
   "pytorch-birds", reading the dataset (mounted), streaming its output,
4. prints the run id and final metrics, registers outputs/model.pt as the model
   "pytorch-birds" and checks that the downloaded model loads and predicts.

The same calls work in a notebook cell; see README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from make_data import make_imagefolder  # noqa: E402

from kernel_lib import Dataset, Experiment, Model, ScriptRunConfig, Workspace  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--image_size", type=int, default=64)
    ap.add_argument("--workspace", help="workspace directory (default: $JUPYTER_TRAIN_WORKSPACE or "
                                        "~/.jupyter-train/workspace)")
    ap.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "jupyter-train-fowl"))
    ap.add_argument("--keep_server", action="store_true",
                    help="leave the headless server running if this script started one")
    args = ap.parse_args(argv)

    data_dir = make_imagefolder(args.data_dir, seed=0)
    ws = Workspace(args.workspace) if args.workspace else Workspace.default()
    print(f"Workspace: {ws.path}")
    try:
        datastore = ws.get_default_datastore()
        datastore.upload(src_dir=data_dir, target_path="fowl", overwrite=True, show_progress=True)
        fowl = Dataset.File.from_files(path=(datastore, "fowl/**")).register(ws, "fowl", create_new_version=True)
        print(f"Dataset: {fowl}")
        src = ScriptRunConfig(
            source_directory=HERE, script="pytorch_train.py", compute_target="local",
            arguments=["--num_epochs", args.epochs, "--output_dir", "./outputs",
                       "--data_dir", fowl.as_named_input("fowl").as_mount(), "--image_size", args.image_size,
                       "--batch_size", 16, "--learning_rate", 0.01, "--momentum", 0.9])
        run = Experiment(ws, "pytorch-birds").submit(src, tags={"tutorial": "pytorch-birds"})
        run.wait_for_completion(show_output=True)

        metrics = run.get_metrics()
        print(f"\nRun id: {run.id}")
        for name in ("train_loss", "val_loss", "val_acc", "best_val_acc", "lr", "momentum"):
            value = metrics.get(name)
            last = value[-1] if isinstance(value, list) else value
            print(f"  {name:13s} {last:.4f}" if isinstance(last, float) else f"  {name:13s} {last}")
        print("Files:", ", ".join(run.get_file_names()))

        model = run.register_model(model_name="pytorch-birds", model_path="outputs/model.pt",
                                   tags={"best_val_acc": f"{metrics['best_val_acc']:.4f}"})
        print(f"Registered model: {model.name} version {model.version}")

        import torch

        with tempfile.TemporaryDirectory() as d:
            path = Model(ws, "pytorch-birds", model.version).download(d)
            net = torch.load(path, weights_only=False, map_location="cpu").eval()
            with torch.no_grad():
                out = net(torch.zeros(1, 3, args.image_size, args.image_size))
            print(f"Downloaded {os.path.basename(path)} loads; output shape {tuple(out.shape)}")
    finally:
        if not args.keep_server and ws._client is not None and ws.client.stop_started_server():
            print("Stopped the headless server this script started.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
