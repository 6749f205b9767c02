#!/usr/bin/env bash
# The bundled `cifar10` optimizer (RESULTS.md, "Scheduled NAG as the base"): the paper's two LSTMs
# (conv / fully connected), each a learned per-coordinate correction of warmed-up, cosine-scheduled
# NAG (the MNIST default recipe's form), its untrained base, and both evaluated on the test problems
# of seed 11 against the tuned baselines stored in results/cifar_recipe/ (from reproduce/cifar_recipe.sh;
# reused problem by problem, not re-run; BASELINES points elsewhere, e.g. at your own re-run).
# Usage: reproduce/cifar_nag.sh DATA_DIR [OUT] [BASELINES]   (OUT=runs/cifar_nag; BASELINES=results/cifar_recipe)
# Training about 25 minutes on 2 cores (peak 10 GB), each evaluation 1-4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?give the folder holding cifar10.npz}
OUT=${2:-runs/cifar_nag}
BASELINES=${3:-results/cifar_recipe}
PY=${PYTHON:-python}
$PY bin/l2l_train.py --problem=cifar10 --data_dir="$DATA" --param_groups='conv=^conv;fc=.*' --preprocess=adam \
    --momentum_betas=0.5,0.8,0.99 --magnitude_feature --input_layer=20 --output=momentum --zero_update_at_zero_gradient \
    --base_learning_rate=0.316 --base_momentum=0.8 --base_schedule=cosine --base_warmup=0.05 --progress_feature \
    --curriculum=100,200 --curriculum_patience=12 --meta_loss=log_ratio --loss_weights=last:20 --learning_rate=5e-4 \
    --unroll_length=100 --num_epochs=150 --evaluation_period=25 --evaluation_epochs=3 --checkpoint_every=25 \
    --log_period=10 --save_path="$OUT/lstm"
# The untrained base: the same optimizer with its read-outs zeroed, exactly the scheduled NAG.
$PY -c "import sys; from l2l_tf import saving; saving.write_untrained_base(sys.argv[1], sys.argv[2])" "$OUT/lstm" "$OUT/base"
for setting in cifar10_100 cifar10_200 cifar5_100 cifar5_200 cifar2_100 cifar2_200; do
  problem=${setting%_*}; steps=${setting#*_}
  for which in lstm:eval base:base; do
    $PY bin/l2l_evaluate.py --problem=$problem --num_steps=$steps --data_dir="$DATA" --num_problems=10 --seed=11 \
        --optimizer=L2L --path="$OUT/${which%%:*}" --baselines_from="$BASELINES/eval_$setting/results.json" \
        --output_dir="$OUT/${which##*:}_$setting"
  done
done
