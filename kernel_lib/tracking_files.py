"""What kernel_lib.tracking logs as files: images and Azure ML's table metrics.

Standard library only (it runs in any job environment). A file goes into the run's history
folder ``outputs/`` directly (``$JUPYTER_TRAIN_RUN_DIR/outputs``; outside a run ``./outputs``), so
clients see it while the run is live; the metric of the same name records where it is (a text
point: ``outputs/images/loss.png``), which is how the run view and the monitor learn of a new
image from the run's stream, without listing files. Logging the same image name again keeps the
earlier ones (``loss_1.png``, ``loss_2.png``, ...), as Azure ML keeps an image history per name.

Confusion matrices and accuracy tables take Azure ML's JSON shapes (a dict, or its JSON text).
Each is checked, written to ``outputs/tables/<name>.json``, and its metric holds the JSON
itself when it fits a text point (``get_metrics()`` answers it as a dict), else that path.

Bad input is refused with a warning that says what was expected, and the script goes on, as
with ``log``; nothing is half-written (files are written to a temporary name, then renamed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

from jupyter_ext.contract import ENV_RUN_DIR, MAX_TEXT

IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp"}
IMAGES_DIR, TABLES_DIR = "images", "tables"
MAX_STEM = 100


class Refused(ValueError):
    """Input a logging call cannot record: the message says what it takes."""


def history_dir(sub: str) -> tuple[str, str]:
    """(folder on disk, its path in the run's history) of ``outputs/<sub>``, made if missing."""
    base = os.environ.get(ENV_RUN_DIR)
    folder = os.path.join(base, "outputs", sub) if base else os.path.join("outputs", sub)
    os.makedirs(folder, exist_ok=True)
    return folder, f"outputs/{sub}"


def file_stem(name) -> str:
    """A metric name as a file name: letters, digits, '-', '_' and '.' kept, the rest '_'."""
    if not isinstance(name, str) or not name.strip():
        raise Refused(f"name {name!r} refused: use a non-empty string")
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name.strip()).lstrip(".")[:MAX_STEM]
    return stem or "_"


def _free_name(folder: str, stem: str, ext: str) -> str:
    """``stem.ext``, or ``stem_N.ext`` for the first N not taken (earlier images are kept)."""
    n, candidate = 0, f"{stem}{ext}"
    while os.path.lexists(os.path.join(folder, candidate)):
        n += 1
        candidate = f"{stem}_{n}{ext}"
    return candidate


def _publish(folder: str, final: str, write) -> None:
    """Write through ``write(f)`` into a temporary file in ``folder``, then rename it ``final``."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, os.path.join(folder, final))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_image(name: str, path=None, plot=None) -> str:
    """The image at ``path`` (copied) or of ``plot`` (anything with ``savefig``: a matplotlib
    Figure or pyplot, saved as PNG) into outputs/images/; returns its path in the history."""
    stem = file_stem(name)
    if (path is None) == (plot is None):
        raise Refused(f"log_image({name!r}) takes path= (an image file) or plot= (a matplotlib figure), one of them")
    if plot is not None:
        if not callable(getattr(plot, "savefig", None)):
            raise Refused(f"log_image({name!r}): plot= is a {type(plot).__name__}; give a matplotlib "
                          "Figure (or pyplot), which has savefig")
        folder, rel = history_dir(IMAGES_DIR)
        final = _free_name(folder, stem, ".png")
        _publish(folder, final, lambda f: plot.savefig(f, format="png"))
        return f"{rel}/{final}"
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_TYPES:
        raise Refused(f"log_image({name!r}): {path!r} is not an image file ({', '.join(sorted(IMAGE_TYPES))})")
    if not os.path.isfile(path):
        raise Refused(f"log_image({name!r}): there is no file {path!r}")
    folder, rel = history_dir(IMAGES_DIR)
    final = _free_name(folder, stem, ext)
    with open(path, "rb") as src:
        _publish(folder, final, lambda f: shutil.copyfileobj(src, f))
    return f"{rel}/{final}"


def _as_dict(name: str, value, schema: str) -> dict:
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise Refused(f"{schema} {name!r}: the text is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise Refused(f"{schema} {name!r}: give a dict (or its JSON text), not a {type(value).__name__}")
    if value.get("schema_type", schema) != schema or not isinstance(value.get("data"), dict):
        raise Refused(f"{schema} {name!r}: expected {{'schema_type': '{schema}', 'schema_version': ..., "
                      "'data': {...}}")
    return {"schema_type": schema, "schema_version": str(value.get("schema_version", "1.0.0")),
            "data": value["data"]}


def _numbers(rows, depth: int) -> bool:
    """Whether ``rows`` is a list nested ``depth`` deep with numbers at the bottom."""
    if depth == 0:
        return isinstance(rows, (int, float)) and not isinstance(rows, bool)
    return isinstance(rows, list) and all(_numbers(r, depth - 1) for r in rows)


def confusion_matrix(name: str, value) -> dict:
    d = _as_dict(name, value, "confusion_matrix")
    labels, matrix = d["data"].get("class_labels"), d["data"].get("matrix")
    if not isinstance(labels, list) or not labels:
        raise Refused(f"confusion_matrix {name!r}: data.class_labels must be a non-empty list")
    if not _numbers(matrix, 2) or len(matrix) != len(labels) or any(len(r) != len(labels) for r in matrix):
        raise Refused(f"confusion_matrix {name!r}: data.matrix must be {len(labels)} rows of "
                      f"{len(labels)} numbers (one per class label)")
    return d


def accuracy_table(name: str, value) -> dict:
    d = _as_dict(name, value, "accuracy_table")
    data = d["data"]
    for key, depth in (("probability_tables", 3), ("percentile_tables", 3), ("probability_thresholds", 1),
                       ("percentiles", 1)):
        if not _numbers(data.get(key), depth):
            raise Refused(f"accuracy_table {name!r}: data.{key} must be a list nested {depth} deep of numbers")
    if not isinstance(data.get("class_labels"), list):
        raise Refused(f"accuracy_table {name!r}: data.class_labels must be a list")
    return d


def save_table(name: str, table: dict) -> str:
    """``table`` as outputs/tables/<name>.json (replacing an earlier one of that name); returns
    what the metric holds: the JSON, or the file's path in the history where it is too long."""
    folder, rel = history_dir(TABLES_DIR)
    final = file_stem(name) + ".json"
    try:
        text = json.dumps(table, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise Refused(f"{table['schema_type']} {name!r}: NaN or infinity in the table; use numbers") from None
    _publish(folder, final, lambda f: f.write(text.encode()))
    return text if len(text) <= MAX_TEXT else f"{rel}/{final}"
