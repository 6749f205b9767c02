#!/usr/bin/env bash
# The MNIST default recipe and its ablation (RESULTS.md, "Learned optimizers that win").
# Usage: reproduce/mnist_recipe.sh DATA_DIR [OUT]   (DATA_DIR holds mnist.npz; OUT=runs/recipe)
#
# Trains: the default recipe (l2l_train --problem=mnist with no recipe flags), the paper's recipe,
# and the paper's recipe plus each technique alone; all capped at 1,000 epochs and selected on
# the same 40 validation problems. Evaluates every one of them with the tuned baselines on the
# same 100 fresh test problems (seed 11) in five settings, baselines tuned per setting on 20
# validation problems over 1e-3..10 (17 rates), and the default recipe at 1,000 steps.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?give the folder holding mnist.npz}
OUT=${2:-runs/recipe}
PY=${PYTHON:-python}
SELECT=(--problem=mnist --data_dir="$DATA" --evaluation_period=50 --evaluation_epochs=40 --checkpoint_every=50)
PAPER=(--recipe=paper --num_epochs=1000)
FEATURES=(--preprocess=adam --momentum_betas=0.5,0.9,0.99 --rms_beta=0.95 --magnitude_feature --input_layer=20
          --output=tanh --output_scale=0.1 --zero_update_at_zero_gradient)

$PY bin/l2l_train.py "${SELECT[@]}" --save_path="$OUT/default"                       # the default recipe
$PY bin/l2l_train.py "${SELECT[@]}" "${PAPER[@]}" --save_path="$OUT/paper"
$PY bin/l2l_train.py "${SELECT[@]}" "${PAPER[@]}" "${FEATURES[@]}" --save_path="$OUT/features"
$PY bin/l2l_train.py "${SELECT[@]}" "${PAPER[@]}" --curriculum=100,200 --curriculum_patience=3 --save_path="$OUT/curriculum"
$PY bin/l2l_train.py "${SELECT[@]}" "${PAPER[@]}" --imitation_teachers=nag_cosine --imitation_ratio=0.5 \
    --save_path="$OUT/imitation"
$PY bin/l2l_train.py "${SELECT[@]}" "${PAPER[@]}" --param_scale_range=1 --convex_term=20 --save_path="$OUT/scaling"
$PY bin/l2l_train.py "${SELECT[@]}" "${PAPER[@]}" --meta_loss=log_ratio --save_path="$OUT/log_ratio"

EVAL=(--problem=mnist --data_dir="$DATA" --num_problems=100 --num_tuning_problems=20 --lr_grid_min=1e-3
      --lr_grid_max=10 --seed=11 --path="$OUT/default")
COMPARE="paper=$OUT/paper,features=$OUT/features,curriculum=$OUT/curriculum,imitation=$OUT/imitation"
COMPARE="$COMPARE,scaling=$OUT/scaling,log_ratio=$OUT/log_ratio"
SETTINGS=("--num_steps=100 100_steps" "--num_steps=200 200_steps" "--hidden_sizes=40 40_units"
          "--hidden_sizes=20,20 2_layers" "--activation=relu relu")
for s in "${SETTINGS[@]}"; do
  set -- $s
  $PY bin/l2l_evaluate.py "${EVAL[@]}" "$1" --optimizer=all --compare="$COMPARE" --output_dir="$OUT/eval_$2"
done
# 1,000 steps (10x the first stage's horizon): 20 test problems, baselines tuned on 5 over 2 rates per decade.
$PY bin/l2l_evaluate.py "${EVAL[@]}" --num_steps=1000 --num_problems=20 --num_tuning_problems=5 \
    --lr_grid_per_decade=2 --optimizer=all --output_dir="$OUT/eval_1000_steps"
