"""What a deployed model's scoring endpoint costs over calling the model in-process.

    python bench/bench_service.py [--requests N] [--clients C] [--size PX]

A real headless server deploys the tutorial's kind of model (torchvision's ResNet-18, two
classes, saved whole with torch.save) behind the tutorial's entry script (pytorch_score.py:
init() loads it, run() decodes the JSON image and classifies it) with one thread
(cpu_cores=1). The same JSON body (one PX x PX image, about 100 KB at 64 px) is then scored:
  1. in-process (the baseline): the entry script's own run(raw) called in this process, one
     thread, N times;
  2. straight to the scoring URI, one keep-alive connection, N requests one after another;
  3. through the server's proxy (service.run(), as a notebook on another machine does);
  4. C clients at once to the scoring URI (throughput).
It prints p50 / p99 latency and requests per second for each against the baseline measured in
the same run (figures, not asserts: these machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel_lib import Model, Workspace  # noqa: E402
from kernel_lib.webservice import AciWebservice, InferenceConfig  # noqa: E402
from common import print_table  # noqa: E402  (bench/common.py)
from tests.conftest import Headless  # noqa: E402

SCORE = '''
import json, os
import torch
import torch.nn as nn

def init():
    global model
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = torch.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pt"), weights_only=False,
                       map_location="cpu")
    model.eval()

def run(input_data):
    x = torch.tensor(json.loads(input_data)["data"])
    with torch.no_grad():
        out = model(x)
    probs = nn.Softmax(dim=1)(out).numpy()[0]
    index = int(torch.argmax(out, 1))
    return {"label": ["chickens", "turkeys"][index], "probability": str(probs[index])}
'''


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def timed(call, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def direct_caller(uri: str, body: bytes):
    u = urlparse(uri)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def call():
        conn.request("POST", u.path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200, data[:300]
    return call


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()

    import torch
    import torchvision

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench-service-"))
    server = Headless(root / "workspace", root / "server.log").start()
    try:
        ws = Workspace(root / "workspace")
        src = root / "src"
        src.mkdir()
        (src / "pytorch_score.py").write_text(SCORE)
        net = torchvision.models.resnet18(weights=None, num_classes=2).eval()
        torch.save(net, root / "model.pt")
        model = Model.register(ws, str(root / "model.pt"), "bench-birds", model_framework="PyTorch")
        body = json.dumps({"data": torch.randn(1, 3, a.size, a.size).tolist()})
        t0 = time.perf_counter()
        service = Model.deploy(ws, "bench-birds", [model],
                               InferenceConfig(entry_script="pytorch_score.py", source_directory=str(src)),
                               AciWebservice.deploy_configuration(cpu_cores=1), overwrite=True)
        service.wait_for_deployment()
        deploy_s = time.perf_counter() - t0

        # the baseline: the entry script in this process
        spec = importlib.util.spec_from_file_location("score_inproc", src / "pytorch_score.py")
        entry = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(entry)
        os.environ["AZUREML_MODEL_DIR"] = str(root)
        entry.init()
        for _ in range(10):  # warm both up
            entry.run(body)
            service.run(body)
        inproc = timed(lambda: entry.run(body), a.requests)
        direct = timed(direct_caller(service.scoring_uri, body.encode()), a.requests)
        proxied = timed(lambda: service.run(body), a.requests)

        per_client = a.requests // a.clients
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.clients) as pool:
            list(pool.map(lambda _: timed(direct_caller(service.scoring_uri, body.encode()), per_client),
                          range(a.clients)))
        concurrent_rps = per_client * a.clients / (time.perf_counter() - t0)
        info = service._get()
        service.delete()
    finally:
        server.stop()

    base50, base99 = statistics.median(inproc), pct(inproc, 0.99)
    base_rps = 1000 * len(inproc) / sum(inproc)
    rows = []
    for name, lat in (("scoring URI", direct), ("through the server", proxied)):
        rows.append((f"{name}: p50 latency", f"{statistics.median(lat):.2f} ms", f"{base50:.2f} ms in-process",
                     f"{statistics.median(lat) / base50:.2f}"))
        rows.append((f"{name}: p99 latency", f"{pct(lat, 0.99):.2f} ms", f"{base99:.2f} ms in-process",
                     f"{pct(lat, 0.99) / base99:.2f}"))
        rps = 1000 * len(lat) / sum(lat)
        rows.append((f"{name}: requests/s, one client", f"{rps:.1f}", f"{base_rps:.1f} in-process",
                     f"{rps / base_rps:.2f}"))
    rows.append((f"scoring URI: requests/s, {a.clients} clients", f"{concurrent_rps:.1f}",
                 f"{base_rps:.1f} in-process", f"{concurrent_rps / base_rps:.2f}"))
    print(f"ResNet-18 at {a.size} px, one thread, {a.requests} requests each; {len(body) / 1000:.0f} KB a body; "
          f"deployed in {deploy_s:.2f} s; the service counted {info['requests']} requests, "
          f"its own p50 {info['p50_ms']} ms")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
