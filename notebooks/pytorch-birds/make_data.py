"""Generate a tiny synthetic two-class "fowl" ImageFolder dataset.

The Azure ML sample "Train PyTorch models at scale" fine-tunes a ResNet-18 on
a small chickens-vs-turkeys photo dataset that it downloads at runtime.  This
environment has no internet access, so this script *synthesises* a stand-in
dataset with the same on-disk layout::

    OUT/train/chickens/*.png   OUT/train/turkeys/*.png
    OUT/val/chickens/*.png     OUT/val/turkeys/*.png

The images are not birds; they are noisy striped textures:

* ``chickens``: mostly horizontal stripes in warm colours (red/orange/yellow)
* ``turkeys``:  mostly vertical stripes in cool colours (cyan/blue/violet)

Every image gets random stripe period, width, phase, slight slant, contrast,
brightness, a few random distractor rectangles and per-pixel Gaussian noise,
so the task is not trivial, but a ResNet-18 trained from scratch for a couple
of epochs on a CPU separates the classes well above chance.

Generation is fully deterministic for a given ``--seed``.

CLI::

    python make_data.py --out DIR [--per_class_train N] [--per_class_val M]
                        [--image_size S] [--seed K]

Importable::

    from make_data import make_imagefolder
    data_dir = make_imagefolder("/tmp/fowl", seed=0)
"""

import argparse
import colorsys
import os

import numpy as np
from PIL import Image

CLASSES = ("chickens", "turkeys")

# hue ranges (0..1) for each class; warm vs cool, no overlap
_HUES = {
    "chickens": (-0.04, 0.13),  # red .. orange .. yellow (wraps around 0)
    "turkeys": (0.50, 0.72),  # cyan .. blue .. violet
}


def _rand_colour(rng, cls, sat_range, val_range):
    lo, hi = _HUES[cls]
    h = rng.uniform(lo, hi) % 1.0
    s = rng.uniform(*sat_range)
    v = rng.uniform(*val_range)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def _make_image(rng, cls, size):
    """Return one HxWx3 uint8 image of class ``cls``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    # stripe geometry: horizontal for chickens, vertical for turkeys, with a
    # small random slant so the stripes are not perfectly axis-aligned
    slant = rng.uniform(-0.15, 0.15)
    if cls == "chickens":
        coord = yy + slant * xx
    else:
        coord = xx + slant * yy
    period = rng.uniform(0.10, 0.25) * size
    duty = rng.uniform(0.3, 0.6)  # fraction of the period that is "stripe"
    phase = rng.uniform(0, period)
    stripes = (((coord + phase) % period) < duty * period).astype(np.float32)
    # stripe strength (partially transparent stripes)
    contrast = rng.uniform(0.7, 1.0)
    mask = (stripes * contrast)[..., None]

    background = _rand_colour(rng, cls, (0.45, 0.85), (0.25, 0.55))
    stripe_col = _rand_colour(rng, cls, (0.5, 1.0), (0.7, 1.0))
    img = background * (1.0 - mask) + stripe_col * mask

    # a few distractor rectangles of arbitrary (class-independent) colour
    for _ in range(rng.integers(0, 3)):
        w, h = rng.integers(max(1, size // 10), max(2, size // 4), size=2)
        x0, y0 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, size=3)

    # global brightness jitter + per-pixel noise
    img = img * rng.uniform(0.8, 1.2)
    img = img + rng.normal(0.0, rng.uniform(5.0, 20.0), size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_imagefolder(out_dir, per_class_train=64, per_class_val=32,
                     image_size=64, seed=0, verbose=True):
    """Write the dataset under ``out_dir`` and return ``out_dir``.

    Existing ``*.png`` files in the class folders are removed first, so the
    result only depends on the arguments.
    """
    out_dir = os.fspath(out_dir)
    counts = {"train": per_class_train, "val": per_class_val}
    # one independent stream per (split, class) so e.g. changing the number
    # of val images does not change the train images
    streams = np.random.SeedSequence(seed).spawn(len(counts) * len(CLASSES))
    k = 0
    for split, n in counts.items():
        for cls in CLASSES:
            rng = np.random.default_rng(streams[k])
            k += 1
            cls_dir = os.path.join(out_dir, split, cls)
            os.makedirs(cls_dir, exist_ok=True)
            for f in os.listdir(cls_dir):
                if f.endswith(".png"):
                    os.remove(os.path.join(cls_dir, f))
            for i in range(n):
                arr = _make_image(rng, cls, image_size)
                Image.fromarray(arr).save(
                    os.path.join(cls_dir, f"{cls}_{split}_{i:04d}.png"))
            if verbose:
                print(f"wrote {n:4d} images {image_size}x{image_size} -> {cls_dir}")
    return out_dir


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--per_class_train", type=int, default=64)
    p.add_argument("--per_class_val", type=int, default=32)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = make_imagefolder(a.out, a.per_class_train, a.per_class_val,
                           a.image_size, a.seed)
    total = (a.per_class_train + a.per_class_val) * len(CLASSES)
    print(f"done: {total} images, classes {list(CLASSES)} in {out}")


if __name__ == "__main__":
    main()
