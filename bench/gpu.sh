#!/usr/bin/env bash
# Every GPU figure of issue 6 in one run on the lent GPU machine, side by side with PyTorch.
#
# Here, first:   source scripts/env.sh && cargo build --release && bench/gpu.sh --prepare
#   (copies the MNIST files and a trained class-0 run, RUN= or results/mnist's, into .carry/gpu)
# Then, with the device tool:
#   run(command="bench/gpu.sh", carry=["target/release/adgan", ".carry/gpu",
#       "target/release/examples/phase_layout"], timeout_s=540)
#   (build the example with `cargo build --release --example phase_layout` first)
# The log comes back as $OUT/gpu.log. The binary finds libtorch (CPU and CUDA) through the GPU
# machine's python3 torch, which must be 2.11.0 (+cu130).
# A dry run of the script here, tiny and on the CPU:
#   DEVICE=cpu IMAGES=2 N_TEST=20 PYTHON=$PWD/.venv/bin/python bench/gpu.sh
# STEPS="score layouts" runs only those groups (score, layouts, phase, profile, train, run,
# baselines; default all). `layouts` times the search's candidate GPU layouts
# (bench/search_layouts.py), `phase` the phase-decomposed layer against adgan's grouped one
# (examples/phase_layout.rs), `baselines` fits PCA with KDE, GMM, OC-SVM and IF on the device
# and on the CPU and fails where their scores differ beyond 1e-6 of their scale.
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
    run=${RUN:-results/mnist/runs/class-0}
    [ -f "$run/checkpoint.safetensors" ] || { echo "no trained run at $run: give one in RUN= (any MNIST class-0 run, e.g. \`adgan train --dataset mnist --data ../shared/data/mnist --normal-class 0 --out runs/mnist-0\`)" >&2; exit 1; }
    mkdir -p .carry/gpu/mnist .carry/gpu/class-0
    cp ../shared/data/mnist/t10k-*.gz ../shared/data/mnist/train-*.gz .carry/gpu/mnist/
    cp "$run/config.json" "$run/checkpoint.safetensors" .carry/gpu/class-0/
    du -sh .carry/gpu target/release/adgan
    exit 0
fi
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
DEVICE=${DEVICE:-cuda} IMAGES=${IMAGES:-256} N_TEST=${N_TEST:-1000} PYTHON=${PYTHON:-python3}
# Found without importing torch: a CPU-only install here cannot import it (no cuDNN), yet its
# libraries serve the binary.
TORCH_DIR=$("$PYTHON" -c 'import os, importlib.util as u; print(os.path.dirname(u.find_spec("torch").origin))')
export LD_LIBRARY_PATH="$TORCH_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
A=target/release/adgan
step() { echo; echo "\$ $*"; timeout 150 "$@"; }
date -u; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
"$PYTHON" -c 'import torch; print("python torch", torch.__version__)'
# H200 dense peaks: tf32 494 TFLOP/s (libtorch runs f32 convolutions in tf32 by default), bf16 989.
STEPS=${STEPS:-score layouts phase profile train run baselines}
want() { [[ " $STEPS " == *" $1 "* ]]; }
# The search replayed from a CUDA graph is measured beside the batched one (a CUDA device only).
GRAPH=$([ "$DEVICE" = cpu ] || echo --cuda-graph)
if want score; then
    step $A bench score --device $DEVICE --images $IMAGES --precision f32 --peak-tflops 494 $GRAPH
    step $A bench score --device $DEVICE --images $IMAGES --precision bf16 --peak-tflops 989 $GRAPH
    (cd bench && step "$PYTHON" score_search.py --device $DEVICE --images $IMAGES --vmap $(( IMAGES < 64 ? IMAGES : 64 )))
    (cd bench && step "$PYTHON" score_search.py --device $DEVICE --images $IMAGES --vmap $(( IMAGES < 64 ? IMAGES : 64 )) --bf16)
fi
if want layouts; then
    step "$PYTHON" bench/search_layouts.py --device $DEVICE --images $IMAGES
fi
if want phase; then
    # The three stride-2 layers of width 64 at 32x32, IMAGES copies, n_seed 64.
    for shape in "256 128 4" "128 64 8" "64 3 16"; do
        step target/release/examples/phase_layout $DEVICE $IMAGES 64 $shape
    done
fi
if want profile; then
    step $A bench profile --device $DEVICE --images $(( IMAGES < 64 ? IMAGES : 64 )) --steps 10
    step $A bench profile --device $DEVICE --images $(( IMAGES < 64 ? IMAGES : 64 )) --steps 10 --precision bf16
fi
if want train; then
    step $A bench train --device $DEVICE --steps 20 $GRAPH
    step $A bench train --device $DEVICE --steps 20 --gp $GRAPH
    (cd bench && step "$PYTHON" train_step.py --device $DEVICE --steps 20)
    (cd bench && step "$PYTHON" train_step.py --device $DEVICE --steps 20 --gp)
fi
if want baselines; then
    step $A bench baselines --dataset mnist --data .carry/gpu/mnist --normal-class 0 \
        --n-test $N_TEST --device $DEVICE --against-cpu
fi
if want run; then
    for p in f32 bf16; do
        step $A score --device $DEVICE --model .carry/gpu/class-0 --dataset mnist --data .carry/gpu/mnist \
            --normal-class 0 --n-test $N_TEST --precision $p -o "$OUT/class-0-$p.csv"
    done
fi
date -u
