"""Logs images and Azure ML's table metrics (tracking's own Run, or with --azureml the Azure ML
SDK v1 Run of the compatibility module), and some bad ones, which are refused while it goes on."""
import argparse
import os
import struct
import time
import zlib

p = argparse.ArgumentParser()
p.add_argument("--azureml", action="store_true")
p.add_argument("--sleep", type=float, default=0.0)
args = p.parse_args()
if args.azureml:
    from azureml.core import Run
else:
    from kernel_lib.tracking import Run


def png(w: int, h: int, rgb: tuple) -> bytes:
    """A real PNG of one colour (stdlib only)."""
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Figure:
    """Stands in for a matplotlib Figure (matplotlib is not installed here): it has savefig."""

    def savefig(self, f, format="png"):
        f.write(png(20, 10, (0, 160, 0)))


run = Run.get_context()
with open("red.png", "wb") as f:
    f.write(png(32, 16, (200, 0, 0)))
with open("blue.png", "wb") as f:
    f.write(png(16, 32, (0, 0, 200)))
run.log("loss", 1.0)
run.log_image("curve", path="red.png")
print("first image logged", flush=True)
time.sleep(args.sleep)
run.log_image("curve", path="blue.png")  # the same name again: both kept
run.log_image("figure", plot=Figure())
run.log_confusion_matrix("confusion", {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
                                       "data": {"class_labels": ["bird", "cat"], "matrix": [[5, 1], [2, 7]]}})
run.log_accuracy_table("accuracy", {"schema_type": "accuracy_table", "schema_version": "1.0.1", "data": {
    "probability_tables": [[[5, 1, 2, 7], [3, 3, 1, 8]]], "percentile_tables": [[[5, 1, 2, 7]]],
    "probability_thresholds": [0.0, 0.5], "percentiles": [50.0], "class_labels": ["bird"]}})
run.log_table("per_class", {"precision": [0.8, 0.9], "recall": [0.7, 0.95]})
# refused, each with a warning; the script goes on
run.log_image("../../escape", path="nope.png")
run.log_image("notes", path="log_images.py")
run.log_confusion_matrix("broken", {"schema_type": "confusion_matrix", "data": {"class_labels": ["a"], "matrix": [[1, 2]]}})
run.log_accuracy_table("broken_json", "{not json")
run.log("loss", 0.5)
# plain outputs, previewed in the run view's Outputs tab
os.makedirs("outputs", exist_ok=True)
with open("outputs/predictions.csv", "w") as f:
    f.write('image,label,score\n1.png,"bird, small",0.9\n2.png,cat,0.7\n')
with open("outputs/summary.txt", "w") as f:
    f.write("accuracy 0.93\n")
print("done", flush=True)
