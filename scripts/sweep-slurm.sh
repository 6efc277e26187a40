#!/usr/bin/env bash
# A design-space sweep as a Slurm job array: task I of N runs shard I/N of the space, and a
# merge job joins the shards into one sweep.csv and pareto.svg once every task succeeded.
#
#   jid=$(sbatch --parsable --array=0-7 scripts/sweep-slurm.sh sweeps/small.toml out/sweep)
#   sbatch --dependency=afterok:$jid --wrap \
#       "coforge sweep merge out/sweep/shard-*-of-8 --out out/sweep/merged"
#
# The array must be 0..N-1 with step 1 (`--array=0-7`, optionally with a `%K` throttle): the
# task id is the shard index and the array's task count is N. Each task writes
# OUT/shard-I-of-N/ (sweep.json, sweep.csv, pareto.svg) and evaluates its points on
# SLURM_CPUS_PER_TASK threads. Yosys estimates are cached by content hash under
# $COFORGE_CACHE_DIR/yosys/; point COFORGE_CACHE_DIR at a shared file system so that a re-run
# of the array, or a larger space that contains this one, takes them from the cache (entries are
# written atomically, so tasks share it safely).
#
# Environment: COFORGE (the coforge binary; default `coforge` on PATH), COFORGE_SWEEP_ARGS
# (extra arguments such as `--verify` or `--no-yosys`). Outside Slurm, set SLURM_ARRAY_TASK_ID
# and SLURM_ARRAY_TASK_COUNT by hand to run one shard.
#SBATCH --job-name=coforge-sweep
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=coforge-sweep-%A_%a.log
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: sbatch --array=0-(N-1) $0 SPACE.toml OUT" >&2
    exit 2
fi
space=$1
out=$2
task=${SLURM_ARRAY_TASK_ID:?run this as a job array (sbatch --array=0-7), or set SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT}
count=${SLURM_ARRAY_TASK_COUNT:?SLURM_ARRAY_TASK_COUNT is not set; this Slurm is too old for job-array counts, set it by hand}
if [[ ${SLURM_ARRAY_TASK_MIN:-0} -ne 0 || ${SLURM_ARRAY_TASK_STEP:-1} -ne 1 ]]; then
    echo "error: the array must run 0..N-1 with step 1 (--array=0-$((count - 1))): task ids are shard indices" >&2
    exit 2
fi
coforge=${COFORGE:-coforge}
mkdir -p "$out"
# shellcheck disable=SC2086 # COFORGE_SWEEP_ARGS is a list of arguments
exec "$coforge" sweep --space "$space" --out "$out/shard-$task-of-$count" \
    --shard "$task/$count" --jobs "${SLURM_CPUS_PER_TASK:-1}" ${COFORGE_SWEEP_ARGS:-}
