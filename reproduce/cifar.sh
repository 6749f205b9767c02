#!/usr/bin/env bash
# The paper's CIFAR experiments (Figure 7): LSTM trained on CIFAR-10, LSTM-sub trained on the
# held-out classes 5-9 only, both evaluated on CIFAR-10, CIFAR-5 and CIFAR-2 against tuned
# baselines, at the training trajectory length (100 steps) and at twice it.
# Usage: reproduce/cifar.sh DATA_DIR [OUT]   (DATA_DIR holds cifar10.npz or cifar-10-batches-py/; OUT=runs/cifar)
# Both optimizers have two LSTMs: one for the conv layers (conv_*: kernels, biases, their batch
# norms), one for the fully connected layers. The two trainings are independent: on a machine
# with two cores, run them side by side (e.g. with `taskset -c 0` and `taskset -c 1`).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?give the folder holding cifar10.npz}
OUT=${2:-runs/cifar}
PY=${PYTHON:-python}
TRAIN=(--data_dir="$DATA" --evaluation_period=50 --evaluation_epochs=5
       --param_groups='conv=^conv;fc=.*' --preprocess_p=5 --output_scale=0.01 --seed=0)
$PY bin/l2l_train.py --recipe=paper --problem=cifar10 "${TRAIN[@]}" --num_epochs=500 --save_path="$OUT/lstm"
# RESULTS.md's LSTM-sub run was stopped after epoch 200's validation (the session's time budget).
$PY bin/l2l_train.py --recipe=paper --problem=cifar10 --labels=heldout "${TRAIN[@]}" --num_epochs=200 --save_path="$OUT/lstm_sub"
# 10 fresh test problems per dataset (seed 0: the same ones in every run); baselines tuned on 2
# validation problems over 1e-3..1, three rates per decade, separately for 100 and 200 steps.
EVAL=(--data_dir="$DATA" --num_problems=10 --lr_grid_min=1e-3 --lr_grid_max=1 --lr_grid_per_decade=3)
for problem in cifar10 cifar5 cifar2; do
  for steps in 100 200; do
    $PY bin/l2l_evaluate.py --problem=$problem --num_steps=$steps "${EVAL[@]}" --optimizer=all --num_tuning_problems=2 \
        --path="$OUT/lstm" --output_dir="$OUT/eval_${problem}_$steps"
    $PY bin/l2l_evaluate.py --problem=$problem --num_steps=$steps "${EVAL[@]}" --optimizer=L2L \
        --path="$OUT/lstm_sub" --output_dir="$OUT/eval_sub_${problem}_$steps"
  done
done
# Baselines whose tuned rate fell on the grid's edge in RESULTS.md's runs, re-tuned over 1e-4..10:
for case in "cifar10 100 sgd" "cifar2 100 rmsprop" "cifar2 200 rmsprop"; do
  set -- $case
  $PY bin/l2l_evaluate.py --problem=$1 --num_steps=$2 --data_dir="$DATA" --num_problems=10 --num_tuning_problems=2 \
      --optimizer=$3 --lr_grid_min=1e-4 --lr_grid_max=10 --lr_grid_per_decade=3 --output_dir="$OUT/wide_$3_$1_$2"
done
