#!/usr/bin/env bash
# Scores a large folder on a Slurm cluster: one array task per shard, then one merge.
#   sbatch --array=0-15 deploy/slurm-score.sh RUN IMAGES OUT_DIR
#   adgan merge --parts OUT_DIR/part-0.csv,...,OUT_DIR/part-15.csv --out scores.csv
# Every task writes OUT_DIR/part-$SLURM_ARRAY_TASK_ID.csv (and its .shard.json); a task that
# was stopped resumes where it was when it runs again (its journal is beside the part).
# Resubmitting some tasks alone, give the number of parts of the whole array as a fourth
# argument (a smaller array would count fewer):
#   sbatch --array=7 deploy/slurm-score.sh RUN IMAGES OUT_DIR 16
#SBATCH --job-name=adgan-score
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
set -euo pipefail
run=$1 images=$2 out=$3
count=${4:-${SLURM_ARRAY_TASK_COUNT:?run as a job array: sbatch --array=0-N}}
mkdir -p "$out"
exec adgan score --model "$run" --images "$images" \
  --shard "$SLURM_ARRAY_TASK_ID/$count" --out "$out/part-$SLURM_ARRAY_TASK_ID.csv"
