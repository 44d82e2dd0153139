"""Logs the way Azure's MLflow samples do: fluent mlflow calls, no tracking URI in the script."""
import argparse
import os

import mlflow

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--flood", type=int, default=0)
args = p.parse_args()

with mlflow.start_run() as run:
    print("mlflow run", run.info.run_id, "experiment", run.info.experiment_id, flush=True)
    mlflow.log_params({"epochs": args.epochs, "lr": args.lr})
    mlflow.log_param("optimizer", "sgd")
    mlflow.set_tag("framework", "pytorch")
    for epoch in range(args.epochs):
        mlflow.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    mlflow.log_metrics({"accuracy": 0.9, "f1": 0.8}, step=args.epochs)
    for i in range(args.flood):
        mlflow.log_metric("flood", i, step=i)
    os.makedirs("plots", exist_ok=True)
    with open("plots/summary.txt", "w") as f:
        f.write("all good\n")
    mlflow.log_artifact("plots/summary.txt", artifact_path="reports")
    mlflow.log_artifacts("plots", artifact_path="more")
    print("artifacts", [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)], flush=True)
