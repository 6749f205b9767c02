#!/usr/bin/env bash
# The ablation of the horizon-free MNIST recipe, the default until the cosine-NAG correction
# replaced it (RESULTS.md, "Ablation: each technique alone").
# Usage: reproduce/mnist_recipe.sh DATA_DIR [OUT]   (DATA_DIR holds mnist.npz; OUT=runs/abl)
#
# Trains the paper's recipe, and the paper's recipe plus each technique of that recipe alone,
# all with its budget (600 epochs) and selection (20 validation problems every 25 epochs). The
# combined row is that recipe itself: the bundled `mnist` (3,868 s); TRAIN_DEFAULT=1 retrains it
# (the flags of HORIZON_FREE below) into OUT/default instead. Then, per setting, the baselines are tuned once (10 validation problems,
# 17 rates 1e-3..10) and run on 100 fresh test problems (seed 11), and every learned optimizer is
# run on the same problems and compared with them pair by pair (--baselines_from).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?give the folder holding mnist.npz}
OUT=${2:-runs/abl}
PY=${PYTHON:-python}
SELECT=(--problem=mnist --data_dir="$DATA" --evaluation_period=25 --evaluation_epochs=20 --checkpoint_every=25)
PAPER=(--recipe=paper --num_epochs=600)
FEATURES=(--preprocess=adam --momentum_betas=0.5,0.9,0.99 --rms_beta=0.95 --magnitude_feature --input_layer=20
          --output=tanh --output_scale=0.1 --zero_update_at_zero_gradient)

train() { local name=$1; shift; $PY bin/l2l_train.py "${SELECT[@]}" "$@" --save_path="$OUT/$name"; }
train paper "${PAPER[@]}"
train features "${PAPER[@]}" "${FEATURES[@]}"
train curriculum "${PAPER[@]}" --curriculum=100,200 --curriculum_patience=3
train imitation "${PAPER[@]}" --imitation_teachers=nag --imitation_ratio=0.7
train scaling "${PAPER[@]}" --param_scale_range=1 --convex_term=20
train log_ratio "${PAPER[@]}" --meta_loss=log_ratio
train whole_unrolls "${PAPER[@]}" --unroll_length=100 --problems_per_epoch=2 --learning_rate=5e-4
DEFAULT=mnist
if [[ "${TRAIN_DEFAULT:-0}" == 1 ]]; then
  HORIZON_FREE=("${FEATURES[@]}" --curriculum=100,200 --curriculum_patience=3 --imitation_teachers=nag
                --imitation_ratio=0.7,0.3 --meta_loss=log_ratio --learning_rate=5e-4 --problems_per_epoch=2
                --unroll_length=100 --num_epochs=600 --base_learning_rate=0 --base_schedule=constant
                --noprogress_feature --loss_weights=)
  $PY bin/l2l_train.py "${SELECT[@]}" "${HORIZON_FREE[@]}" --save_path="$OUT/default"
  DEFAULT=$OUT/default
fi

EVAL=(--problem=mnist --data_dir="$DATA" --num_problems=100 --num_tuning_problems=10 --lr_grid_min=1e-3
      --lr_grid_max=10 --seed=11)
COMPARE="paper=$OUT/paper,features=$OUT/features,curriculum=$OUT/curriculum,imitation=$OUT/imitation"
COMPARE="$COMPARE,scaling=$OUT/scaling,log_ratio=$OUT/log_ratio,whole_unrolls=$OUT/whole_unrolls"
SETTINGS=("--num_steps=100 100_steps" "--num_steps=200 200_steps" "--hidden_sizes=40 40_units"
          "--hidden_sizes=20,20 2_layers" "--activation=relu relu")
for s in "${SETTINGS[@]}"; do
  set -- $s
  $PY bin/l2l_evaluate.py "${EVAL[@]}" "$1" --optimizer=all --output_dir="$OUT/base_$2"
  $PY bin/l2l_evaluate.py "${EVAL[@]}" "$1" --optimizer=L2L --path="$DEFAULT" --compare="$COMPARE" \
      --baselines_from="$OUT/base_$2/results.json" --output_dir="$OUT/eval_$2"
done
$PY reproduce/ablation_table.py "$OUT"
