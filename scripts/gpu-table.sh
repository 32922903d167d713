#!/usr/bin/env bash
# The MNIST one-vs-all table on a lent GPU machine, in one call of the device tool: the recipe of
# scripts/tables.sh mnist with the methods of issue 38's target (adgan, adgan-ic, prior, critic,
# kde, gmm, ocsvm, iforest and the ensemble), n_test 5000, into a folder of its own
# (results/mnist-gpu-table). It stops itself before LIMIT seconds, brings back every class it
# finished, and says how long the classes took (the target: the whole table in 8 minutes of an
# H200). A second call continues: classes finished here are skipped, the others start from
# scratch on the device. TABLE=results/mnist-gp64-lr2e-4-table METHODS=... continues the CPU's
# table instead (finished since 2026-12-02, so it has nothing left unless records are removed).
# The CIFAR-10 table cannot go this way: its JPEG folder and the repository's tracked results
# together exceed what the device tool carries (64 MiB).
#
# Here, first:
#   source scripts/env.sh && cargo build --release && scripts/gpu-table.sh --prepare
#   (copies the MNIST files into .carry/table; the table's folder travels as tracked files)
# With the device tool:
#   run(command="scripts/gpu-table.sh", carry=["target/release/adgan", ".carry/table"],
#       timeout_s=570)
#   The experiment stops itself before LIMIT seconds (default 500); $OUT/table.tar and
#   $OUT/table.log come back.
# Here again:
#   scripts/gpu-table.sh --collect FILES_AT/table.tar
#   (takes the records of each class the GPU finished; keeps the rest)
# GRAPH=1 replays each training iteration and each search from a CUDA graph (--cuda-graph: the
# same weights and scores, fewer launches).
# A dry run here (CPU, stopped after a minute):
#   TABLE=/tmp/t DATA_LINK=/tmp/t-data/main LIMIT=60 ADGAN=target/release/adgan \
#     OUT=/tmp/t-out scripts/gpu-table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TABLE=${TABLE:-results/mnist-gpu-table}
METHODS=${METHODS:-adgan,adgan-ic,prior,critic,kde,gmm,ocsvm,iforest,ensemble}
# The path the table recorded its data under; on the GPU machine the data is put there.
RECORDED=/work/main/../shared/data/mnist
# The class's records that the table keeps (.gitignore): what travels back.
records() {
    (cd "$TABLE" && find . -path ./runs -prune -o -type f ! -name .adgan.lock -print &&
        find runs -type f \( -name config.json -o -name losses.csv -o -name validation.json \))
}
# A class is finished when every method of the table has its cell.
finished() {
    local class=$1 methods
    [ -f "$TABLE/experiment.json" ] || return 1
    methods=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["methods"]))' \
        "$TABLE/experiment.json")
    for m in $methods; do [ -f "$TABLE/cells/$class-$m.json" ] || return 1; done
}
case "${1:-}" in
--prepare)
    mkdir -p .carry/table/mnist
    cp -f ../shared/data/mnist/*-ubyte.gz .carry/table/mnist/
    du -sh .carry/table target/release/adgan
    exit 0 ;;
--collect)
    tar=$2
    scratch=$(mktemp -d)
    tar -xf "$tar" -C "$scratch"
    # A table begun on the device: its settings come with it.
    if [ ! -f "$TABLE/experiment.json" ] && [ -f "$scratch/experiment.json" ]; then
        mkdir -p "$TABLE" && cp "$scratch/experiment.json" "$TABLE/"
    fi
    for class in 0 1 2 3 4 5 6 7 8 9; do
        TABLE=$scratch finished "$class" || continue
        finished "$class" && continue
        echo "class $class: finished on the GPU, taken"
        rm -rf "$TABLE/runs/class-$class" "$TABLE/runs/class-$class-"* "$TABLE/cells/$class-"* \
            "$TABLE/partial/$class-"*
        (cd "$scratch" && find . \( -path "./cells/$class-*" -o -path "./runs/class-$class/*" \
            -o -path "./runs/class-$class-*" \) -type f) |
            while read -r f; do mkdir -p "$TABLE/$(dirname "$f")"; cp "$scratch/$f" "$TABLE/$f"; done
    done
    rm -rf "$scratch"
    exit 0 ;;
esac
# On the GPU machine.
OUT=${OUT:?the device tool sets OUT}
LIMIT=${LIMIT:-500}
A=${ADGAN:-target/release/adgan}
exec > >(tee "$OUT/table.log") 2>&1
date -u
if [ -z "${DATA_LINK:-}" ]; then
    PYTHON=${PYTHON:-python3}
    TORCH_DIR=$("$PYTHON" -c 'import os, importlib.util as u; print(os.path.dirname(u.find_spec("torch").origin))')
    export LD_LIBRARY_PATH="$TORCH_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    nvidia-smi --query-gpu=name,memory.total --format=csv || true
    mkdir -p /work/main /work/shared/data/mnist
    cp .carry/table/mnist/* /work/shared/data/mnist/
    data=$RECORDED
else
    # Dry run: the same data reached by another spelling, as another checkout would.
    mkdir -p "$DATA_LINK" "$(dirname "$DATA_LINK")/shared/data"
    ln -sfn "$(cd ../shared/data/mnist && pwd)" "$(dirname "$DATA_LINK")/shared/data/mnist"
    data=$DATA_LINK/../shared/data/mnist
fi
# Every class not finished here starts from scratch on this device.
for class in 0 1 2 3 4 5 6 7 8 9; do
    finished "$class" && continue
    rm -rf "$TABLE/runs/class-$class" "$TABLE/runs/class-$class-"* "$TABLE/cells/$class-"* \
        "$TABLE/partial/$class-"*
done
# The table's command (scripts/tables.sh mnist), stopped before the call's limit; a cell being
# computed then is lost, every finished one is kept.
start=$(date +%s)
timeout -s INT "$LIMIT" "$A" experiment one-vs-all --dataset mnist --data "$data" --classes 0-9 \
    --methods "$METHODS" --n-test 5000 \
    --objective gp --init uniform --beta1 0.5 --select-lr-theta 5e-5,5e-4 --precision bf16 \
    --width 64 --lr 2e-4 --iterations 1500 --select-every 250 ${GRAPH:+--cuda-graph} \
    --out "$TABLE" || true
done_classes=""
for class in 0 1 2 3 4 5 6 7 8 9; do finished "$class" && done_classes="$done_classes $class"; done
echo "table: classes finished:${done_classes:- none}; this call ran $(( $(date +%s) - start )) s"
mkdir -p "$TABLE"
records | tar -cf "$OUT/table.tar" -C "$TABLE" -T -
date -u
