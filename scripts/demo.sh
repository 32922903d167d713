#!/usr/bin/env bash
# The demo: installs what is missing, builds adgan, trains a small GAN on embedded data.
# Extra arguments go to `adgan demo` (see `adgan demo --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
source scripts/env.sh
cargo build --release --quiet
exec target/release/adgan demo "$@"
