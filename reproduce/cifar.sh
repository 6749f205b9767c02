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
TRAIN=(--data_dir="$DATA" --num_epochs=500 --evaluation_period=50 --evaluation_epochs=5
       --param_groups='conv=^conv;fc=.*' --preprocess_p=5 --output_scale=0.01 --seed=0)
$PY bin/l2l_train.py --problem=cifar10 "${TRAIN[@]}" --save_path="$OUT/lstm"
$PY bin/l2l_train.py --problem=cifar10 --labels=heldout "${TRAIN[@]}" --save_path="$OUT/lstm_sub"
# 10 fresh test problems per dataset; baselines tuned on 3 validation problems over 1e-3..1.
EVAL=(--data_dir="$DATA" --optimizer=all --num_problems=10 --num_tuning_problems=3 --lr_grid_min=1e-3
      --lr_grid_max=1 --lr_grid_per_decade=3 --path="$OUT/lstm" --compare="sub=$OUT/lstm_sub")
for problem in cifar10 cifar5 cifar2; do
  for steps in 100 200; do
    $PY bin/l2l_evaluate.py --problem=$problem --num_steps=$steps "${EVAL[@]}" --output_dir="$OUT/eval_${problem}_$steps"
  done
done
