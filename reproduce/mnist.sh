#!/usr/bin/env bash
# The paper's MNIST experiments (Figures 5 and 6) and the mixture recipe; writes reports under OUT.
# Usage: reproduce/mnist.sh DATA_DIR [OUT] [EPOCHS]   (DATA_DIR holds mnist.npz; OUT=runs/mnist, EPOCHS=1000)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?give the folder holding mnist.npz}
OUT=${2:-runs/mnist}
EPOCHS=${3:-1000}
PY=${PYTHON:-python}
TRAIN=(--problem=mnist --data_dir="$DATA" --num_epochs="$EPOCHS" --evaluation_period=50 --evaluation_epochs=10
       --checkpoint_every=50)
EVAL=(--problem=mnist --data_dir="$DATA" --optimizer=all --num_problems=20)
# The paper's settings (p = 10, output x0.1) and DeepMind's released code's (k = 5, output x0.01).
$PY bin/l2l_train.py "${TRAIN[@]}" --save_path="$OUT/paper"
$PY bin/l2l_train.py "${TRAIN[@]}" --save_path="$OUT/code" --preprocess_p=5 --output_scale=0.01
# Beyond the paper: one optimizer trained on a mixture of widths, depths, activations and loss scales.
$PY bin/l2l_train.py "${TRAIN[@]/--problem=mnist/--problem=mnist_mix}" --evaluation_epochs=12 --save_path="$OUT/mix"
for run in paper code mix; do
  $PY bin/l2l_evaluate.py "${EVAL[@]}" --path="$OUT/$run" --output_dir="$OUT/$run/eval_default"
done
for run in paper mix; do
  $PY bin/l2l_evaluate.py "${EVAL[@]}" --path="$OUT/$run" --num_steps=200 --output_dir="$OUT/$run/eval_200_steps"
  $PY bin/l2l_evaluate.py "${EVAL[@]}" --path="$OUT/$run" --hidden_sizes=40 --output_dir="$OUT/$run/eval_40_units"
  $PY bin/l2l_evaluate.py "${EVAL[@]}" --path="$OUT/$run" --hidden_sizes=20,20 --output_dir="$OUT/$run/eval_2_layers"
  $PY bin/l2l_evaluate.py "${EVAL[@]}" --path="$OUT/$run" --activation=relu --output_dir="$OUT/$run/eval_relu"
done
