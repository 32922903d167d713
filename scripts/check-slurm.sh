#!/usr/bin/env bash
# Runs deploy/slurm-score.sh for real on a single-node Slurm cluster set up on this machine
# (Debian's slurm-wlm and munge, installed when missing; root needed): a job array of 3 over a
# folder of images, `adgan merge` of its parts, and the merged table compared byte for byte
# with one `adgan score` over the whole folder. One array task is then cancelled mid-run and
# resubmitted alone: it must resume from its journal, and the merge must come out the same.
# Says that it skipped where it cannot install or start Slurm.
#   scripts/check-slurm.sh [WORK_DIR]     (default: a temporary folder)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
skip() { echo "check-slurm: skipped ($1)"; exit 0; }

if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
  [ "$(id -u)" = 0 ] || skip "slurm-wlm is not installed and installing it needs root"
  command -v apt-get > /dev/null || skip "no apt-get to install slurm-wlm with"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge > /dev/null 2>&1 \
    || skip "apt-get could not install slurm-wlm and munge"
fi
work=${1:-$(mktemp -d)}
mkdir -p "$work"
work="$(cd "$work" && pwd)"
adgan="$root/target/release/adgan"
[ -x "$adgan" ] || (cd "$root" && source scripts/env.sh && cargo build --release --quiet)

# munge authenticates Slurm's daemons to each other: a key, and its daemon.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2> /dev/null
fi
chown -R munge: /etc/munge /var/lib/munge /var/log/munge 2> /dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge: /run/munge
socket=/run/munge/munge.socket.2
started_munge=
if [ ! -S "$socket" ]; then
  runuser -u munge -- munged --force || skip "munged did not start"
  started_munge=1
  for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
  [ -S "$socket" ] || skip "munged started but opened no socket"
fi

# One node, this machine, with its cores; everything Slurm keeps goes under $work.
host=$(hostname -s)
mkdir -p "$work/etc" "$work/state" "$work/spool" "$work/log"
cat > "$work/etc/slurm.conf" <<EOF
ClusterName=adgancheck
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$work/etc/slurm.conf"
# Its own cluster: none may run already (the daemons would share ports), so that the ones it
# starts can be stopped by name at the end, however they forked.
pgrep -x slurmctld > /dev/null || pgrep -x slurmd > /dev/null \
  && skip "Slurm daemons already run on this machine"
cleanup() {
  scancel --quiet --user="$(id -un)" 2> /dev/null || true
  pkill -x slurmd 2> /dev/null || true
  pkill -x slurmctld 2> /dev/null || true
  pkill -f slurmscriptd 2> /dev/null || true
  [ -n "$started_munge" ] && pkill -x munged 2> /dev/null || true
}
trap cleanup EXIT
slurmctld -i || skip "slurmctld did not start (log: $work/log/slurmctld.log)"
slurmd || skip "slurmd did not start (log: $work/log/slurmd.log)"
for _ in $(seq 60); do
  sinfo -h -o %t 2> /dev/null | grep -qE '^(idle|mix|alloc)' && break
  sleep 1
done
sinfo -h -o %t | grep -qE '^(idle|mix|alloc)' || skip "the node did not come up (sinfo: $(sinfo -h 2>&1))"

# A tiny calibrated run and 90 images to score (grey gradients, as PNG files).
"$adgan" train --dataset demo --normal-class disc --width 8 --latent-dim 16 --iterations 20 \
  --batch-size 16 --device cpu --out "$work/run" > "$work/log/train.log" 2>&1
python3 "$root/scripts/test_pngs.py" "$work/images" 90
export PATH="$root/target/release:$PATH"
quiet() {  # runs a command, showing its output only when it fails
  "$@" > "$work/log/last.log" 2>&1 || { cat "$work/log/last.log"; echo "check-slurm: FAILED: $*"; exit 1; }
}
submit() {  # sbatch's flags... -- the job's arguments
  sbatch --parsable --chdir="$work" --output="$work/log/task-%A_%a.out" --cpus-per-task=1 "$@"
}
parts() { echo "$1/part-0.csv,$1/part-1.csv,$1/part-2.csv"; }

# The array of 3, merged, against one run over the whole folder.
submit --array=0-2 --wait "$root/deploy/slurm-score.sh" "$work/run" "$work/images" \
  "$work/parts" > /dev/null
quiet adgan merge --parts "$(parts "$work/parts")" --out "$work/merged.csv"
quiet adgan score --model "$work/run" --images "$work/images" --device cpu --out "$work/whole.csv"
cmp "$work/merged.csv" "$work/whole.csv" \
  || { echo "check-slurm: FAILED: the merged parts differ from one run"; exit 1; }

# Task 1 cancelled once its journal holds a few scores, then resubmitted alone.
job=$(submit --array=0-2 "$root/deploy/slurm-score.sh" "$work/run" "$work/images" "$work/again")
journal="$work/again/part-1.csv.partial"
for _ in $(seq 600); do
  [ -f "$journal" ] && [ "$(wc -l < "$journal")" -ge 4 ] && break
  sleep 0.1
done
scancel "${job}_1"
sleep 2
[ -f "$journal" ] || { echo "check-slurm: FAILED: task 1 left no journal to resume"; exit 1; }
held=$(($(wc -l < "$journal") - 1))
while squeue -h -j "$job" 2> /dev/null | grep -q .; do sleep 1; done
resumed=$(submit --array=1 --wait "$root/deploy/slurm-score.sh" "$work/run" "$work/images" \
  "$work/again" 3)
grep -q "continuing:" "$work/log/task-${resumed}_1.out" \
  || { echo "check-slurm: FAILED: the resubmitted task did not resume"; exit 1; }
quiet adgan merge --parts "$(parts "$work/again")" --out "$work/merged-again.csv"
cmp "$work/merged-again.csv" "$work/whole.csv" \
  || { echo "check-slurm: FAILED: the resumed merge differs from one run"; exit 1; }
echo "check-slurm: ok ($(sinfo --version): an array of 3 merged equals one run byte for byte;" \
  "task 1 cancelled with $held of its scores in its journal resumed from them, and the merge" \
  "came out the same); work in $work"
