#!/bin/bash
# Compress (or decompress) a whole collection on SLURM: one task per node, each runs
# `accelerate launch -m gencodec`, which starts one process per GPU of its node; every
# process takes every N-th input, and the first merges the manifest at the end.
#
# Submit from the repository root, with the Python environment active:
#
#   IN=/data/photos OUT=/data/codes sbatch train/slurm_compress.sh --max-bytes 1500
#   COMMAND=decompress IN=/data/codes OUT=/data/decoded sbatch train/slurm_compress.sh --realism 1
#   sbatch --nodes=4 --gpus-per-node=4 train/slurm_compress.sh       # (IN and OUT as above)
#
# Extra arguments go to `gencodec compress` (or decompress). Requeueing is safe: a job that
# starts again runs the same command, which skips every input OUT/manifest.jsonl (and the
# parts the processes append as they go) records, and does the rest.
#
#SBATCH --job-name=gencodec-compress
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1       # one `accelerate launch` per node; it starts the per-GPU processes
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32        # CPU cores per node: image decoding and PNG writing
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@120

set -eu
cd "${SLURM_SUBMIT_DIR:-.}"

COMMAND=${COMMAND:-compress}
IN=${IN:?set IN, the input folder}
OUT=${OUT:?set OUT, the output folder}
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
NUM_PROCESSES=$((SLURM_NNODES * GPUS_PER_NODE))
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
export COMMAND IN OUT NUM_PROCESSES MASTER_ADDR MASTER_PORT

echo "job $SLURM_JOB_ID: $SLURM_NNODES nodes x $GPUS_PER_NODE GPUs = $NUM_PROCESSES processes;" \
     "gencodec $COMMAND $IN -> $OUT (restart ${SLURM_RESTART_COUNT:-0})"

trap 'echo "time limit near: requeueing job $SLURM_JOB_ID"; scontrol requeue "$SLURM_JOB_ID"' USR1

srun --kill-on-bad-exit=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" bash -c '
  exec accelerate launch --config_file configs/accelerate/multinode.yaml \
    --num_machines "$SLURM_NNODES" --num_processes "$NUM_PROCESSES" \
    --machine_rank "$SLURM_PROCID" \
    --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" \
    -m gencodec "$COMMAND" "$IN" --out-dir "$OUT" "$@"
' bash "$@" &
wait $!
