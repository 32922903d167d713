#!/usr/bin/env python3
"""The one-vs-all table of an experiment folder while it still runs (adgan's table.md has no mean
until every class is in, and its report comes at the end): one row per class whose cells are all
finished, the mean over those rows, what the validation curve chose for ADGAN, and ADGAN's
calibrated decisions at alpha (the same conformal rule as `adgan score --alpha` and
report.html). Standard library only.

With --by-anomaly CLASS it prints instead, for that normal class, each method's ROC-AUC
against each anomalous class alone (which anomalies a method misses).

With --pairs A,B it prints the ROC-AUC difference A - B of every (normal class, anomalous
class) pair of the finished classes: where one method's lead or deficit comes from.

With --compare A,B it prints instead the ROC-AUC difference A - B per finished class and for
the mean over them, with 95% intervals from a paired bootstrap over the test images (normal and
anomalous images resampled apart, the same draws for both methods; needs numpy, which the
project's .venv has).

Usage: scripts/cells_table.py RESULTS_FOLDER [--alpha 0.05] [--by-anomaly CLASS]
       [--pairs A,B] [--compare A,B [--resamples 2000]]
"""
import argparse
import json
import pathlib
import statistics


def p_value(calibration, score):
    """Conformal p-value: (1 + #{calibration >= score}) / (n + 1)."""
    return (1 + sum(c >= score for c in calibration)) / (len(calibration) + 1)


def ranks(values):
    """Ranks 1..n of values, ties sharing their mean rank."""
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


def roc_auc(positives, negatives):
    """Mann-Whitney ROC-AUC, ties counted half."""
    n_pos, n_neg = len(positives), len(negatives)
    rank_sum = sum(ranks(list(positives) + list(negatives))[:n_pos])
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def per_anomaly_aucs(cell):
    """The anomalous classes of a cell and its ROC-AUC of the normal test images against each
    of them alone."""
    triples = list(zip(cell["scores"], cell["labels"], cell["test_classes"]))
    normal = [s for s, label, _ in triples if label == 0]
    anomalous = sorted({t for _, label, t in triples if label == 1})
    return anomalous, [
        roc_auc([s for s, label, t in triples if label == 1 and t == a], normal)
        for a in anomalous]


def by_anomaly(folder, klass, methods):
    """Each method's ROC-AUC of the normal test images against each anomalous class alone."""
    rows = []
    for method in methods:
        path = folder / "cells" / f"{klass}-{method}.json"
        if not path.exists():
            continue
        rows.append((method, *per_anomaly_aucs(json.loads(path.read_text()))))
    if not rows:
        print(f"no finished cell of class {klass}")
        return
    print(f"| normal class {klass}: method | " + " | ".join(str(a) for a in rows[0][1]) + " |")
    print("| --- |" + " ---: |" * len(rows[0][1]))
    for method, _, aucs in rows:
        print(f"| {method} | " + " | ".join(f"{v:.3f}" for v in aucs) + " |")


def finished_pair(folder, klass, a, b):
    """The cells of methods a and b for one class, or None while either is unfinished."""
    paths = [folder / "cells" / f"{klass}-{m}.json" for m in (a, b)]
    if not all(p.exists() for p in paths):
        return None
    return tuple(json.loads(p.read_text()) for p in paths)


