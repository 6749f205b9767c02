#!/usr/bin/env bash
# The paper's quadratic experiment (Figure 4) with the default flags; writes OUT/eval/report.md.
# Usage: reproduce/quadratic.sh [OUT]      (default OUT=runs/quadratic)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/quadratic}
PY=${PYTHON:-python}
$PY bin/l2l_train.py --recipe=paper --save_path="$OUT"
for seed in 0 1 7; do
  $PY bin/l2l_evaluate.py --path="$OUT" --optimizer=all --num_steps=100 --num_problems=100 --seed=$seed \
      --output_dir="$OUT/eval_seed$seed"
done
$PY bin/l2l_visualize.py --path="$OUT" --results="$OUT/eval_seed0/results.json" --output_dir="$OUT/viz"
