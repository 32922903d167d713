#!/usr/bin/env bash
# Builds the Python package `adgan` (python/: PyO3 over the same library) into .venv, after
# scripts/setup.sh; then `.venv/bin/python -c "import adgan"` works.
#   scripts/python.sh          build it (release, editable: python/adgan is the package)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
source "$root/scripts/env.sh"
log="$(mktemp)"
if ! (cd "$root/python" && VIRTUAL_ENV="$root/.venv" PATH="$root/.venv/bin:$PATH" \
      maturin develop --release > "$log" 2>&1); then
  cat "$log" >&2
  echo "python: building the package failed (log above)" >&2
  exit 1
fi
rm -f "$log"
echo "python: adgan built into $root/.venv" >&2
