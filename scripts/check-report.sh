#!/usr/bin/env bash
# Renders a small experiment report and a ranking's page in headless Chromium and checks what a
# reader sees. The report: the ROC-AUC table (a row per class and the mean), the ROC plots (the
# mean and each class's), each class's validation curve, the calibrated decisions (a row and a
# score histogram per class), a gallery tile for every image of every method, every image
# decodable. The ranking page: a row per image with its thumbnail,
# the maps of the gallery images, p-values and flagged rows. Neither logs a console error;
# screenshots of both are left to look at.
# Needs Debian's `chromium`; says that it skipped otherwise.
#   scripts/check-report.sh [OUT_DIR]     (default: a temporary folder; made when missing)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "check-report: skipped (no chromium; install Debian's chromium package to run it)"
  exit 0
fi
out=${1:-$(mktemp -d)}
mkdir -p "$out"
adgan="$root/target/release/adgan"
[ -x "$adgan" ] || (cd "$root" && source scripts/env.sh && cargo build --release --quiet)
"$adgan" experiment one-vs-all --dataset demo --classes disc,stripes --methods adgan,critic,kde \
  --n-test 40 --iterations 20 --objective gp --width 8 --latent-dim 16 --n-seed 4 \
  --pca-dims 8,16 --select-every 10 --validation-max 40 --device cpu --out "$out/exp" \
  > "$out/experiment.log" 2>&1
report="$out/exp/report.html"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$out/profile")
"$browser" "${flags[@]}" --dump-dom "file://$report" > "$out/dom.html" 2> "$out/dump.log"
"$browser" "${flags[@]}" --enable-logging=stderr --v=0 --window-size=1280,2400 \
  --screenshot="$out/report.png" "file://$report" > /dev/null 2> "$out/console.log"

# A ranking: a small calibrated run ranks twelve grey gradients (written as PNG here).
"$adgan" train --dataset demo --normal-class disc --width 8 --latent-dim 16 --iterations 20 \
  --batch-size 16 --device cpu --out "$out/run" > "$out/train.log" 2>&1
python3 "$root/scripts/test_pngs.py" "$out/images" 12
"$adgan" rank --model "$out/run" --images "$out/images" --top 3 --device cpu \
  --out "$out/ranked" > "$out/rank.log" 2>&1
page="$out/ranked/index.html"
"$browser" "${flags[@]}" --dump-dom "file://$page" > "$out/page-dom.html" 2> "$out/page-dump.log"
"$browser" "${flags[@]}" --enable-logging=stderr --v=0 --window-size=1000,1600 \
  --screenshot="$out/page.png" "file://$page" > /dev/null 2> "$out/page-console.log"
python3 - "$out" <<'PY'
import base64, re, sys, zlib, struct
out = sys.argv[1]
dom = open(f"{out}/dom.html").read()
fail = []
table = re.search(r'<table id="auc">(.*?)</table>', dom, re.S)
auc_rows = table.group(1).count("<tr>") if table else 0
if auc_rows != 1 + 2 + 1:
    fail.append(f"the ROC-AUC table has {auc_rows} rows, not 4 (header, 2 classes, mean)")
if "<svg" not in dom:
    fail.append("no ROC plot")
decisions = re.search(r'<table id="decisions">(.*?)</table>', dom, re.S)
rows = decisions.group(1).count("<tr>") if decisions else 0
if rows != 1 + 2:
    fail.append(f"the calibrated-decisions table has {rows} rows, not 3 (header, 2 classes)")
elif re.search(r"<th>[^<]*</th><td>\d+</td><td>-</td>", decisions.group(1)):
    fail.append("a class has no threshold although 40 calibration images allow alpha 0.05")
if dom.count("<svg") != 1 + 3 * 2:
    fail.append(f"{dom.count('<svg')} plots, not 7 (mean ROC; per class its ROC, validation "
                "curve and histogram)")
if dom.count("validation, normal class") != 2 or "<circle" not in dom:
    fail.append("no validation curve with its chosen point for each class")
figures = dom.count("<figure")
if figures != 3 * 2 * 2 * 8:
    fail.append(f"{figures} gallery tiles, not 96 (3 methods x 2 classes x 2 ends x 8)")
broken = 0
for data in re.findall(r'src="data:image/png;base64,([^"]+)"', dom):
    png = base64.b64decode(data)
    ok = png[:8] == b"\x89PNG\r\n\x1a\n"
    if ok:
        # Inflate the image data: a corrupt PNG fails here.
        chunks, i = b"", 8
        while i < len(png):
            n, kind = struct.unpack(">I4s", png[i:i + 8])
            if kind == b"IDAT":
                chunks += png[i + 8:i + 8 + n]
            i += 12 + n
        try:
            zlib.decompress(chunks)
        except zlib.error:
            ok = False
    broken += not ok
if broken:
    fail.append(f"{broken} images do not decode")
console = open(f"{out}/console.log").read()
errors = [l for l in console.splitlines() if "CONSOLE" in l or "Uncaught" in l]
if errors:
    fail.append("console errors: " + " | ".join(errors[:3]))
import os
if not os.path.exists(f"{out}/report.png") or os.path.getsize(f"{out}/report.png") < 10000:
    fail.append("no screenshot")
page = open(f"{out}/page-dom.html").read()
ranking = re.search(r'<table id="ranking">(.*?)</table>', page, re.S)
page_rows = ranking.group(1).count("<tr") if ranking else 0
if page_rows != 1 + 12:
    fail.append(f"the ranking page has {page_rows} rows, not 13 (header, 12 images)")
thumbs = re.findall(r'<img class="thumb"[^>]*src="(file://[^"]+)"', page)
if len(thumbs) != 12 or not all(os.path.exists(t[len("file://"):]) for t in thumbs):
    fail.append(f"{len(thumbs)} thumbnails linking to the images, not 12")
maps = re.findall(r'<img class="map"[^>]*src="([^"]+)"', page)
if len(maps) != 6 or not all(os.path.exists(f"{out}/ranked/{m}") for m in maps):
    fail.append(f"{len(maps)} maps of the gallery images on the page, not 6 (3 at each end)")
if "p-value" not in page or page.count('data-v="') < 12 * 3:
    fail.append("the page has no p-values, although the run is calibrated")
console = open(f"{out}/page-console.log").read()
errors = [l for l in console.splitlines() if "CONSOLE" in l or "Uncaught" in l]
if errors:
    fail.append("console errors on the ranking page: " + " | ".join(errors[:3]))
if not os.path.exists(f"{out}/page.png") or os.path.getsize(f"{out}/page.png") < 10000:
    fail.append("no screenshot of the ranking page")
if fail:
    print("check-report: FAILED\n  " + "\n  ".join(fail))
    sys.exit(1)
print(f"check-report: ok ({auc_rows} ROC-AUC rows, {figures} tiles, every image decodes, "
      f"{page_rows - 1} ranked images with thumbnails and {len(maps)} maps, no console "
      f"errors); screenshots {out}/report.png, {out}/page.png")
PY
