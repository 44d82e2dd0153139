"""A deployed model's scoring process (Azure ML's ``Model.deploy``), as it runs inside the service's run.

A service is a run whose rank is ``keeper``: it starts ``host`` (the HTTP server, tornado, that
calls the entry script's ``init()`` once and ``run(raw_data)`` per request), restarts it with
backoff when it crashes after it was ready, and writes what it knows to the run directory
(``STATUS``) for the server. Standard library only here and in ``keeper``; ``host`` also imports
tornado (in every jupyter-train installation through jupyter-server; a built environment gets it
with the service's build).

The files below live in the service's run directory; the server writes CONFIG, KEYS and the
models' copies before the run starts, the keeper STATUS and the host STATS.
"""

from .. import contract

CONFIG = "service.json"  # what to serve: entry script, models, port, auth, body cap (server)
KEYS = "service_keys.json"  # {"primary", "secondary"} when auth is on (server; 0600)
STATUS = "service_status.json"  # {"state", "port", "pid", "restarts", "ready_at", ...} (keeper)
STATS = "service_stats.json"  # {"requests", "errors", "p50_ms", "p99_ms", ...} (host)
MODELS_DIR = "azureml-models"  # <name>/<version>/<files>, the deployed models' copies
MODELS_MANIFEST = "models.json"  # in MODELS_DIR: [{"name", "version", "path"}]

# Service states (Azure ML's Webservice.state)
TRANSITIONING = "Transitioning"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
FAILED = contract.FAILED  # its run ended (the same word as the run's state)


def model_path(name: str, version: int | None = None) -> str | None:
    """Inside a deployed service: the path of model ``name``'s copy (its file or folder, as
    registered), the given version or the only one deployed; None outside a service."""
    import json
    import os

    root = os.environ.get("AZUREML_MODEL_DIR")
    if not root:
        return None
    for base in (root, os.path.dirname(os.path.dirname(root))):  # azureml-models/, or one model's folder
        manifest = os.path.join(base, MODELS_MANIFEST)
        if os.path.isfile(manifest):
            break
    else:
        return None
    with open(manifest, encoding="utf-8") as f:
        models = [m for m in json.load(f) if m["name"] == name]
    if version is not None:
        models = [m for m in models if m["version"] == int(version)]
    if not models:
        raise FileNotFoundError(f"Model {name!r}{f' version {version}' if version else ''} is not deployed "
                                f"with this service; it has the models in {manifest}.")
    m = max(models, key=lambda m: m["version"])
    return os.path.join(base, m["name"], str(m["version"]), m["path"])
