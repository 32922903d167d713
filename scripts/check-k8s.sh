#!/usr/bin/env bash
# Checks deploy/k8s-score.yaml against the Kubernetes Job API's schema, offline, with PyPI's
# kubernetes-validate (its schemas ship with it; installed into .venv when missing), strict:
# a misspelt field fails. No cluster can run here, so this is as far as the file is checked.
# Says that it skipped where the tool cannot be installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tool="$root/.venv/bin/kubernetes-validate"
if [ ! -x "$tool" ]; then
  "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate>=1.31" > /dev/null 2>&1 \
    || { echo "check-k8s: skipped (kubernetes-validate could not be installed)"; exit 0; }
fi
"$tool" --strict --quiet "$root/deploy/k8s-score.yaml"
echo "check-k8s: ok (deploy/k8s-score.yaml is a valid Job, strict, by kubernetes-validate $("$tool" --version))"
