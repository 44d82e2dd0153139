"""How long the article's conda spec takes to be ready: layered on the kernel's interpreter
against the isolated build (every package, torch included, in the environment: the build of
before), both on a cache miss, in the same run.

    python bench/bench_env_layers.py [--repeat N] [--skip-isolated] [--warm-uv-cache]

The spec is Azure ML's "train PyTorch models at scale" pytorch-env (torch and torchvision at the
kernel's versions, future, pillow, azureml-defaults) from tests/data. Each build goes into a fresh
environment cache with uv from PyPI, the way the server builds it (EnvCache.ensure, the shim
included). The isolated build gets a fresh uv cache too (--warm-uv-cache: the user's, so a second
run measures a warm download cache), since a user's first build has none. It also times an
identical spec again (a cache hit). Figures, not asserts: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import print_table  # noqa: E402  (bench/common.py)
from jupyter_ext.environments import EnvCache  # noqa: E402
from jupyter_ext.environments.spec import from_conda_yaml  # noqa: E402
from jupyter_ext.launcher import payload  # noqa: E402

SPEC = ROOT / "tests" / "data" / "azureml_article_conda.yml"


def spec():
    text = SPEC.read_text().replace("python=3.11", "python=%d.%d" % sys.version_info[:2])
    return from_conda_yaml("pytorch-env", text)


def build(root: Path, layered: bool) -> tuple[float, float, int]:
    """(seconds on a miss, seconds on the hit after it, bytes of the environment)."""
    cache = EnvCache(root, payload.shim_files, layered=layered)
    log = root / "prepare.txt"
    s = spec()
    s.build_key()  # finding the interpreter is not the build
    t0 = time.perf_counter()
    cache.ensure(s, log)
    miss = time.perf_counter() - t0
    t0 = time.perf_counter()
    cache.ensure(spec(), log)
    hit = time.perf_counter() - t0
    [info] = cache.list()
    return miss, hit, info["bytes"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="layered builds (each a cache miss)")
    ap.add_argument("--skip-isolated", action="store_true", help="no baseline (it takes minutes)")
    ap.add_argument("--warm-uv-cache", action="store_true", help="the isolated build uses uv's own cache")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp:
        layered = [build(Path(tmp) / f"layered{i}", True) for i in range(args.repeat)]
        miss = statistics.median(m for m, _, _ in layered)
        hit = statistics.median(h for _, h, _ in layered)
        size = layered[0][2]
        print(f"layered: {len(layered)} builds, miss {', '.join(f'{m:.2f}' for m, _, _ in layered)} s; "
              f"hit {hit * 1000:.1f} ms; {size / 2**20:.1f} MiB", flush=True)
        if args.skip_isolated:
            return
        if not args.warm_uv_cache:
            os.environ["UV_CACHE_DIR"] = str(Path(tmp) / "uv-cache")
        print("isolated build (downloads torch; minutes) ...", flush=True)
        iso_miss, iso_hit, iso_size = build(Path(tmp) / "isolated", False)
    print_table([
        ("article spec ready, cache miss", f"{miss:.2f} s (layered)", f"{iso_miss:.1f} s (isolated)",
         f"{miss / iso_miss:.3f}"),
        ("identical spec, cache hit", f"{hit * 1000:.1f} ms", f"{iso_hit * 1000:.1f} ms", f"{hit / iso_hit:.2f}"),
        ("environment on disk", f"{size / 2**20:.1f} MiB", f"{iso_size / 2**20:.0f} MiB",
         f"{size / iso_size:.4f}"),
    ])


if __name__ == "__main__":
    main()
