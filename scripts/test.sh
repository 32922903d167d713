#!/usr/bin/env bash
# The tests: installs what is missing, checks formatting and lints, runs every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
source scripts/env.sh
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
# The library alone, as a dependency sees it: no clap, no progress bars.
cargo clippy --lib --no-default-features --quiet -- -D warnings
cargo test --release
# The report as a browser shows it (skipped, saying so, where Debian's chromium is absent).
scripts/check-report.sh
