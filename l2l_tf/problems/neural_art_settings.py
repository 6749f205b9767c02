"""The flags of `--problem=neural_art` and how they become the family's settings.

With `--data_dir=DIR`: content photos from DIR/art/ (minus the paintings named by
--content_exclude), CIFAR-10 content from DIR/cifar10.npz, the style DIR/art/starry_night.jpg
and VGG-19 weights from DIR/vgg19_conv_block1-3.npz; each flag given explicitly wins. The
functions take the flag values as a mapping (name -> value), so l2l_train, l2l_evaluate and
l2l_neural_art build the same family from the same words.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from l2l_tf.errors import UserError
from l2l_tf.problems.registry import FlagSpec


def _vgg_layers(names) -> str | None:
    from l2l_tf.problems.vgg_layers import CONV_LAYERS

    if names and all(n in CONV_LAYERS for n in names):
        return None
    return "must list VGG-19 conv layers (block1_conv1, block1_conv2, block2_conv1, ... block5_conv4)"


NEURAL_ART_FLAGS = [
    FlagSpec("content_dir", "string", None, "neural_art: folder of content photos (default: DATA_DIR/art)."),
    FlagSpec("content_exclude", "list", ["starry_night.jpg", "the_scream.jpg", "wave.jpg"],
             "neural_art: file names in --content_dir that are not content photos (default: the paintings of the "
             "shared art/ folder)."),
    FlagSpec("content_cifar", "string", None, "neural_art: CIFAR-10 npz whose images (upsampled) are content too "
             "(default: DATA_DIR/cifar10.npz if present; 'none': photos only)."),
    FlagSpec("style_image", "string", None, "neural_art: the style image, any size (default: "
             "DATA_DIR/art/starry_night.jpg)."),
    FlagSpec("vgg_weights", "string", None, "neural_art: VGG-19 weights npz, keys LAYER/kernel (HWIO) and LAYER/bias "
             "(default: DATA_DIR/vgg19_conv_block1-3.npz if present, else keras.applications' download)."),
    FlagSpec("image_size", "integer", 64, "neural_art: the optimized image is SIZE x SIZE x 3.", lower_bound=8),
    FlagSpec("content_weight", "float", 1.0, "neural_art: weight of the content term.", lower_bound=0.0),
    FlagSpec("style_weight", "float", 1.0, "neural_art: weight of the style term.", lower_bound=0.0),
    FlagSpec("content_layers", "list", ["block3_conv2"], "neural_art: VGG-19 layers of the content term.",
             check=_vgg_layers),
    FlagSpec("style_layers", "list", ["block1_conv1", "block2_conv1", "block3_conv1"],
             "neural_art: VGG-19 layers of the style term.", check=_vgg_layers),
    FlagSpec("art_init", "enum", "content", "neural_art: start from the content image or from uniform noise.",
             choices=("content", "noise")),
]


def in_data_dir(data_dir: str | None, *parts: str) -> str | None:
    """DATA_DIR/parts when `data_dir` is a folder holding it, else None."""
    if not data_dir or not os.path.isdir(data_dir):
        return None
    path = os.path.join(data_dir, *parts)
    return path if os.path.exists(path) else None


def neural_art_paths(values: Mapping[str, Any]) -> dict:
    """The content pool's settings and the VGG weights from the flag values and --data_dir's defaults."""
    data_dir = values.get("data_dir")
    if data_dir and not os.path.isdir(data_dir):
        raise UserError(f"--data_dir={data_dir} must be a folder for --problem=neural_art")
    cifar = values["content_cifar"] or in_data_dir(data_dir, "cifar10.npz")
    settings = {"content_dir": values["content_dir"] or in_data_dir(data_dir, "art"),
                "content_exclude": values["content_exclude"], "content_cifar": None if cifar == "none" else cifar,
                "vgg_weights": values["vgg_weights"] or in_data_dir(data_dir, "vgg19_conv_block1-3.npz")}
    for flag in ("content_dir", "content_cifar", "vgg_weights"):
        if values[flag] and values[flag] != "none" and not os.path.exists(values[flag]):
            raise UserError(f"--{flag}={values[flag]} does not exist")
    return settings


def default_style_image(values: Mapping[str, Any]) -> str:
    """--style_image, or DATA_DIR/art/starry_night.jpg."""
    style = values["style_image"] or in_data_dir(values.get("data_dir"), "art", "starry_night.jpg")
    if not style:
        raise UserError("--problem=neural_art needs --style_image (or --data_dir holding art/starry_night.jpg)")
    return style


def family_settings(values: Mapping[str, Any]) -> dict:
    """The keyword arguments of `make_family("neural_art", ...)`."""
    if not (values["content_weight"] > 0 or values["style_weight"] > 0):
        raise UserError("--content_weight and --style_weight cannot both be 0")
    settings = neural_art_paths(values)
    if not (settings["content_dir"] or settings["content_cifar"]):
        raise UserError("--problem=neural_art needs content images: --content_dir, --content_cifar or --data_dir")
    return {**settings, "style_image": default_style_image(values), "image_size": values["image_size"],
            "content_weight": values["content_weight"], "style_weight": values["style_weight"],
            "content_layers": values["content_layers"], "style_layers": values["style_layers"],
            "init": values["art_init"]}
