#!/usr/bin/env python3
"""How much of each method's anomaly score is the test image's complexity.

Reconstruction and likelihood scores are known to follow how complex an image is rather than
what it shows (Serra et al., "Input complexity and out-of-distribution detection with
likelihood-based generative models", ICLR 2020, measure complexity as compressed length). This
script measures that for a finished one-vs-all folder: for every finished class it prints the
ROC-AUC of the complexity alone used as an anomaly score, and each method's Spearman rank
correlation between its scores and the complexity over the class's test images, and (second
table) each method's ROC-AUC within complexity deciles: the test images are cut into ten equal
bins by complexity, ROC-AUC is computed inside each bin that holds both normal and anomalous
images, and the bins are averaged weighted by their number of normal-anomalous pairs. A method
whose figure falls there was separating mostly by complexity; one whose figure rises was held
back by it.

Complexity of an image, with no decoder beyond the standard library (`--measure file`, the
default):
- CIFAR-10 from a folder of JPEG files (ids are paths): the file's size in bytes, which is the
  JPEG encoder's compressed length of that image.
- MNIST (ids `test:N` or `train:N`): the zlib-compressed length of the image's 28x28 bytes,
  read from the IDX files in --mnist.
With `--measure png` (needs Pillow: `.venv/bin/python -m pip install pillow`): the length of the
decoded pixels' PNG encoding (compression level 9), which a tool can compute from any image.

It reads test scores that are already in the folder; it chooses nothing (analysis only).

With --validation it reads instead the learning curves of the folder's runs (validation images
drawn from the training split only, so a choice may be made on them) and prints, for every
point that kept its anomalous scores, its ROC-AUC and the ROC-AUC of a complexity-corrected
score: log(score) minus a + b log(complexity), the line fitted by least squares on normal
images only (how a run could fit it on its calibration images), cross-fitted over two halves
of the normal validation images so that no image is scored by a line fitted on it.

Usage: scripts/complexity.py RESULTS_FOLDER [--mnist ../shared/data/mnist] [--validation]
       [--measure file|png]
"""
import argparse
import gzip
import io
import json
import math
import pathlib
import zlib

from cells_table import ranks, roc_auc


