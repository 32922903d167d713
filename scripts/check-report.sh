#!/usr/bin/env bash
# Renders a small experiment report in headless Chromium and checks what a reader sees: the
# ROC-AUC table (a row per class and the mean), the ROC plot, the calibrated decisions (a row
# and a score histogram per class), a gallery tile for every image of
# every method, every image decodable, and no console error; leaves a screenshot to look at.
# Needs Debian's `chromium`; says that it skipped otherwise.
#   scripts/check-report.sh [OUT_DIR]     (default: a temporary folder; the screenshot is kept there)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "check-report: skipped (no chromium; install Debian's chromium package to run it)"
  exit 0
fi
out=${1:-$(mktemp -d)}
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
python3 - "$out" <<'PY'
import base64, re, sys, zlib, struct
out = sys.argv[1]
dom = open(f"{out}/dom.html").read()
fail = []
table = re.search(r'<table id="auc">(.*?)</table>', dom, re.S)
rows = table.group(1).count("<tr>") if table else 0
if rows != 1 + 2 + 1:
    fail.append(f"the ROC-AUC table has {rows} rows, not 4 (header, 2 classes, mean)")
if "<svg" not in dom:
    fail.append("no ROC plot")
decisions = re.search(r'<table id="decisions">(.*?)</table>', dom, re.S)
rows = decisions.group(1).count("<tr>") if decisions else 0
if rows != 1 + 2:
    fail.append(f"the calibrated-decisions table has {rows} rows, not 3 (header, 2 classes)")
elif re.search(r"<th>[^<]*</th><td>\d+</td><td>-</td>", decisions.group(1)):
    fail.append("a class has no threshold although 40 calibration images allow alpha 0.05")
if dom.count("<svg") != 1 + 2:
    fail.append(f"{dom.count('<svg')} plots, not 3 (ROC and a histogram per class)")
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
if fail:
    print("check-report: FAILED\n  " + "\n  ".join(fail))
    sys.exit(1)
print(f"check-report: ok ({rows} table rows, {figures} tiles, every image decodes, no console "
      f"errors); screenshot {out}/report.png")
PY
