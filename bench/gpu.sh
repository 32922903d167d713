#!/usr/bin/env bash
# Every GPU figure of issue 6 in one run on the lent GPU machine, side by side with PyTorch.
#
# Here, first:   source scripts/env.sh && cargo build --release && bench/gpu.sh --prepare
#   (copies the MNIST files into .carry/gpu, and a trained MNIST class-0 run if RUN= names one;
#   without one, the `run` step trains class 0 on the device first, TRAIN_ITERATIONS long,
#   default 1500, MNIST's table recipe: checkpoints are not kept in git, so a fresh checkout
#   has none)
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
    mkdir -p .carry/gpu/mnist
    cp ../shared/data/mnist/t10k-*.gz ../shared/data/mnist/train-*.gz .carry/gpu/mnist/
    rm -rf .carry/gpu/class-0
    if [ -n "${RUN:-}" ]; then
        [ -f "$RUN/checkpoint.safetensors" ] || { echo "RUN=$RUN has no checkpoint.safetensors: give the folder of a trained MNIST class-0 run (\`adgan train --dataset mnist --data ../shared/data/mnist --normal-class 0 --out runs/mnist-0\`), or leave RUN out to train one on the device" >&2; exit 1; }
        mkdir -p .carry/gpu/class-0
        cp "$RUN/config.json" "$RUN/checkpoint.safetensors" .carry/gpu/class-0/
    else
        echo "no RUN given: the run step will train MNIST class 0 on the device first"
    fi
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
    model=.carry/gpu/class-0
    if [ ! -f "$model/checkpoint.safetensors" ]; then
        # MNIST's table recipe (scripts/tables.sh): the default recipe at width 64 and lr 2e-4.
        # In a scratch folder: the checkpoint need not come back.
        model=$(mktemp -d)/class-0
        timeout 300 $A train --device $DEVICE --dataset mnist --data .carry/gpu/mnist --normal-class 0 \
            --width 64 --lr 2e-4 --iterations ${TRAIN_ITERATIONS:-1500} --no-ensemble \
            --out "$model" 2>&1 | tail -4
    fi
    for p in f32 bf16; do
        step $A score --device $DEVICE --model "$model" --dataset mnist --data .carry/gpu/mnist \
            --normal-class 0 --n-test $N_TEST --method adgan --precision $p -o "$OUT/class-0-$p.csv"
    done
fi
date -u
