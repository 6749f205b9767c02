#!/usr/bin/env bash
# The paper's Appendix D on quadratics: LSTM vs LSTM+GAC vs NTM-BFGS (vs tuned baselines), same test problems.
# Usage: reproduce/appendix.sh [OUT]   (default OUT=runs/appendix)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/appendix}
PY=${PYTHON:-python}
for arch in lstm lstm_gac ntm_bfgs; do
  $PY bin/l2l_train.py --recipe=paper --save_path="$OUT/$arch" --optimizer_architecture=$arch
  $PY bin/l2l_evaluate.py --path="$OUT/$arch" --optimizer=all --num_steps=100 --num_problems=100 \
      --output_dir="$OUT/$arch/eval"
done
