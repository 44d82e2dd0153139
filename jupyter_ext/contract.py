"""The contract between the server and the code that runs inside a job, written down once.

What a metric line holds (kernel_lib.tracking writes it, runs.ingest reads it) and its limits,
the ``JUPYTER_TRAIN_*`` environment variables (among them JUPYTER_TRAIN_SYSTEM_METRICS_INTERVAL:
seconds between samples of each node's system metrics, ``system/...`` series in
metrics/system_<node>.jsonl; 0 turns them off), and the run states. Standard library only and
importing nothing: in-job code (tracking, the rank entry point, the Azure ML compat module)
imports it in any Python >= 3.9, and it is shipped with them (launcher.payload).
"""

# -- a metric line -----------------------------------------------------------------------------
# One JSON object a line in metrics/rank_<rank>.jsonl, for example
#   {"k":"m","n":"loss","v":0.25,"s":3,"t":1700000000.5}   a point of metric "loss" at step 3
#   {"k":"t","n":"stage","v":"warmup"}                     a tag
KIND = "k"  # what the record is: METRIC or TAG
NAME = "n"  # the metric's name (a tag's key)
VALUE = "v"  # a number, a text (a str), or a tag's value
STEP = "s"  # the point's step (an int), or null
TIME = "t"  # when it was logged (seconds since the epoch, a float), or null
NONFINITE = "nonfinite"  # true: VALUE is the repr of a NaN or an infinity, as text
METRIC = "m"
TAG = "t"
PARAM = "p"  # a run parameter (MLflow's log_param): NAME and VALUE, as a text

MAX_NAME = 255  # characters of a metric name (and of a tag's key: longer ones are cut)
MAX_TEXT = 4096  # characters of a text value (and of a tag's value: longer ones are cut)
MAX_INT = 2**63 - 1  # |value| of an int stored as an int (larger: as a float); |step| at most this
MAX_LINE_BYTES = 1 << 20  # a longer line is cut where it is read, and skipped as unreadable

METRICS_DIR = "metrics"  # the run directory's folder of metric files, one a rank
METRICS_SUFFIX = ".jsonl"


def metrics_file_name(rank: int) -> str:
    """The name of rank ``rank``'s metric file in METRICS_DIR."""
    return f"rank_{rank}{METRICS_SUFFIX}"


# System metrics: each node's supervisor (or Ray agent) samples its host and its own process tree
# into metrics/system_<node>.jsonl, records as above (step: the sample's number, time: wall
# time), every ENV_SYSTEM_METRICS_INTERVAL seconds. Their series are named SYSTEM_PREFIX + an
# MLflow system-metric name ("system/cpu_utilization_percentage", "system/gpu_0_power_usage_watts",
# launcher.sysmetrics), and their rank is the NODE index, not a training rank: nothing that picks a
# run's primary metric or its ranks counts them.
SYSTEM_PREFIX = "system/"
SYSTEM_METRICS_DEFAULT_S = 5.0


def system_metrics_file_name(node: int) -> str:
    """The name of node ``node``'s system-metric file in METRICS_DIR (its rank: ``node``)."""
    return f"system_{node}{METRICS_SUFFIX}"


# Metrics a script logs to say where it is or how it was set up, not how well it does: never
# picked as a run's primary metric while a metric of its own is there (a run starting with
# log("lr", 0.01) would otherwise show its learning rate in the panel).
BOOKKEEPING_METRICS = frozenset({
    "lr", "learning_rate", "momentum", "epoch", "epochs", "num_epochs", "step", "steps",
    "total_steps", "max_steps", "progress", "batch_size", "seed", "iteration", "global_step"})


def is_bookkeeping_metric(name: str) -> bool:
    return name.lower() in BOOKKEEPING_METRICS


def is_system_metric(name: str) -> bool:
    """Whether a series is a system metric (a node's, not the training script's)."""
    return name.startswith(SYSTEM_PREFIX)


