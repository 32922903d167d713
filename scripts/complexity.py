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

Complexity of an image, with no decoder beyond the standard library:
- CIFAR-10 from a folder of JPEG files (ids are paths): the file's size in bytes, which is the
  JPEG encoder's compressed length of that image.
- MNIST (ids `test:N` or `train:N`): the zlib-compressed length of the image's 28x28 bytes,
  read from the IDX files in --mnist.

It reads test scores that are already in the folder; it chooses nothing (analysis only).

Usage: scripts/complexity.py RESULTS_FOLDER [--mnist ../shared/data/mnist]
"""
import argparse
import gzip
import json
import pathlib
import zlib

from cells_table import roc_auc


def mnist_complexity(mnist_folder):
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
        return len(zlib.compress(images(split)[start:start + 28 * 28], 9))

    return complexity


def complexity_of(image_id, mnist):
    if ":" in image_id and not image_id.startswith("/"):
        return mnist(image_id)
    return pathlib.Path(image_id).stat().st_size


def ranks(values):
    """Ranks 1..n, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and values[order[j]] == values[order[i]]:
            j += 1
        for k in range(i, j):
            result[order[k]] = (i + 1 + j) / 2
        i = j
    return result


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


def class_rows(folder, klass, methods, mnist):
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
            complexity = [complexity_of(i, mnist) for i in cell["ids"]]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--mnist", type=pathlib.Path,
                        default=pathlib.Path(__file__).parent / "../../shared/data/mnist")
    args = parser.parse_args()
    mnist = mnist_complexity(args.mnist)
    experiment = json.loads((args.folder / "experiment.json").read_text())
    methods = experiment.get("methods") or sorted(
        {p.stem.split("-", 1)[1] for p in (args.folder / "cells").glob("*.json")})
    classes = []
    for p in sorted((args.folder / "cells").glob("*.json")):
        klass = json.loads(p.read_text())["class"]
        if str(klass) not in classes:
            classes.append(str(klass))
    results = [(k, class_rows(args.folder, k, methods, mnist)) for k in classes]
    results = [(k, r) for k, r in results if r is not None]
    print_table("Spearman rho: normal class", methods,
                [(k, auc, rhos) for k, (auc, rhos, _) in results], "{:+.2f}")
    print()
    print_table("ROC-AUC within deciles: normal class", methods,
                [(k, auc, strata) for k, (auc, _, strata) in results], "{:.3f}")

if __name__ == "__main__":
    main()
