#!/usr/bin/env bash
# The tests: installs what is missing, checks formatting and lints, runs every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
source scripts/env.sh
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
cargo fmt --all --check
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy -p adgan-python --quiet -- -D warnings
# The library alone, as a dependency sees it: no clap, no progress bars.
cargo clippy --lib --no-default-features --quiet -- -D warnings
cargo test --release
# The Python package over the same library: built into .venv, then its tests (which compare
# its scores with the release binary's).
scripts/python.sh
.venv/bin/python -m pytest python/tests -q
# The report as a browser shows it (skipped, saying so, where Debian's chromium is absent).
scripts/check-report.sh
# The cluster files run for real where this machine allows: a single-node Slurm cluster (root
# and Debian's slurm-wlm) and the Job's schema (skipped, saying so, otherwise).
scripts/check-slurm.sh
scripts/check-k8s.sh
