#!/usr/bin/env bash
# The validation study of issue 11: learning curves of ADGAN's validation ROC-AUC (held-out
# normal training images against training images of other classes; no test image is read) for
# several GAN recipes, on the MNIST classes where ADGAN trailed. Resumable: run it again to
# continue. Usage: [CLASSES=5,8] [ITERATIONS=1500] scripts/study.sh [RECIPE...]
# (default: every recipe, in order).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
A=${ADGAN:-target/release/adgan}
mnist=../shared/data/mnist
classes=${CLASSES:-5,8}
iterations=${ITERATIONS:-1500}
common=(--dataset mnist --data "$mnist" --classes "$classes" --iterations "$iterations"
        --select-every 500 --select-lr-theta 5e-5,5e-4 --precision bf16 --validation-only)
run() {
  local name=$1; shift
  echo "== $name: $*" >&2
  "$A" experiment one-vs-all "${common[@]}" "$@" --out "results/mnist-$name"
}
recipes=("$@")
[ ${#recipes[@]} -eq 0 ] && recipes=(gp32-dcgan-b0 gp32-uniform-b05 clip32-dcgan gp64-uniform-b05)
for r in "${recipes[@]}"; do
  case $r in
    gp64-uniform-b05) run "$r" --objective gp --width 64 --init uniform --beta1 0.5 ;;
    gp32-dcgan-b0)    run "$r" --objective gp --width 32 --init dcgan --beta1 0 ;;
    gp64-dcgan-b0)    run "$r" --objective gp --width 64 --init dcgan --beta1 0 ;;
    clip32-dcgan)     run "$r" --objective clip --width 32 --init dcgan ;;
    gp32-uniform-b05) run "$r" --objective gp --width 32 --init uniform --beta1 0.5 ;;
    clip64-dcgan)     run "$r" --objective clip --width 64 --init dcgan ;;
    # The GAN's optimiser at the MNIST table's recipe: fewer critic steps, a larger rate.
    gp64-uniform-b05-ncritic2) run "$r" --objective gp --width 64 --init uniform --beta1 0.5 --n-critic 2 ;;
    gp64-uniform-b05-lr2e-4)   run "$r" --objective gp --width 64 --init uniform --beta1 0.5 --lr 2e-4 ;;
    *) echo "unknown recipe $r" >&2; exit 2 ;;
  esac
done
