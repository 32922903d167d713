#!/usr/bin/env bash
# The search side of the validation study (issue 11): on GANs the study of scripts/study.sh
# trained, at one snapshot, ADGAN's validation ROC-AUC with the options beyond the paper (the
# Laplacian-pyramid loss, the minimum over seeds instead of the mean) and in f32 against bf16.
# No GAN is trained and no test image is read. Resumable.
# Usage: [CLASSES=5,8] [AT=1000] scripts/study-search.sh RECIPE FLAGS...
#   e.g. scripts/study-search.sh gp32-dcgan-b0 --objective gp --width 32 --init dcgan --beta1 0
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
A=${ADGAN:-target/release/adgan}
name=$1; shift
at=${AT:-1000}
common=(--dataset mnist --data ../shared/data/mnist --classes "${CLASSES:-5,8}"
        --iterations "$at" --select-every "$at" --select-lr-theta 5e-5,5e-4 --validation-only
        --out "results/mnist-$name" "$@")
echo "== $name at $at: loss and aggregation (bf16)" >&2
"$A" experiment one-vs-all "${common[@]}" --precision bf16 \
  --select-loss l2,laplacian --select-aggregate mean,min
echo "== $name at $at: f32 against bf16" >&2
"$A" experiment one-vs-all "${common[@]}" --precision f32
