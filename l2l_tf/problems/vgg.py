"""VGG-19's convolutional layers as a fixed feature extractor (for the neural-art losses).

Only the layers up to the deepest one asked for are built, as plain `tf.nn` convolutions
with constant weights: the features are a fixed function of the image, never trained, and
a 64x64 style-transfer step through blocks 1-3 costs a fraction of the full network.

Weights come from one of two places:
* a local `.npz` with Keras layer-name keys `LAYER/kernel` (HWIO) and `LAYER/bias`, the
  layout of `vgg19_conv_block1-3.npz` (which holds only blocks 1-3);
* `keras.applications.VGG19(include_top=False, weights="imagenet")`, which downloads the
  ImageNet weights when the network allows.
A missing file, or a file that lacks a layer the features need, is a `UserError` naming the
layer: silently random features would make every number downstream meaningless.

Images enter as RGB in [0, 1] ([B, H, W, 3]) and get Keras' "caffe" preprocessing (x 255,
RGB -> BGR, ImageNet channel means subtracted), which is what the weights were trained with.
"""
from __future__ import annotations

import functools
import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.problems.vgg_layers import CONV_LAYERS
#: Keras' "caffe" preprocessing: BGR channel means of ImageNet, in 0..255 pixel units.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
#: What `weights_source=None` means: ask keras.applications for the ImageNet weights.
IMAGENET = "keras.applications:imagenet"

Weights = Mapping[str, tuple[np.ndarray, np.ndarray]]


def check_layer_names(names: Sequence[str], flag: str) -> tuple[str, ...]:
    """The names, checked to be VGG-19 conv layers (the error names the flag and the choices)."""
    names = tuple(n.strip() for n in names if n.strip())
    if not names:
        raise UserError(f"--{flag} must name at least one VGG-19 conv layer, e.g. block1_conv1")
    for n in names:
        if n not in CONV_LAYERS:
            raise UserError(f"--{flag}: {n!r} is not a VGG-19 conv layer; expected names like "
                            f"block1_conv1 .. block5_conv4 ({', '.join(CONV_LAYERS)})")
    return names


def layers_up_to(deepest: str) -> tuple[str, ...]:
    """The conv layers from block1_conv1 through `deepest`: what must be built to compute it."""
    return CONV_LAYERS[:CONV_LAYERS.index(deepest) + 1]


def deepest_layer(names: Sequence[str]) -> str:
    return max(names, key=CONV_LAYERS.index)


def downsampling(layer: str) -> int:
    """How many times smaller than the input a layer's feature map is (2 per pool before it)."""
    return 2 ** (int(layer[len("block"):layer.index("_")]) - 1)


def load_npz_weights(path: str, needed: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer: (kernel HWIO, bias)} for the `needed` layers from a layer-name-keyed npz."""
    if not os.path.isfile(path):
        raise UserError(f"VGG-19 weights file {path} does not exist (needed for layers up to {needed[-1]})")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            out = {}
            for name in needed:
                missing = [k for k in (f"{name}/kernel", f"{name}/bias") if k not in keys]
                if missing:
                    held = sorted({k.split("/")[0] for k in keys})
                    raise UserError(f"VGG-19 weights file {path} lacks layer {name} (no {missing[0]}); the chosen "
                                    f"layers need {needed[0]} .. {needed[-1]}, the file holds {', '.join(held) or 'none'}")
                out[name] = (np.asarray(f[f"{name}/kernel"], np.float32), np.asarray(f[f"{name}/bias"], np.float32))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - an unreadable file is the user's to fix
        raise UserError(f"VGG-19 weights file {path} is not a readable .npz ({type(e).__name__}: {e})") from None
    return out


def load_keras_imagenet_weights(needed: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The `needed` layers' ImageNet weights from keras.applications (downloads when possible).

    Keras builds the whole network to load its weight file; only the needed layers' weights
    are kept, and `VGGFeatures` builds nothing deeper than them.
    """
    import keras

    try:
        model = keras.applications.VGG19(include_top=False, weights="imagenet")
    except Exception as e:  # noqa: BLE001 - no network and no cache: say what to pass instead
        raise UserError(f"cannot get the VGG-19 ImageNet weights from keras.applications ({type(e).__name__}); "
                        "pass --vgg_weights=FILE.npz (keys LAYER/kernel, LAYER/bias) or --data_dir holding "
                        "vgg19_conv_block1-3.npz") from None
    return {name: tuple(np.asarray(w, np.float32) for w in model.get_layer(name).get_weights()) for name in needed}


@functools.lru_cache(maxsize=8)
def _load_cached(source: str, needed: tuple[str, ...]):
    if source == IMAGENET:
        return load_keras_imagenet_weights(needed)
    return load_npz_weights(source, needed)


def _check_shapes(weights: Weights, needed: Sequence[str], source: str) -> None:
    channels = 3
    for name in needed:
        kernel, bias = weights[name]
        if kernel.ndim != 4 or kernel.shape[:2] != (3, 3) or kernel.shape[2] != channels:
            raise UserError(f"{source}: {name}/kernel has shape {kernel.shape}; expected (3, 3, {channels}, C) "
                            "(HWIO, following the previous layer)")
        if bias.shape != (kernel.shape[3],):
            raise UserError(f"{source}: {name}/bias has shape {bias.shape}; expected ({kernel.shape[3]},)")
        channels = kernel.shape[3]


class VGGFeatures:
    """Activations (after ReLU) of chosen VGG-19 conv layers for a batch of RGB images in [0, 1].

    Args:
      layers: the layer names whose outputs are wanted.
      weights_source: an npz path, or None for keras.applications' ImageNet weights.
    """

    def __init__(self, layers: Sequence[str], weights_source: str | None = None):
        self.layers = check_layer_names(layers, "layers")
        self.source = weights_source or IMAGENET
        self.built_layers = layers_up_to(deepest_layer(self.layers))
        weights = _load_cached(self.source, self.built_layers)
        _check_shapes(weights, self.built_layers, self.source)
        self._weights = [(tf.constant(weights[n][0]), tf.constant(weights[n][1])) for n in self.built_layers]
        self.channels = {n: int(weights[n][0].shape[3]) for n in self.built_layers}

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """{layer: [B, h, w, C] activations} for `images` [B, H, W, 3], RGB in [0, 1]."""
        x = tf.reverse(images * 255.0, axis=[-1]) - tf.constant(CAFFE_BGR_MEAN, tf.float32)
        out, block = {}, 1
        for name, (kernel, bias) in zip(self.built_layers, self._weights):
            b = int(name[len("block"):name.index("_")])
            if b != block:  # every block after the first starts with VGG's 2x2 max-pool
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
                block = b
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))
            if name in self.layers:
                out[name] = x
        return out


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """Per-image Gram matrices [B, C, C] of [B, h, w, C] features, divided by h*w.

    Dividing by the number of positions makes the Gram the average outer product of a
    position's feature vector, so it does not grow with the image: a style learned at 64x64
    is the same target at 128x128.
    """
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    return tf.linalg.matmul(flat, flat, transpose_a=True) / tf.cast(shape[1] * shape[2], features.dtype)
