#!/usr/bin/env bash
# The bundled `cifar10_tanh` optimizer (bundled as `cifar10` until the scheduled-NAG form; RESULTS.md,
# "CIFAR-10 with the later literature's techniques"): the paper's two LSTMs (conv / fully connected)
# with the default recipes' features and training techniques, then its evaluation against tuned
# baselines on fresh test problems (seed 11).
# Usage: reproduce/cifar_recipe.sh DATA_DIR [OUT]   (DATA_DIR holds cifar10.npz; OUT=runs/cifar_recipe)
# One core for the training (about 65 minutes here, peak 12 GB: whole 100-step unrolls of the conv
# net), the baselines on the other (about 15 minutes per 100-step setting, 27 per 200-step one).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?give the folder holding cifar10.npz}
OUT=${2:-runs/cifar_recipe}
PY=${PYTHON:-python}
FEATURES=(--preprocess=adam --momentum_betas=0.5,0.9,0.99 --magnitude_feature --input_layer=20 --output=tanh
          --zero_update_at_zero_gradient)
$PY bin/l2l_train.py --problem=cifar10 --data_dir="$DATA" --param_groups='conv=^conv;fc=.*' "${FEATURES[@]}" \
    --curriculum=100,200 --curriculum_patience=3 --imitation_teachers=adam:0.005 --imitation_ratio=0.5,0.2 \
    --meta_loss=log_ratio --learning_rate=5e-4 --unroll_length=100 --num_epochs=400 --evaluation_period=20 \
    --evaluation_epochs=3 --checkpoint_every=20 --log_period=10 --save_path="$OUT/lstm"
# Baselines once per setting (10 fresh test problems, tuned on 2 validation problems over 1e-4..1, 3 rates
# per decade), then the learned optimizer on the same problems, compared problem by problem.
for case in "cifar10 100" "cifar10 200" "cifar5 100" "cifar2 100"; do
  set -- $case
  $PY bin/l2l_evaluate.py --problem=$1 --num_steps=$2 --data_dir="$DATA" --num_problems=10 --num_tuning_problems=2 \
      --lr_grid_min=1e-4 --lr_grid_max=1 --lr_grid_per_decade=3 --seed=11 --optimizer=all --output_dir="$OUT/base_$1_$2"
  $PY bin/l2l_evaluate.py --problem=$1 --num_steps=$2 --data_dir="$DATA" --num_problems=10 --seed=11 --optimizer=L2L \
      --path="$OUT/lstm" --baselines_from="$OUT/base_$1_$2/results.json" --output_dir="$OUT/eval_$1_$2"
done
