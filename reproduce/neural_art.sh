#!/usr/bin/env bash
# Neural art (the paper's Section 3.4, Figure 8): an LSTM optimizer meta-trained on style transfer at 64x64
# with one style, evaluated on held-out content at 64x64, at 128x128, and with a second style at 128x128.
# Usage: reproduce/neural_art.sh DATA_DIR [OUT]
#   DATA_DIR holds art/ (photos + starry_night.jpg + the_scream.jpg), cifar10.npz, vgg19_conv_block1-3.npz.
# Content splits never share a source image (README, "Neural art"); baselines are tuned per setting on
# validation content over 1e-3..1e2 (2 per decade; SGD needs ~10 on this loss).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?give the folder holding art/, cifar10.npz and vgg19_conv_block1-3.npz}
OUT=${2:-runs/neural_art}
PY=${PYTHON:-python}
# Output x0.01: tuned Adam moves pixels by ~0.01 per step here; the paper's x0.1 starts by wrecking the image.
$PY bin/l2l_train.py --recipe=paper --problem=neural_art --data_dir="$DATA" --image_size=64 --num_epochs=1000 --num_steps=100 \
    --unroll_length=20 --output_scale=0.01 --evaluation_period=50 --evaluation_epochs=5 --checkpoint_every=50 \
    --save_path="$OUT/train"
# The three evaluations: 64/, 128/ and second_style_128/ (the_scream.jpg) under eval/, plus eval/loss_curves.png.
$PY bin/l2l_neural_art.py --mode=evaluate --path="$OUT/train" --data_dir="$DATA" --num_steps=100 \
    --num_problems=50 --num_tuning_problems=5 --output_dir="$OUT/eval"
# One photo styled at 128x128 with the learned optimizer and tuned Adam.
$PY bin/l2l_neural_art.py --mode=stylize --path="$OUT/train" --data_dir="$DATA" \
    --content_image="$DATA/art/tubingen.jpg" --style_image="$DATA/art/starry_night.jpg" --image_size=128 \
    --num_steps=100 --output_dir="$OUT/stylize_tubingen"