def pairs(folder, classes, a, b):
    """AUC(a) - AUC(b) for every (normal class, anomalous class) pair, one row per normal class
    that has finished both methods; the diagonal is empty."""
    rows = {}
    for klass in classes:
        cells = finished_pair(folder, klass, a, b)
        if cells is None:
            continue
        (anomalous, auc_a), (_, auc_b) = (per_anomaly_aucs(c) for c in cells)
        rows[klass] = dict(zip(anomalous, (x - y for x, y in zip(auc_a, auc_b))))
    if not rows:
        print(f"no class has finished both {a} and {b}")
        return
    columns = sorted({t for row in rows.values() for t in row})
    print(f"| {a} - {b}: normal class | " + " | ".join(f"anomaly {t}" for t in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for klass, row in rows.items():
        print(f"| {klass} | " + " | ".join(
            f"{row[t]:+.3f}" if t in row else "" for t in columns) + " |")


def compare(folder, classes, a, b, resamples):
    """AUC(a) - AUC(b) per class and for the mean over classes, with bootstrap intervals."""
    import numpy as np  # only here: the rest of the script needs the standard library alone

    def aucs(scores, labels, draws):
        """ROC-AUC of every resample (rows of `draws`, indices into the images); ties in a
        resample are broken by position, which moves continuous scores by nothing."""
        s = scores[draws]
        pos = labels[draws] == 1
        ranks = s.argsort(axis=1).argsort(axis=1) + 1
        n_pos = pos.sum(axis=1)
        n_neg = pos.shape[1] - n_pos
        return ((ranks * pos).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

    rng = np.random.default_rng(0)
    rows, diffs = [], []
    for klass in classes:
        cells = finished_pair(folder, klass, a, b)
        if cells is None:
            continue
        ca, cb = cells
        assert ca["ids"] == cb["ids"], f"class {klass}: the cells scored different images"
        labels = np.array(ca["labels"])
        normal, anomalous = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
        draws = np.concatenate([
            normal[rng.integers(0, len(normal), (resamples, len(normal)))],
            anomalous[rng.integers(0, len(anomalous), (resamples, len(anomalous)))],
        ], axis=1)
        d = (aucs(np.array(ca["scores"]), labels, draws)
             - aucs(np.array(cb["scores"]), labels, draws))
        diffs.append(d)
        rows.append((klass, ca["auc"], cb["auc"], ca["auc"] - cb["auc"], *np.percentile(d, [2.5, 97.5])))
    if not rows:
        print(f"no class has finished both {a} and {b}")
        return
    print(f"| normal class | {a} | {b} | {a} - {b} | 95% interval |")
    print("| --- | ---: | ---: | ---: | --- |")
    for klass, x, y, d, lo, hi in rows:
        print(f"| {klass} | {x:.3f} | {y:.3f} | {d:+.3f} | [{lo:+.3f}, {hi:+.3f}] |")
    mean_a = statistics.mean(r[1] for r in rows)
    mean_b = statistics.mean(r[2] for r in rows)
    lo, hi = np.percentile(np.mean(diffs, axis=0), [2.5, 97.5])
    print(f"| mean ({len(rows)} classes) | {mean_a:.3f} | {mean_b:.3f} | {mean_a - mean_b:+.3f} | "
          f"[{lo:+.3f}, {hi:+.3f}] |")


def decisions(cell, alpha):
    """Flags, false-positive rate, precision and recall of ADGAN at alpha (None without
    calibration scores)."""
    calibration = cell.get("calibration_scores") or []
    if not calibration:
        return None
    flagged = [p_value(calibration, s) <= alpha for s in cell["scores"]]
    labels = cell["labels"]  # 1 = anomalous
    normals = labels.count(0)
    anomalies = labels.count(1)
    false_pos = sum(f and l == 0 for f, l in zip(flagged, labels))
    true_pos = sum(f and l == 1 for f, l in zip(flagged, labels))
    n_flagged = sum(flagged)
    return {
        "calibration": len(calibration),
        "normals": normals,
        "false_positives": false_pos,
        "fpr": false_pos / normals if normals else float("nan"),
        "recall": true_pos / anomalies if anomalies else float("nan"),
        "precision": true_pos / n_flagged if n_flagged else float("nan"),
    }


def method_pair(text):
    """argparse type of --pairs and --compare: two method names, comma-separated."""
    names = text.split(",")
    if len(names) != 2 or not all(names):
        raise argparse.ArgumentTypeError(f"expected two methods as A,B (e.g. adgan,gmm), not {text!r}")
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--by-anomaly", metavar="CLASS")
    parser.add_argument("--pairs", metavar="A,B", type=method_pair)
    parser.add_argument("--compare", metavar="A,B", type=method_pair)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    experiment = json.loads((args.folder / "experiment.json").read_text())
    methods = experiment["methods"]
    if args.compare is not None:
        a, b = args.compare
        compare(args.folder, experiment["classes"], a, b, args.resamples)
        return
    if args.pairs is not None:
        a, b = args.pairs
        pairs(args.folder, experiment["classes"], a, b)
        return
    if args.by_anomaly is not None:
        by_anomaly(args.folder, args.by_anomaly, methods)
        return
    rows, extras = [], []
    for klass in experiment["classes"]:
        paths = [args.folder / "cells" / f"{klass}-{m}.json" for m in methods]
        if not all(p.exists() for p in paths):
            continue
        cells = [json.loads(p.read_text()) for p in paths]
        rows.append((klass, [c["auc"] for c in cells]))
        adgan = next((c for c in cells if c["method"] == "adgan"), None)
        if adgan is not None:
            extras.append((klass, adgan.get("chosen", {}), decisions(adgan, args.alpha), adgan))
    if not rows:
        print("no class has finished every method yet")
        return
    print("| normal class | " + " | ".join(methods) + " |")
    print("| --- |" + " ---: |" * len(methods))

    def line(label, values):
        best = max(values)
        shown = [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in values]
        print(f"| {label} | " + " | ".join(shown) + " |")

    for klass, aucs in rows:
        line(klass, aucs)
    means = [statistics.mean(r[1][i] for r in rows) for i in range(len(methods))]
    line(f"mean ({len(rows)} classes)", means)
    print()
    print(f"| class | chosen iterations | lr_theta | validation AUC | calibration images | "
          f"normals flagged at alpha {args.alpha} | FPR | precision | recall |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for klass, chosen, d, _ in extras:
        if d is None:
            continue
        print(f"| {klass} | {chosen.get('iterations', float('nan')):.0f} | "
              f"{chosen.get('lr_theta', float('nan')):g} | "
              f"{chosen.get('validation_auc', float('nan')):.3f} | {d['calibration']} | "
              f"{d['false_positives']} of {d['normals']} | {d['fpr']:.3f} | "
              f"{d['precision']:.3f} | {d['recall']:.3f} |")


if __name__ == "__main__":
    main()
