#!/bin/bash
# Multi-node training on SLURM: one task per node, each runs `accelerate launch`,
# which starts one training process per GPU of its node.
#
# Submit from the repository root, with the Python environment active (sbatch
# passes your environment on to the job):
#
#   sbatch train/slurm.sh                                  # 2 nodes x 8 GPUs, configs/gpu/latent_8gpu.yaml -> runs/base
#   sbatch --nodes=4 train/slurm.sh                        # 4 nodes x 8 GPUs
#   sbatch --nodes=4 --gpus-per-node=4 train/slurm.sh      # 4 GPUs per node
#   CONFIG=configs/gpu/pixel_8gpu.yaml OUT=runs/exp1 sbatch train/slurm.sh
#   sbatch train/slurm.sh --stages codec                   # extra arguments go to train/train.py
#
# Requeueing: the job always runs train.py with `--resume latest`, so a job
# that starts again continues where the last one stopped: finished stages are
# skipped and an unfinished stage goes on from its newest complete checkpoint
# (steps since that checkpoint are lost; see checkpoint_every in the config).
# With --requeue, SLURM restarts the job after a preemption or a node failure;
# at the time limit the trap below requeues it (SLURM signals it 5 minutes
# before). To continue a run by hand, submit again with the same OUT.
#
#SBATCH --job-name=gencodec
#SBATCH --nodes=2                 # number of machines; override with sbatch --nodes=N
#SBATCH --ntasks-per-node=1       # one `accelerate launch` per node; it starts the per-GPU processes
#SBATCH --gpus-per-node=8         # GPUs per node; one training process each
#SBATCH --cpus-per-task=64        # CPU cores per node, for the DataLoader workers (data.num_workers per GPU)
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out        # log in the submit folder: <job-name>-<job-id>.out
#SBATCH --open-mode=append        # a requeued job appends to the same log
#SBATCH --requeue
#SBATCH --signal=B:USR1@300       # USR1 to this script 5 minutes before the time limit

set -eu
cd "${SLURM_SUBMIT_DIR:-.}"

CONFIG=${CONFIG:-configs/gpu/latent_8gpu.yaml}  # the shipped default's family
OUT=${OUT:-runs/base}
# GPUs on each node: what SLURM allocated (--gpus-per-node), unless GPUS_PER_NODE is set.
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
NUM_PROCESSES=$((SLURM_NNODES * GPUS_PER_NODE))
# The first node of the allocation hosts the rendezvous (machine_rank 0).
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
# A port derived from the job id, so two jobs sharing a node don't collide.
MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
export CONFIG OUT NUM_PROCESSES MASTER_ADDR MASTER_PORT

echo "job $SLURM_JOB_ID: $SLURM_NNODES nodes x $GPUS_PER_NODE GPUs = $NUM_PROCESSES processes;" \
     "rendezvous $MASTER_ADDR:$MASTER_PORT; $CONFIG -> $OUT (restart ${SLURM_RESTART_COUNT:-0})"

trap 'echo "time limit near: requeueing job $SLURM_JOB_ID"; scontrol requeue "$SLURM_JOB_ID"' USR1

# Single quotes: $SLURM_PROCID must be expanded by each task (0 .. nodes-1), not here,
# where it is 0. The flags override configs/accelerate/multinode.yaml. --cpus-per-task is
# repeated because newer srun versions don't take it over from sbatch.
srun --kill-on-bad-exit=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" bash -c '
  exec accelerate launch --config_file configs/accelerate/multinode.yaml \
    --num_machines "$SLURM_NNODES" --num_processes "$NUM_PROCESSES" \
    --machine_rank "$SLURM_PROCID" \
    --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" \
    train/train.py --config "$CONFIG" --out "$OUT" --resume latest "$@"
' bash "$@" &
# Wait in the background so that the USR1 trap runs while training does.
wait $!