def png_length(image):
    """Bytes of a Pillow image's PNG encoding at compression level 9."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=9)
    return len(buffer.getvalue())


def pillow():
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("--measure png needs Pillow: .venv/bin/python -m pip install pillow")
    return Image


def mnist_complexity(mnist_folder, measure="file"):
    """A function from an id `split:N` to the compressed length of that MNIST image."""
    cache = {}

    def images(split):
        if split not in cache:
            name = {"test": "t10k", "train": "train"}[split] + "-images-idx3-ubyte.gz"
            raw = gzip.open(mnist_folder / name).read()
            cache[split] = raw[16:]  # IDX header: magic, count, rows, columns
        return cache[split]

    def complexity(image_id):
        split, index = image_id.split(":")
        start = int(index) * 28 * 28
        pixels = images(split)[start:start + 28 * 28]
        if measure == "png":
            return png_length(pillow().frombytes("L", (28, 28), pixels))
        return len(zlib.compress(pixels, 9))

    return complexity


def complexity_of(image_id, mnist, measure="file"):
    if ":" in image_id and not image_id.startswith("/"):
        return mnist(image_id)
    if measure == "png":
        return png_length(pillow().open(image_id).convert("RGB"))
    return pathlib.Path(image_id).stat().st_size


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    mean = (n + 1) / 2
    cov = sum((x - mean) * (y - mean) for x, y in zip(ra, rb))
    var_a = sum((x - mean) ** 2 for x in ra)
    var_b = sum((y - mean) ** 2 for y in rb)
    return cov / (var_a * var_b) ** 0.5


def within_deciles(scores, labels, complexity, bins=10):
    """ROC-AUC inside complexity bins, weighted by each bin's normal x anomalous pairs."""
    order = sorted(range(len(complexity)), key=complexity.__getitem__)
    n, weighted, weights = len(order), 0.0, 0
    for b in range(bins):
        members = order[b * n // bins:(b + 1) * n // bins]
        anomalous = [scores[i] for i in members if labels[i] == 1]
        normal = [scores[i] for i in members if labels[i] == 0]
        if anomalous and normal:
            pairs = len(anomalous) * len(normal)
            weighted += pairs * roc_auc(anomalous, normal)
            weights += pairs
    return weighted / weights


def class_rows(folder, klass, methods, mnist, measure):
    """(complexity ROC-AUC, [rho per method], [ROC-AUC within deciles per method]) of a class,
    None for a method whose cell is unfinished; None if no cell of the class is."""
    complexity, auc, rhos, strata = None, None, [], []
    for method in methods:
        path = folder / "cells" / f"{klass}-{method}.json"
        if not path.exists():
            rhos.append(None)
            strata.append(None)
            continue
        cell = json.loads(path.read_text())
        if complexity is None:
            complexity = [complexity_of(i, mnist, measure) for i in cell["ids"]]
            labels = cell["labels"]
            auc = roc_auc([c for c, y in zip(complexity, labels) if y == 1],
                          [c for c, y in zip(complexity, labels) if y == 0])
        rhos.append(spearman(cell["scores"], complexity))
        strata.append(within_deciles(cell["scores"], cell["labels"], complexity))
    return None if complexity is None else (auc, rhos, strata)


def print_table(title, methods, rows, fmt):
    print(f"| {title} | complexity ROC-AUC | " + " | ".join(methods) + " |")
    print("| --- | ---: |" + " ---: |" * len(methods))
    for klass, auc, values in rows:
        cells = ["" if v is None else fmt.format(v) for v in values]
        print(f"| {klass} | {auc:.3f} | " + " | ".join(cells) + " |")
    complete = [r for r in rows if None not in r[2]]
    if len(complete) > 1:
        means = [sum(r[2][m] for r in complete) / len(complete) for m in range(len(methods))]
        mean_auc = sum(r[1] for r in complete) / len(complete)
        print(f"| mean of {len(complete)} | {mean_auc:.3f} | "
              + " | ".join(fmt.format(v) for v in means) + " |")


def fit_line(xs, ys):
    """Least-squares intercept and slope of ys against xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def corrected_auc(normal, anomalous, normal_complexity, anomalous_complexity):
    """ROC-AUC of log(score) - line(log(complexity)), the line fitted on one half of the
    normal images and applied to the other half and the anomalies; the two halves' ROC-AUCs
    averaged."""
    def log_pairs(scores, complexity):
        return [(math.log(c), math.log(max(s, 1e-12))) for s, c in zip(scores, complexity)]
    normals = log_pairs(normal, normal_complexity)
    anomalies = log_pairs(anomalous, anomalous_complexity)
    aucs = []
    for half in (0, 1):
        fit = [p for i, p in enumerate(normals) if i % 2 == half]
        held = [p for i, p in enumerate(normals) if i % 2 != half]
        a, b = fit_line([x for x, _ in fit], [y for _, y in fit])
        residual = lambda pairs: [y - a - b * x for x, y in pairs]
        aucs.append(roc_auc(residual(anomalies), residual(held)))
    return sum(aucs) / 2


def validation_rows(folder, mnist, measure):
    """One row per learning-curve point that kept its anomalous scores."""
    rows = []
    for curve_path in sorted(folder.glob("runs/*/validation.json")):
        curve = json.loads(curve_path.read_text())
        complexity = None
        for point in curve["points"]:
            if not point.get("anomalous_scores"):
                continue
            if complexity is None:
                complexity = [complexity_of(i, mnist, measure) for i in curve["validation_ids"]]
            n_normal = len(point["normal_scores"])
            corrected = corrected_auc(point["normal_scores"], point["anomalous_scores"],
                                      complexity[:n_normal], complexity[n_normal:])
            rows.append((curve_path.parent.name, point["iteration"],
                         point["search"]["lr_theta"], point["auc"], corrected))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--validation", action="store_true")
    parser.add_argument("--mnist", type=pathlib.Path,
                        default=pathlib.Path(__file__).parent / "../../shared/data/mnist")
    parser.add_argument("--measure", choices=["file", "png"], default="file")
    args = parser.parse_args()
    mnist = mnist_complexity(args.mnist, args.measure)
    if args.validation:
        print("| run | iterations | lr_theta | validation ROC-AUC | complexity-corrected |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for run, iteration, lr_theta, auc, corrected in validation_rows(args.folder, mnist, args.measure):
            print(f"| {run} | {iteration} | {lr_theta:g} | {auc:.3f} | {corrected:.3f} |")
        return
    experiment = json.loads((args.folder / "experiment.json").read_text())
    methods = experiment.get("methods") or sorted(
        {p.stem.split("-", 1)[1] for p in (args.folder / "cells").glob("*.json")})
    classes = []
    for p in sorted((args.folder / "cells").glob("*.json")):
        klass = json.loads(p.read_text())["class"]
        if str(klass) not in classes:
            classes.append(str(klass))
    results = [(k, class_rows(args.folder, k, methods, mnist, args.measure)) for k in classes]
    results = [(k, r) for k, r in results if r is not None]
    print_table("Spearman rho: normal class", methods,
                [(k, auc, rhos) for k, (auc, rhos, _) in results], "{:+.2f}")
    print()
    print_table("ROC-AUC within deciles: normal class", methods,
                [(k, auc, strata) for k, (auc, _, strata) in results], "{:.3f}")

if __name__ == "__main__":
    main()
