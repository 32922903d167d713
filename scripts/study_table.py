#!/usr/bin/env python3
"""Tabulates the validation study (scripts/study.sh, scripts/study-search.sh): every point of
every learning curve under results/mnist-*/runs/class-*/validation.json (or the folders given),
as Markdown, for RESULTS.md.

    python3 scripts/study_table.py [RESULTS_FOLDER...]
"""
import glob
import json
import sys
from collections import defaultdict


def label(search):
    parts = [f"lr_theta {search['lr_theta']:g}"]
    if search["loss"] != "l2":
        parts.append(search["loss"])
    if search["aggregate"] != "mean":
        parts.append(search["aggregate"])
    if search["k"] != 5:
        parts.append(f"k {search['k']}")
    if search["precision"] != "bf16":
        parts.append(search["precision"])
    if search.get("start", "prior") != "prior":
        parts.append(f"{search['start']} start, spread {search.get('spread', 0.5):g}")
    return ", ".join(parts)


def main():
    folders = sys.argv[1:] or sorted(glob.glob("results/mnist-*"))
    for folder in folders:
        recipe = folder.rstrip("/").split("/")[-1]
        curves = sorted(glob.glob(f"{folder}/runs/class-*/validation.json"))
        if not curves:
            continue
        print(f"\n### {recipe}\n")
        rows = defaultdict(dict)
        columns = []
        for path in curves:
            cls = path.split("/class-")[1].split("/")[0]
            for p in json.load(open(path))["points"]:
                col = label(p["search"])
                if col not in columns:
                    columns.append(col)
                rows[(cls, p["iteration"])][col] = p["auc"]
        print("| class | iterations | " + " | ".join(columns) + " |")
        print("| --- | ---: |" + " ---: |" * len(columns))
        best = {}
        for (cls, it), values in rows.items():
            for col, auc in values.items():
                if auc > best.get(cls, (0, None, None))[0]:
                    best[cls] = (auc, it, col)
        for (cls, it) in sorted(rows, key=lambda k: (k[0], k[1])):
            cells = []
            for col in columns:
                v = rows[(cls, it)].get(col)
                if v is None:
                    cells.append("-")
                elif best[cls][1:] == (it, col):
                    cells.append(f"**{v:.3f}**")
                else:
                    cells.append(f"{v:.3f}")
            print(f"| {cls} | {it} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
