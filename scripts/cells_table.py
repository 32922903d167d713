#!/usr/bin/env python3
"""The one-vs-all table of an experiment folder while it still runs (adgan writes table.md only
at the end): one row per class whose cells are all finished, the mean over those rows, what the
validation curve chose for ADGAN, and ADGAN's calibrated decisions at alpha (the same conformal
rule as `adgan score --alpha` and report.html). Standard library only.

Usage: scripts/cells_table.py RESULTS_FOLDER [--alpha 0.05]
"""
import argparse
import json
import pathlib
import statistics


def p_value(calibration, score):
    """Conformal p-value: (1 + #{calibration >= score}) / (n + 1)."""
    return (1 + sum(c >= score for c in calibration)) / (len(calibration) + 1)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    experiment = json.loads((args.folder / "experiment.json").read_text())
    methods = experiment["methods"]
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