# -- environment variables -----------------------------------------------------------------
ENV_RUN_ID = "JUPYTER_TRAIN_RUN_ID"
ENV_EXPERIMENT = "JUPYTER_TRAIN_EXPERIMENT"
ENV_RUN_DIR = "JUPYTER_TRAIN_RUN_DIR"
ENV_METRICS_DIR = "JUPYTER_TRAIN_METRICS_DIR"
ENV_FLUSH_S = "JUPYTER_TRAIN_FLUSH_S"
ENV_BACKEND = "JUPYTER_TRAIN_BACKEND"
ENV_PROCS_PER_NODE = "JUPYTER_TRAIN_PROCS_PER_NODE"
ENV_NODE_GPUS = "JUPYTER_TRAIN_NODE_GPUS"
ENV_SUPERVISOR = "JUPYTER_TRAIN_SUPERVISOR"
ENV_DOCKER_URL = "JUPYTER_TRAIN_DOCKER_URL"
ENV_RAY_SHIP_PACKAGES = "JUPYTER_TRAIN_RAY_SHIP_PACKAGES"
ENV_WORKSPACE = "JUPYTER_TRAIN_WORKSPACE"
ENV_URL = "JUPYTER_TRAIN_URL"
ENV_TOKEN = "JUPYTER_TRAIN_TOKEN"
ENV_AZUREML_COMPAT = "JUPYTER_TRAIN_AZUREML_COMPAT"
ENV_SYSTEM_METRICS_INTERVAL = "JUPYTER_TRAIN_SYSTEM_METRICS_INTERVAL"
ENV_INPUT_DATASETS = "JUPYTER_TRAIN_INPUT_DATASETS"
ENV_SECRET_FILE = "JUPYTER_TRAIN_SECRET_FILE"

# A script argument that stands for a dataset input (Azure ML's own text for one): rank_entry
# puts the input's path on the node in its place, whole or after "--option=".
DATASET_ARG_PREFIX = "DatasetConsumptionConfig:"

# Every variable: what it holds, who sets it and who reads it.
ENV_VARS = {
    ENV_RUN_ID: "the run's id; set by the supervisor in every job process, read by tracking",
    ENV_EXPERIMENT: "the run's experiment; set by the supervisor, read by tracking",
    ENV_RUN_DIR: "the run directory (or a node's copy of it); set by the supervisor, read by "
                 "rank_entry, and the mark by which the server finds a run's processes",
    ENV_METRICS_DIR: "where tracking writes this run's metric files; set by the supervisor",
    ENV_FLUSH_S: "seconds between tracking's flushes of its buffer (default 0.05); set by a user",
    ENV_BACKEND: "the run's torch.distributed backend (nccl, gloo or empty); set by the command builder",
    ENV_PROCS_PER_NODE: "processes a node, for mpirun jobs; set by the command builder, read by rank_entry",
    ENV_NODE_GPUS: "each node's CUDA_VISIBLE_DEVICES, ';'-separated, for mpirun jobs; read by rank_entry",
    ENV_SUPERVISOR: "set in a supervisor's own environment, removed from its job processes'",
    ENV_DOCKER_URL: "the Docker engine of a run's containers; set by the Docker supervisor for docker_rsh",
    ENV_RAY_SHIP_PACKAGES: "1: ship jupyter-train's packages to every Ray node, even to one that has "
                           "an identical copy (a test knob)",
    ENV_WORKSPACE: "the workspace directory of the server and the kernel library; set by a user",
    ENV_URL: "the server the kernel library talks to, instead of discovering one; set by a user",
    ENV_TOKEN: "the token for ENV_URL; set by a user",
    ENV_AZUREML_COMPAT: "0: a job whose environment has Azure ML's SDK imports it, not jupyter-train's "
                        "azureml.core; set by a user, read by rank_entry",
    ENV_SYSTEM_METRICS_INTERVAL: "seconds between samples of each node's system metrics (default "
                                 "5; 0 turns them off); set by a user in the server's environment, "
                                 "read by the supervisor and the Ray node agents",
    ENV_INPUT_DATASETS: "the run's dataset inputs as JSON {name: {path, kind, dataset, version, "
                        "mode}}; set by the supervisor, read by rank_entry and tracking "
                        "(run.input_datasets)",
    ENV_SECRET_FILE: "the key that encrypts datastore credentials (default: in Jupyter's data "
                     "folder, outside every workspace); set by a user",
}

# Set by the supervisor in the environment of every job process.
JOB_ENV = (ENV_RUN_ID, ENV_EXPERIMENT, ENV_RUN_DIR, ENV_METRICS_DIR)

# -- run states ----------------------------------------------------------------------------
NOT_STARTED = "NotStarted"
PREPARING = "Preparing"  # environment build, snapshot materialized
QUEUED = "Queued"  # waiting for nodes
STARTING = "Starting"
RUNNING = "Running"
FINALIZING = "Finalizing"  # outputs/ and logs/ into history
CANCEL_REQUESTED = "CancelRequested"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"

RUN_STATES = (NOT_STARTED, PREPARING, QUEUED, STARTING, RUNNING, FINALIZING, CANCEL_REQUESTED,
              COMPLETED, FAILED, CANCELED)
TERMINAL_STATES = frozenset((COMPLETED, FAILED, CANCELED))


def is_terminal(state: str) -> bool:
    """Whether a run in ``state`` (a state's name, or a launcher.spec.RunState) has ended."""
    return getattr(state, "value", state) in TERMINAL_STATES
