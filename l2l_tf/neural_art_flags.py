"""The flags of `--problem=neural_art`, with their defaults under --data_dir.

Defined here (and imported by problem_flags, so l2l_train, l2l_evaluate and l2l_neural_art
all know them) rather than inline, to keep each problem's flags in one place. With
`--data_dir=DIR`: content photos from DIR/art/ (minus the paintings named by
--content_exclude), CIFAR-10 content from DIR/cifar10.npz, the style DIR/art/starry_night.jpg
and VGG-19 weights from DIR/vgg19_conv_block1-3.npz; each flag given explicitly wins.
"""
from __future__ import annotations

import os

from absl import flags

from l2l_tf.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("content_dir", None, "neural_art: folder of content photos (default: DATA_DIR/art).")
flags.DEFINE_list("content_exclude", ["starry_night.jpg", "the_scream.jpg", "wave.jpg"],
                  "neural_art: file names in --content_dir that are not content photos (default: the paintings "
                  "of the shared art/ folder).")
flags.DEFINE_string("content_cifar", None, "neural_art: CIFAR-10 npz whose images (upsampled) are content too "
                    "(default: DATA_DIR/cifar10.npz if present; 'none': photos only).")
flags.DEFINE_string("style_image", None, "neural_art: the style image, any size "
                    "(default: DATA_DIR/art/starry_night.jpg).")
flags.DEFINE_string("vgg_weights", None, "neural_art: VGG-19 weights npz, keys LAYER/kernel (HWIO) and LAYER/bias "
                    "(default: DATA_DIR/vgg19_conv_block1-3.npz if present, else keras.applications' download).")
flags.DEFINE_integer("image_size", 64, "neural_art: the optimized image is SIZE x SIZE x 3.", lower_bound=8)
flags.DEFINE_float("content_weight", 1.0, "neural_art: weight of the content term.", lower_bound=0.0)
flags.DEFINE_float("style_weight", 1.0, "neural_art: weight of the style term.", lower_bound=0.0)
flags.DEFINE_list("content_layers", ["block3_conv2"], "neural_art: VGG-19 layers of the content term.")
flags.DEFINE_list("style_layers", ["block1_conv1", "block2_conv1", "block3_conv1"],
                  "neural_art: VGG-19 layers of the style term.")
flags.DEFINE_enum("art_init", "content", ["content", "noise"],
                  "neural_art: start from the content image or from uniform noise.")
NEURAL_ART_FLAGS = ("content_dir", "content_exclude", "content_cifar", "style_image", "vgg_weights", "image_size",
                    "content_weight", "style_weight", "content_layers", "style_layers", "art_init")


def _vgg_layers_ok(names) -> bool:
    from l2l_tf.problems.vgg import CONV_LAYERS
    return bool(names) and all(n in CONV_LAYERS for n in names)


for _name in ("content_layers", "style_layers"):
    flags.register_validator(_name, _vgg_layers_ok, message=f"--{_name} must list VGG-19 conv layers "
                             "(block1_conv1, block1_conv2, block2_conv1, ... block5_conv4)")
flags.register_multi_flags_validator(["content_weight", "style_weight"],
                                     lambda f: f["content_weight"] > 0 or f["style_weight"] > 0,
                                     message="--content_weight and --style_weight cannot both be 0")


def in_data_dir(*parts: str) -> str | None:
    """DATA_DIR/parts when --data_dir is a folder holding it, else None."""
    if not FLAGS.data_dir or not os.path.isdir(FLAGS.data_dir):
        return None
    path = os.path.join(FLAGS.data_dir, *parts)
    return path if os.path.exists(path) else None


def neural_art_paths() -> dict:
    """The content pool's settings and the VGG weights from the flags and --data_dir's defaults."""
    if FLAGS.data_dir and not os.path.isdir(FLAGS.data_dir):
        raise UserError(f"--data_dir={FLAGS.data_dir} must be a folder for --problem=neural_art")
    cifar = FLAGS.content_cifar or in_data_dir("cifar10.npz")
    settings = {"content_dir": FLAGS.content_dir or in_data_dir("art"), "content_exclude": FLAGS.content_exclude,
                "content_cifar": None if cifar == "none" else cifar,
                "vgg_weights": FLAGS.vgg_weights or in_data_dir("vgg19_conv_block1-3.npz")}
    for flag in ("content_dir", "content_cifar", "vgg_weights"):
        if FLAGS[flag].value and FLAGS[flag].value != "none" and not os.path.exists(FLAGS[flag].value):
            raise UserError(f"--{flag}={FLAGS[flag].value} does not exist")
    return settings


def default_style_image() -> str:
    """--style_image, or DATA_DIR/art/starry_night.jpg."""
    style = FLAGS.style_image or in_data_dir("art", "starry_night.jpg")
    if not style:
        raise UserError("--problem=neural_art needs --style_image (or --data_dir holding art/starry_night.jpg)")
    return style


def neural_art_settings() -> dict:
    """The keyword arguments of `make_family("neural_art", ...)`."""
    settings = neural_art_paths()
    if not (settings["content_dir"] or settings["content_cifar"]):
        raise UserError("--problem=neural_art needs content images: --content_dir, --content_cifar or --data_dir")
    return {**settings, "style_image": default_style_image(), "image_size": FLAGS.image_size,
            "content_weight": FLAGS.content_weight, "style_weight": FLAGS.style_weight,
            "content_layers": FLAGS.content_layers, "style_layers": FLAGS.style_layers, "init": FLAGS.art_init}
